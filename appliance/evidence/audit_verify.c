// SPDX-License-Identifier: Apache-2.0
/*
 * kinject audit verify: journal ↔ log ↔ checkpoints (audit.h).  The same
 * facts a customer's `kinject verify` checks on an evidence bundle, here
 * over the whole state dir.
 */
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "attest/eventlog.h"
#include "attest/mtree.h"
#include "base/array.h"
#include "base/log.h"
#include "base/util.h"
#include "journal/record.h"
#include "audit.h"

struct job_run {
	char *job;
	uint64_t next_job_seq;
	uint64_t ok, other;
	bool ended;
	uint64_t end_ok, end_failed;
};

/* A value that must be unique (per job, or per state for attempts). */
enum uniq_kind { U_CRED, U_SERIAL, U_OK_UID, U_ATTEMPT, U_COUNT_ };

static const char *const uniq_names[U_COUNT_] = {
	[U_CRED] = "credential index", [U_SERIAL] = "serial",
	[U_OK_UID] = "uid of an ok record", [U_ATTEMPT] = "attempt id",
};

struct uniq {
	uint32_t job;    /* index into walk.jobs; all jobs for attempts */
	uint8_t kind;
	bool minus;      /* a withdrawn record: takes its ok uid back */
	uint8_t h[16];   /* SHA-256 of the value, truncated */
	uint64_t seq;    /* the record, for the message */
};

struct walk {
	struct kj_mtree *tree;
	struct job_run *jobs;
	size_t n_jobs, cap_jobs;
	struct uniq *u;
	size_t n_u, cap_u;
	uint64_t n;
	unsigned bad_records, bad_seq, bad_job;
	FILE *out;
};

static int add_uniq(struct walk *w, uint32_t job, enum uniq_kind k,
		    const void *v, size_t len, uint64_t seq, bool minus)
{
	uint8_t h[32];

	if (kj_grow(&w->u, &w->cap_u, w->n_u + 1, 1024)) {
		kj_err("audit: out of memory");
		return -ENOMEM;
	}
	kj_sha256(v, len, h);
	w->u[w->n_u].job = k == U_ATTEMPT ? UINT32_MAX : job;
	w->u[w->n_u].kind = (uint8_t)k;
	memcpy(w->u[w->n_u].h, h, sizeof(w->u[w->n_u].h));
	w->u[w->n_u].seq = seq;
	w->u[w->n_u].minus = minus;
	w->n_u++;
	return 0;
}

/* EVIDENCE.md §6.7 and SPEC §3.2: what a device record must not repeat. */
static int track_device(struct walk *w, uint32_t job,
			const struct kj_record *r)
{
	uint8_t be[8];

	/* §2: a withdrawn record repeats its ok attempt and frees the uid */
	if (r->result == KJ_RES_WITHDRAWN)
		return add_uniq(w, job, U_OK_UID, r->uid, r->uid_len, r->seq,
				true);
	if (r->has_cred) {
		kj_put_u64be(be, r->cred_index);
		KJ_TRY(add_uniq(w, job, U_CRED, be, 8, r->seq, false));
	}
	if (r->has_attempt) {
		kj_put_u64be(be, r->attempt);
		KJ_TRY(add_uniq(w, job, U_ATTEMPT, be, 8, r->seq, false));
	}
	if (r->serial)
		KJ_TRY(add_uniq(w, job, U_SERIAL, r->serial,
				strlen(r->serial), r->seq, false));
	if (r->result == KJ_RES_OK)
		KJ_TRY(add_uniq(w, job, U_OK_UID, r->uid, r->uid_len, r->seq,
				false));
	return 0;
}

static int cmp_uniq(const void *a, const void *b)
{
	const struct uniq *x = a, *y = b;
	int c;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->job != y->job)
		return x->job < y->job ? -1 : 1;
	c = memcmp(x->h, y->h, sizeof(x->h));
	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool report(FILE *out, const char *check, bool ok, const char *detail);

