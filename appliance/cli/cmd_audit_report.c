// SPDX-License-Identifier: Apache-2.0
/*
 * kinject audit report: one job as a page a quality officer, a customer or
 * an auditor can read and keep (SPEC.md §6).  One self-contained HTML
 * file: no script, no style sheet or font from elsewhere, the chart inline
 * SVG, so it opens the same in ten years on a machine with no network.
 * Everything on it comes from the journal's records of the job (parsed by
 * the verifier's strict parser) and the checkpoints that attest them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/array.h"
#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "journal/record.h"
#include "audit_int.h"

#define BUCKETS 48  /* bars of the rate chart */
#define MAX_SITES 4096

struct sock_stat {
	char site[64];
	uint16_t socket;
	uint64_t ok, failed;
	enum kj_result last;
};

struct hwrev_stat {
	char hwrev[64];
	uint64_t n;
};

struct report {
	struct kj_journal_job_info ji;
	char ji_strs[7][256];
	uint64_t results[KJ_RES_COUNT_];
	struct sock_stat *socks;
	size_t n_socks, cap_socks;
	struct hwrev_stat *revs;
	size_t n_revs, cap_revs;
	uint64_t t0, t1;             /* device records' time span */
	uint64_t bucket[BUCKETS];    /* ok devices per time slice */
	int pass;                    /* 0: span and tallies, 1: buckets */
	uint64_t first_seq, last_seq;
	int rc;
};

/* ---- gathering ----------------------------------------------------------- */

static struct sock_stat *sock_of(struct report *r, const char *site,
				 uint16_t socket)
{
	for (size_t i = r->n_socks; i-- > 0;)
		if (r->socks[i].socket == socket &&
		    !strcmp(r->socks[i].site, site))
			return &r->socks[i];
	if (r->n_socks >= MAX_SITES ||
	    kj_grow(&r->socks, &r->cap_socks, r->n_socks + 1, 16) < 0)
		return NULL;
	memset(&r->socks[r->n_socks], 0, sizeof(*r->socks));
	snprintf(r->socks[r->n_socks].site, sizeof(r->socks->site), "%s",
		 site);
	r->socks[r->n_socks].socket = socket;
	return &r->socks[r->n_socks++];
}

static int count_rev(struct report *r, const char *hwrev)
{
	for (size_t i = 0; i < r->n_revs; i++)
		if (!strcmp(r->revs[i].hwrev, hwrev)) {
			r->revs[i].n++;
			return 0;
		}
	KJ_TRY(kj_grow(&r->revs, &r->cap_revs, r->n_revs + 1, 4));
	snprintf(r->revs[r->n_revs].hwrev, sizeof(r->revs->hwrev), "%s",
		 hwrev);
	r->revs[r->n_revs++].n = 1;
	return 0;
}

static int tally(struct report *r, const struct kj_record *rec)
{
	struct sock_stat *s;

	r->results[rec->result]++;
	if (!r->t0 || rec->time_ms < r->t0)
		r->t0 = rec->time_ms;
	if (rec->time_ms > r->t1)
		r->t1 = rec->time_ms;
	s = sock_of(r, rec->site, rec->socket);
	if (!s) {
		kj_err("report: more than %d sockets", MAX_SITES);
		return -ENOMEM;
	}
	if (rec->result == KJ_RES_OK)
		s->ok++;
	else
		s->failed++;
	s->last = rec->result;
	return rec->result == KJ_RES_OK ? count_rev(r, rec->hwrev) : 0;
}

static int record_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct report *r = ctx;
	struct kj_record rec;
	int rc = 0;

	if (kj_record_parse(jcs, len, &rec)) {
		kj_err("record %llu is not canonical: run `kinject audit "
		       "verify'", (unsigned long long)seq);
		return -EBADMSG;
	}
	if (rec.kind == KJ_REC_DEVICE && r->pass == 0)
		rc = tally(r, &rec);
	else if (rec.kind == KJ_REC_DEVICE && rec.result == KJ_RES_OK) {
		uint64_t span = r->t1 - r->t0 + 1;
		uint64_t b = (rec.time_ms - r->t0) * BUCKETS / span;

		r->bucket[b < BUCKETS ? b : BUCKETS - 1]++;
	}
	kj_record_release(&rec);
	return rc;
}

static int job_cb(void *ctx, const struct kj_journal_job_info *ji)
{
	struct report *r = ctx;
	const char *src[7] = { ji->job, ji->customer, ji->product, ji->batch,
			       ji->operator_id, ji->fw_version, ji->state };
	const char **dst[7] = { &r->ji.job, &r->ji.customer, &r->ji.product,
				&r->ji.batch, &r->ji.operator_id,
				&r->ji.fw_version, &r->ji.state };

	r->ji = *ji;
	for (int i = 0; i < 7; i++) {
		snprintf(r->ji_strs[i], sizeof(r->ji_strs[i]), "%s", src[i]);
		*dst[i] = r->ji_strs[i];
	}
	return 0;
}

static int gather(struct kj_journal *j, const char *job, struct report *r)
{
	struct kj_journal_filter f = {
		.job = job, .kinds = KJ_KIND_BIT(KJ_REC_DEVICE),
	};
	int n = kj_journal_foreach_job(j, job, job_cb, r);

	if (n == 0)
		kj_err("--job %s: no such job in this journal; `kinject audit "
		       "jobs' lists them", job);
	if (n <= 0)
		return n ? n : -ENOENT;
	KJ_TRY(kj_journal_query(j, &f, record_cb, r));
	r->pass = 1;
	f.ok_only = true;
	return kj_journal_query(j, &f, record_cb, r);
}

/* ---- writing ------------------------------------------------------------- */

static void esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f); break;
		}
	}
}

static void row(FILE *f, const char *k, const char *v)
{
	fputs("<tr><th>", f);
	esc(f, k);
	fputs("</th><td>", f);
	esc(f, v);
	fputs("</td></tr>\n", f);
}

static void time_str(uint64_t ms, char out[KJ_RECORD_TIME_LEN + 1])
{
	if (kj_record_format_time(ms, out))
		snprintf(out, KJ_RECORD_TIME_LEN + 1, "?");
}

static const char style[] =
	"body{font-family:sans-serif;margin:2em;max-width:60em;color:#222}"
	"table{border-collapse:collapse;margin:0.5em 0 1.5em}"
	"th,td{border:1px solid #bbb;padding:0.2em 0.6em;text-align:left}"
	"td.n{text-align:right}.ok{color:#176f2c}.bad{color:#a61b1b}"
	"h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}"
	".mono{font-family:monospace;font-size:0.9em}";

static void summary(FILE *f, const struct report *r, const char *ak)
{
	const struct kj_journal_job_info *ji = &r->ji;
	char buf[128], t0[32], t1[32], fw[65], wo[65];
	uint64_t dev = ji->ok + ji->failed;

	kj_hex_encode(ji->fw_sha256, 32, fw);
	kj_hex_encode(ji->work_order_sha256, 32, wo);
	fputs("<h2>Summary</h2>\n<table>\n", f);
	row(f, "Job", ji->job);
	row(f, "Customer", ji->customer);
	row(f, "Product", ji->product);
	row(f, "Batch", ji->batch);
	row(f, "State", ji->state);
	snprintf(buf, sizeof(buf), "%llu of %llu ordered",
		 (unsigned long long)ji->ok, (unsigned long long)ji->quantity);
	row(f, "Devices programmed", buf);
	snprintf(buf, sizeof(buf), "%llu of %llu attempts (%.1f %% yield)",
		 (unsigned long long)ji->failed, (unsigned long long)dev,
		 dev ? 100.0 * (double)ji->ok / (double)dev : 0.0);
	row(f, "Attempts that did not complete", buf);
	row(f, "Firmware version", ji->fw_version);
	row(f, "Firmware SHA-256", fw);
	row(f, "Work order SHA-256", wo);
	row(f, "Operator", ji->operator_id);
	time_str(r->t0 ? r->t0 : ji->first_ms, t0);
	time_str(r->t1 ? r->t1 : ji->last_ms, t1);
	snprintf(buf, sizeof(buf), "%s to %s (UTC)", t0, t1);
	row(f, "Time span", buf);
	row(f, "Appliance (TPM attestation key name)", ak[0] ? ak : "unknown");
	fputs("</table>\n", f);
}

static void results_table(FILE *f, const struct report *r)
{
	fputs("<h2>Outcomes by reason</h2>\n<p>Devices refused before any "
	      "byte was sent (turned away: nothing reached them) are shown "
	      "apart from failures after the offer (bytes were sent; these "
	      "count against the work order's failure budget).</p>\n<table>"
	      "<tr><th>Reason</th><th>When</th><th>Devices</th></tr>\n", f);
	for (int res = KJ_RES_OK; res <= KJ_RES_DEVICE_LAST; res++) {
		if (!r->results[res])
			continue;
		fprintf(f, "<tr><td class=\"%s\">%s</td><td>%s</td>"
			"<td class=\"n\">%llu</td></tr>\n",
			res == KJ_RES_OK ? "ok" : "bad", kj_result_name(res),
			res == KJ_RES_OK ? "completed"
			: kj_result_after_offer(res) ? "after the offer"
						     : "refused before",
			(unsigned long long)r->results[res]);
	}
	fputs("</table>\n", f);
}