static bool same_value(const struct uniq *a, const struct uniq *b)
{
	return a->kind == b->kind && a->job == b->job &&
	       !memcmp(a->h, b->h, sizeof(a->h));
}

static bool check_uniq(struct walk *w)
{
	unsigned dups = 0;

	if (w->n_u)
		qsort(w->u, w->n_u, sizeof(*w->u), cmp_uniq);
	for (size_t i = 1, live = 0; i < w->n_u; i++) {
		const struct uniq *a = &w->u[i - 1], *b = &w->u[i];

		/* live: the group's values not withdrawn, up to a */
		if (i == 1 || !same_value(&w->u[i - 2], a))
			live = 0;
		live = a->minus ? live - 1 : live + 1;
		if (!same_value(a, b) || b->minus || !live)
			continue;
		if (dups++ < 5)
			fprintf(w->out, "  records %llu and %llu%s%s%s share "
				"a %s\n", (unsigned long long)a->seq,
				(unsigned long long)b->seq,
				a->job == UINT32_MAX ? "" : " of job `",
				a->job == UINT32_MAX ? "" : w->jobs[a->job].job,
				a->job == UINT32_MAX ? "" : "'",
				uniq_names[a->kind]);
	}
	return report(w->out, "no credential index, serial, attempt or ok "
		      "uid used twice", !dups, NULL);
}

static struct job_run *job_of(struct walk *w, const char *job)
{
	struct job_run *nj;

	for (size_t i = 0; i < w->n_jobs; i++)
		if (!strcmp(w->jobs[i].job, job))
			return &w->jobs[i];
	if (kj_grow(&w->jobs, &w->cap_jobs, w->n_jobs + 1, 8))
		return NULL;
	nj = &w->jobs[w->n_jobs];
	memset(nj, 0, sizeof(*nj));
	nj->job = strdup(job);
	if (!nj->job)
		return NULL;
	w->n_jobs++;
	return nj;
}

/* EVIDENCE.md §6 check 6, per job, as the records stream by. */
static void check_job_order(struct walk *w, struct job_run *jr,
			    const struct kj_record *r)
{
	if (r->job_seq != jr->next_job_seq || jr->ended) {
		if (w->bad_job++ < 5)
			fprintf(w->out, "  job `%s': record seq %llu has job_seq "
				"%llu, expected %llu%s\n", r->job,
				(unsigned long long)r->seq,
				(unsigned long long)r->job_seq,
				(unsigned long long)jr->next_job_seq,
				jr->ended ? " (after job_end)" : "");
	}
	jr->next_job_seq = r->job_seq + 1;
	switch (r->kind) {
	case KJ_REC_DEVICE:
		if (r->result == KJ_RES_OK)
			jr->ok++;
		else
			jr->other++;
		if (r->result == KJ_RES_WITHDRAWN)
			jr->ok--; /* §2: each attempt once */
		break;
	case KJ_REC_JOB_END:
		jr->ended = true;
		jr->end_ok = r->ok_count;
		jr->end_failed = r->failed_count;
		break;
	default:
		break;
	}
}

static int record_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct walk *w = ctx;
	struct kj_record r;
	struct job_run *jr;
	int rc;

	if (seq != w->n && w->bad_seq++ < 5)
		fprintf(w->out, "  row %llu has seq %llu\n",
			(unsigned long long)w->n, (unsigned long long)seq);
	w->n++;
	KJ_TRY(kj_mtree_append(w->tree, jcs, len));
	if (kj_record_parse(jcs, len, &r)) {
		if (w->bad_records++ < 5)
			fprintf(w->out, "  leaf %llu is not a canonical record\n",
				(unsigned long long)seq);
		return 0;
	}
	if (r.seq != seq && w->bad_seq++ < 5)
		fprintf(w->out, "  leaf %llu says seq %llu\n",
			(unsigned long long)seq, (unsigned long long)r.seq);
	jr = job_of(w, r.job);
	if (!jr) {
		kj_record_release(&r);
		kj_err("audit: out of memory");
		return -ENOMEM;
	}
	check_job_order(w, jr, &r);
	rc = r.kind == KJ_REC_DEVICE
		     ? track_device(w, (uint32_t)(jr - w->jobs), &r)
		     : 0;
	kj_record_release(&r);
	return rc;
}