static int by_name(const void *a, const void *b)
{
	const struct sock_stat *x = a, *y = b;

	return strcmp(x->site, y->site) ?: (int)x->socket - (int)y->socket;
}

static void sockets_table(FILE *f, struct report *r)
{
	fputs("<h2>Yield per site and socket</h2>\n<table><tr><th>Site</th>"
	      "<th>Socket</th><th>OK</th><th>Not completed</th><th>Yield</th>"
	      "<th>Last result</th></tr>\n", f);
	if (r->n_socks)
		qsort(r->socks, r->n_socks, sizeof(*r->socks), by_name);
	for (size_t i = 0; i < r->n_socks; i++) {
		const struct sock_stat *s = &r->socks[i];
		uint64_t n = s->ok + s->failed;

		fputs("<tr><td>", f);
		esc(f, s->site);
		fprintf(f, "</td><td class=\"n\">%u</td><td class=\"n\">%llu"
			"</td><td class=\"n\">%llu</td><td class=\"n\">%.1f %%"
			"</td><td>%s</td></tr>\n", s->socket,
			(unsigned long long)s->ok,
			(unsigned long long)s->failed,
			n ? 100.0 * (double)s->ok / (double)n : 0.0,
			kj_result_name(s->last));
	}
	fputs("</table>\n<h2>Hardware revisions programmed</h2>\n<table>"
	      "<tr><th>Revision</th><th>Devices</th></tr>\n", f);
	for (size_t i = 0; i < r->n_revs; i++) {
		fputs("<tr><td>", f);
		esc(f, r->revs[i].hwrev);
		fprintf(f, "</td><td class=\"n\">%llu</td></tr>\n",
			(unsigned long long)r->revs[i].n);
	}
	fputs("</table>\n", f);
}

/* Bars of devices per second, one per time slice of the job's span. */
static void chart(FILE *f, const struct report *r)
{
	const unsigned w = 720, h = 200, left = 60, bottom = 30;
	double slice_s = (double)(r->t1 - r->t0 + 1) / 1000.0 / BUCKETS;
	double max = 0, bw = (double)(w - left) / BUCKETS;

	for (int i = 0; i < BUCKETS; i++)
		if (r->bucket[i] / slice_s > max)
			max = r->bucket[i] / slice_s;
	fprintf(f, "<h2>Devices per second over time</h2>\n<p>Each bar is "
		"%.1f s of the job; its height is the devices completed per "
		"second in that time.</p>\n<svg xmlns=\"http://www.w3.org/2000/"
		"svg\" width=\"%u\" height=\"%u\" role=\"img\" aria-label=\""
		"device rate over time\">\n", slice_s, w, h + bottom);
	fprintf(f, "<line x1=\"%u\" y1=\"0\" x2=\"%u\" y2=\"%u\" "
		"stroke=\"#444\"/>\n<line x1=\"%u\" y1=\"%u\" x2=\"%u\" "
		"y2=\"%u\" stroke=\"#444\"/>\n", left, left, h, left, h, w, h);
	fprintf(f, "<text x=\"%u\" y=\"12\" font-size=\"11\" "
		"text-anchor=\"end\">%.0f/s</text>\n<text x=\"%u\" y=\"%u\" "
		"font-size=\"11\" text-anchor=\"end\">0</text>\n", left - 4,
		max, left - 4, h);
	for (int i = 0; i < BUCKETS && max > 0; i++) {
		double v = r->bucket[i] / slice_s;
		double bh = v / max * (h - 16);

		fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			"height=\"%.1f\" fill=\"#3a7bd5\"><title>%.0f devices/s"
			"</title></rect>\n", left + i * bw + 1, h - bh, bw - 2,
			bh, v);
	}
	fprintf(f, "<text x=\"%u\" y=\"%u\" font-size=\"11\">start</text>\n"
		"<text x=\"%u\" y=\"%u\" font-size=\"11\" text-anchor=\"end\">"
		"end (%.0f s)</text>\n</svg>\n", left, h + 18, w, h + 18,
		slice_s * BUCKETS);
}

#define CKPT_ENDS 10 /* rows shown at each end of a long list */