static bool report(FILE *out, const char *check, bool ok, const char *detail)
{
	fprintf(out, "%-4s %s%s%s\n", ok ? "ok" : "FAIL", check,
		detail && *detail ? ": " : "", detail ? detail : "");
	return ok;
}

static bool check_jobs(struct walk *w)
{
	bool ok = !w->bad_job;
	char d[160];

	for (size_t i = 0; i < w->n_jobs; i++) {
		struct job_run *jr = &w->jobs[i];

		if (jr->ended && (jr->end_ok != jr->ok ||
				  jr->end_failed != jr->other)) {
			fprintf(w->out, "  job `%s': job_end says %llu ok, "
				"%llu failed; the records say %llu, %llu\n",
				jr->job, (unsigned long long)jr->end_ok,
				(unsigned long long)jr->end_failed,
				(unsigned long long)jr->ok,
				(unsigned long long)jr->other);
			ok = false;
		}
	}
	snprintf(d, sizeof(d), "%zu jobs, job_seq gap-free from job_start, "
		 "job_end counts", w->n_jobs);
	return report(w->out, "jobs", ok, d);
}

/* ---- checkpoints ------------------------------------------------------ */

struct events {
	struct kj_event *ev;
	size_t n, cap;
};

static int event_cb(void *ctx, uint64_t index, uint32_t epoch, uint32_t pcr,
		    const char *name, const uint8_t digest[32], bool is_void)
{
	struct events *e = ctx;
	struct kj_event *ne;

	(void)index;
	if (kj_grow(&e->ev, &e->cap, e->n + 1, 64)) {
		kj_err("audit: out of memory");
		return -ENOMEM;
	}
	ne = &e->ev[e->n++];
	memset(ne, 0, sizeof(*ne));
	ne->epoch = epoch;
	ne->pcr = pcr;
	snprintf(ne->name, sizeof(ne->name), "%s", name);
	memcpy(ne->digest, digest, 32);
	ne->is_void = is_void;
	return 0;
}

struct ckwalk {
	struct walk *w;
	struct events ev;
	struct kj_ak *ak; /* NULL: quotes not checked */
	uint64_t n, last_nv, last_size;
	unsigned bad_root, bad_nv, bad_quote;
};

static void check_quote(struct ckwalk *c, const struct kj_journal_checkpoint *k)
{
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32] = { { 0 } }, qd[32];
	enum kj_quote_check failed = KJ_QC_OK;
	bool bad;

	bad = k->event_log_length > c->ev.n ||
	      kj_eventlog_replay(c->ev.ev, (size_t)k->event_log_length,
				 k->epoch, pcrs);
	if (!bad) {
		kj_checkpoint_qd(k->tree_size, k->root, k->nv_counter, qd);
		bad = kj_quote_verify(c->ak, k->quote_attest, k->attest_len,
				      k->quote_sig, k->sig_len, qd,
				      k->pcr_mask, pcrs, NULL, &failed) != 0;
	}
	if (bad && c->bad_quote++ < 5)
		fprintf(c->w->out, "  checkpoint %llu: quote fails (%s)\n",
			(unsigned long long)k->id,
			failed ? kj_quote_check_name(failed)
			       : "event log replay");
}