struct ckpt_ctx {
	FILE *f;               /* NULL: only count */
	uint64_t first_seq, last_seq;
	unsigned n, total;
	bool done;
};

static void ckpt_row(FILE *f, const struct kj_journal_checkpoint *c)
{
	char t[32], root[65];

	time_str(c->time_ms, t);
	kj_hex_encode(c->root, 32, root);
	fprintf(f, "<tr><td class=\"n\">%llu</td><td>%s</td>"
		"<td class=\"n\">%llu</td><td class=\"n\">%llu</td>"
		"<td class=\"mono\">%s</td></tr>\n", (unsigned long long)c->id,
		t, (unsigned long long)c->tree_size,
		(unsigned long long)c->nv_counter, root);
}

static int ckpt_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	struct ckpt_ctx *k = ctx;

	/* The checkpoints EVIDENCE.md §5 puts in the job's bundle: from the
	 * first covering its first record to the first covering its last. */
	if (k->done || c->tree_size <= k->first_seq)
		return 0;
	if (k->f && (k->n < CKPT_ENDS || k->n + CKPT_ENDS >= k->total))
		ckpt_row(k->f, c);
	else if (k->f && k->n == CKPT_ENDS)
		fprintf(k->f, "<tr><td colspan=\"5\">&#8230; %u more, every "
			"one in the evidence bundle &#8230;</td></tr>\n",
			k->total - 2 * CKPT_ENDS);
	k->n++;
	k->done = c->tree_size > k->last_seq;
	return 0;
}

static int checkpoints(struct kj_journal *j, FILE *f, const struct report *r)
{
	struct ckpt_ctx k = { .first_seq = r->ji.first_seq,
			      .last_seq = r->ji.last_seq };

	/* Count first: a long job has thousands; the page shows the ends. */
	KJ_TRY(kj_journal_foreach_checkpoint(j, 0, ckpt_cb, &k));
	fprintf(f, "<h2>Checkpoints that attest these records</h2>\n<p>%u "
		"checkpoints.  Each is a TPM quote over the transparency log "
		"of every record up to its size; the customer checks them "
		"offline with <code>kinject verify</code>.</p>\n<table><tr>"
		"<th>#</th><th>Time (UTC)</th><th>Records covered</th>"
		"<th>TPM counter</th><th>Log root</th></tr>\n", k.n);
	k.total = k.n;
	k.n = 0;
	k.done = false;
	k.f = f;
	KJ_TRY(kj_journal_foreach_checkpoint(j, 0, ckpt_cb, &k));
	fputs("</table>\n", f);
	if (!k.done)
		fputs("<p class=\"bad\">The last records of this job are not "
		      "covered by a checkpoint yet.</p>\n", f);
	return 0;
}

int kj_audit_write_report(struct kj_journal *j, const char *state,
			  const char *job, FILE *f)
{
	char ak[KJ_AK_NAME_HEX], now[32];
	struct report *r = calloc(1, sizeof(*r));
	int rc;

	if (!r) {
		kj_err("report: out of memory");
		return -ENOMEM;
	}
	KJ_TRY_GOTO(rc, kj_audit_ak_name(state, ak), out);
	KJ_TRY_GOTO(rc, gather(j, job, r), out);
	time_str(kj_record_now_ms(), now);
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\""
	      "utf-8\">\n<title>kinject job ", f);
	esc(f, job);
	fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>"
		"Programming report: job ", style);
	esc(f, job);
	fprintf(f, "</h1>\n<p>Made by kinject %s on %s from the appliance's "
		"journal.</p>\n", KJ_VERSION, now);
	summary(f, r, ak);
	results_table(f, r);
	sockets_table(f, r);
	if (r->results[KJ_RES_OK])
		chart(f, r);
	rc = checkpoints(j, f, r);
	fputs("</body>\n</html>\n", f);
out:
	free(r->socks);
	free(r->revs);
	free(r);
	return rc;
}

int kj_audit_report(struct kj_journal *j, const struct audit_args *a)
{
	FILE *f = kj_audit_open_out(a->out_path);
	int rc;

	if (!f)
		return KJ_EXIT_ERROR;
	rc = kj_audit_write_report(j, a->state, a->f.job, f);
	if (kj_audit_close_out(f, a->out_path) < 0 && !rc)
		rc = -EIO;
	if (rc && a->out_path)
		unlink(a->out_path);
	if (!rc)
		fprintf(stderr, "audit report: %s\n", a->out_path);
	return rc ? KJ_EXIT_ERROR : KJ_EXIT_OK;
}