static int ckpt_cb(void *ctx, const struct kj_journal_checkpoint *k)
{
	struct ckwalk *c = ctx;
	uint8_t root[32];

	if (k->tree_size > kj_mtree_size(c->w->tree) ||
	    kj_mtree_root(c->w->tree, k->tree_size, root) ||
	    memcmp(root, k->root, 32) || k->tree_size < c->last_size) {
		if (c->bad_root++ < 5)
			fprintf(c->w->out, "  checkpoint %llu: tree_size %llu: "
				"root differs from the log's\n",
				(unsigned long long)k->id,
				(unsigned long long)k->tree_size);
	}
	if (c->n && k->nv_counter <= c->last_nv && c->bad_nv++ < 5)
		fprintf(c->w->out, "  checkpoint %llu: nv_counter %llu after "
			"%llu\n", (unsigned long long)k->id,
			(unsigned long long)k->nv_counter,
			(unsigned long long)c->last_nv);
	if (c->ak)
		check_quote(c, k);
	c->last_nv = k->nv_counter;
	c->last_size = k->tree_size;
	c->n++;
	return 0;
}

static int check_checkpoints(struct kj_journal *j, struct walk *w,
			     struct kj_ak *ak, bool *all_ok)
{
	struct ckwalk c = { .w = w, .ak = ak };
	char d[160];
	int rc;

	rc = kj_journal_foreach_event(j, event_cb, &c.ev);
	if (!rc)
		rc = kj_journal_foreach_checkpoint(j, 0, ckpt_cb, &c);
	free(c.ev.ev);
	if (rc)
		return rc;
	snprintf(d, sizeof(d), "%llu checkpoints, roots equal the rebuilt "
		 "tree", (unsigned long long)c.n);
	*all_ok &= report(w->out, "checkpoint roots", !c.bad_root, d);
	/* SPEC §4: a record no quote covers is a failure, not a pass */
	if (w->n > c.last_size)
		snprintf(d, sizeof(d), "%llu record(s) from seq %llu are not "
			 "covered by any checkpoint%s",
			 (unsigned long long)(w->n - c.last_size),
			 (unsigned long long)c.last_size,
			 c.n ? "" : " (no checkpoint at all: a --tpm none run)");
	else
		snprintf(d, sizeof(d), "all %llu records",
			 (unsigned long long)w->n);
	*all_ok &= report(w->out, "records covered by a checkpoint",
			  w->n <= c.last_size, d);
	*all_ok &= report(w->out, "nv_counter strictly increasing",
			  !c.bad_nv, NULL);
	if (ak)
		*all_ok &= report(w->out, "quotes (signature, qualifying "
				  "data, PCRs replayed)", !c.bad_quote, NULL);
	else
		fprintf(w->out, "skip quotes: no AK public area given\n");
	return 0;
}

int kj_audit_verify(struct kj_journal *j, const uint8_t *ak_pub,
		    size_t ak_pub_len, FILE *out)
{
	struct walk w = { .out = out };
	struct kj_ak ak = { 0 };
	bool ok = true, have_ak = false;
	char d[96];
	int rc;

	w.tree = kj_mtree_new();
	if (!w.tree)
		return -ENOMEM;
	if (ak_pub) {
		rc = kj_ak_parse(ak_pub, ak_pub_len, &ak, NULL);
		if (rc)
			goto out;
		have_ak = true;
	}
	rc = kj_journal_foreach_record(j, 0, NULL, record_cb, &w);
	if (rc)
		goto out;
	snprintf(d, sizeof(d), "%llu records", (unsigned long long)w.n);
	ok &= report(out, "records are canonical JCS", !w.bad_records, d);
	ok &= report(out, "seq gap-free from 0 (= leaf index)", !w.bad_seq,
		     NULL);
	ok &= check_jobs(&w);
	ok &= check_uniq(&w);
	rc = check_checkpoints(j, &w, have_ak ? &ak : NULL, &ok);
	if (!rc)
		rc = ok ? 0 : -EBADMSG;
out:
	if (have_ak)
		kj_ak_free(&ak);
	for (size_t i = 0; i < w.n_jobs; i++)
		free(w.jobs[i].job);
	free(w.jobs);
	free(w.u);
	kj_mtree_free(w.tree);
	return rc;
}
