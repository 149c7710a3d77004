// SPDX-License-Identifier: Apache-2.0
/*
 * The operator's and the plant's view of a running job (progress.h): the
 * choice of form, the text and JSON lines, the figures every form shares
 * (rate, ETA, reasons split at the offer: a refusal sent nothing and
 * costs nothing of max_failed, a failure after the offer did), and the
 * summary.  The screen itself is status.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "base/log.h"
#include "base/util.h"

#define LINE_INTERVAL_MS 5000  /* text and json lines */
#define DRAW_INTERVAL_MS 200   /* screen redraws */

int kj_progress_mode_parse(const char *v, enum kj_progress_mode *out)
{
	if (!v)
		*out = isatty(STDERR_FILENO) ? KJ_PROGRESS_SCREEN
					     : KJ_PROGRESS_JSON;
	else if (!strcmp(v, "json"))
		*out = KJ_PROGRESS_JSON;
	else if (!strcmp(v, "text"))
		*out = isatty(STDERR_FILENO) ? KJ_PROGRESS_SCREEN
					     : KJ_PROGRESS_TEXT;
	else {
		kj_err("--log-format: `%s' is neither text nor json", v);
		return -EINVAL;
	}
	return 0;
}

void kj_progress_init(struct kj_progress *p, enum kj_progress_mode mode,
		      const char *job, uint64_t max_failed, uint64_t start_ok)
{
	memset(p, 0, sizeof(*p));
	p->mode = mode;
	p->job = job;
	p->max_failed = max_failed;
	p->start_ok = start_ok;
	kj_log_set_json(mode == KJ_PROGRESS_JSON);
	if (mode == KJ_PROGRESS_SCREEN)
		kj_status_setup(p);
}

void kj_progress_record(struct kj_progress *p, const uint8_t *jcs,
			size_t len)
{
	struct kj_record r;

	/* Only the screen shows sockets; the lines stay cheap. */
	if (p->mode != KJ_PROGRESS_SCREEN || kj_record_parse(jcs, len, &r))
		return;
	if (r.kind == KJ_REC_DEVICE)
		kj_status_note(p, &r, false);
	kj_record_release(&r);
}

void kj_progress_offered(struct kj_progress *p, const struct kj_record *hello)
{
	if (p->mode == KJ_PROGRESS_SCREEN)
		kj_status_note(p, hello, true);
}

double kj_progress_rate(const struct kj_keeper_stats *st)
{
	return st->elapsed_ms ? st->run_ok * 1000.0 / st->elapsed_ms : 0.0;
}

void kj_progress_reasons(const struct kj_keeper_stats *st, bool after_offer,
			 char *out, size_t cap)
{
	size_t n = 0;

	out[0] = 0;
	for (int r = KJ_RES_LOCKED_OUT; r <= KJ_RES_DEVICE_LAST; r++) {
		if (!st->results[r] || n >= cap ||
		    kj_result_after_offer(r) != after_offer)
			continue;
		n += (size_t)snprintf(out + n, cap - n, "%s%s %llu",
				      n ? ", " : "", kj_result_name(r),
				      (unsigned long long)st->results[r]);
	}
	if (!n)
		snprintf(out, cap, "none");
}

void kj_progress_eta(const struct kj_keeper_stats *st, char *out, size_t cap)
{
	double rate = kj_progress_rate(st);
	uint64_t left = st->quantity > st->ok ? st->quantity - st->ok : 0;
	uint64_t s;

	if (!left) {
		snprintf(out, cap, "done");
		return;
	}
	if (rate <= 0) {
		snprintf(out, cap, "--:--");
		return;
	}
	s = (uint64_t)(left / rate + 0.5);
	snprintf(out, cap, "%llu:%02llu", (unsigned long long)(s / 60),
		 (unsigned long long)(s % 60));
}

static void text_line(const struct kj_progress *p,
		      const struct kj_keeper_stats *st)
{
	char fail[512], refused[512], when[32];

	kj_progress_reasons(st, true, fail, sizeof(fail));
	kj_progress_reasons(st, false, refused, sizeof(refused));
	kj_progress_eta(st, when, sizeof(when));
	fprintf(stderr, "progress: %llu/%llu ok, %.0f devices/s, in flight "
		"%llu, eta %s, max_failed %llu of %llu used, failures: %s, "
		"refused before offer: %s\n", (unsigned long long)st->ok,
		(unsigned long long)st->quantity, kj_progress_rate(st),
		(unsigned long long)st->in_flight, when,
		(unsigned long long)st->failed_after_offer,
		(unsigned long long)p->max_failed, fail, refused);
}

/* {"after_offer_reason": n, ...} of this run. */
static void json_reasons(FILE *f, const struct kj_keeper_stats *st,
			 bool after_offer)
{
	bool first = true;

	fputc('{', f);
	for (int r = KJ_RES_LOCKED_OUT; r <= KJ_RES_DEVICE_LAST; r++) {
		if (!st->results[r] || kj_result_after_offer(r) != after_offer)
			continue;
		fprintf(f, "%s\"%s\":%llu", first ? "" : ",", kj_result_name(r),
			(unsigned long long)st->results[r]);
		first = false;
	}
	fputc('}', f);
}

static void json_line(const struct kj_progress *p,
		      const struct kj_keeper_stats *st)
{
	char ts[25], job[512];
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return;
	kj_log_time(ts);
	kj_json_escape(p->job ? p->job : "", job, sizeof(job));
	fprintf(m, "{\"ts\":\"%s\",\"event\":\"progress\",\"job\":\"%s\","
		"\"quantity\":%llu,\"ok\":%llu,\"run_ok\":%llu,"
		"\"in_flight\":%llu,\"devices_per_s\":%.1f,"
		"\"failed_after_offer\":%llu,\"max_failed\":%llu,"
		"\"connections\":%llu,\"issuing\":%s,\"failures\":", ts, job,
		(unsigned long long)st->quantity, (unsigned long long)st->ok,
		(unsigned long long)st->run_ok,
		(unsigned long long)st->in_flight, kj_progress_rate(st),
		(unsigned long long)st->failed_after_offer,
		(unsigned long long)p->max_failed,
		(unsigned long long)st->conns_open,
		st->issuing ? "true" : "false");
	json_reasons(m, st, true);
	fputs(",\"refused\":", m);
	json_reasons(m, st, false);
	fputs("}\n", m);
	if (!fclose(m))
		fwrite(buf, 1, len, stderr); /* one write: one line */
	free(buf);
}

void kj_progress_update(struct kj_progress *p, const struct kj_keeper_stats *st)
{
	uint64_t now = kj_now_ms();
	bool final = !st->issuing && !st->in_flight;
	unsigned gap = p->mode == KJ_PROGRESS_SCREEN ? DRAW_INTERVAL_MS
						     : LINE_INTERVAL_MS;

	p->st = *st;
	if (p->last_out_ms && now - p->last_out_ms < gap && !final)
		return;
	p->last_out_ms = now;
	switch (p->mode) {
	case KJ_PROGRESS_SCREEN:
		kj_status_draw(p);
		break;
	case KJ_PROGRESS_JSON:
		json_line(p, st);
		break;
	case KJ_PROGRESS_TEXT:
	default:
		text_line(p, st);
		break;
	}
}

void kj_progress_finish(struct kj_progress *p)
{
	if (p->mode == KJ_PROGRESS_SCREEN)
		kj_status_end(p);
	else if (p->mode == KJ_PROGRESS_JSON && p->st.quantity)
		json_line(p, &p->st);
	free(p->socks);
	p->socks = NULL;
	p->n_socks = p->cap_socks = 0;
}

void kj_summary_print(const struct kj_run_summary *s,
		      const struct kj_keeper_stats *st)
{
	char fail[512], refused[512];

	kj_progress_reasons(st, true, fail, sizeof(fail));
	kj_progress_reasons(st, false, refused, sizeof(refused));
	printf("job %s: %s\n", s->job, s->outcome);
	printf("  devices ok:     %llu of %llu (this run %llu)\n",
	       (unsigned long long)st->ok, (unsigned long long)st->quantity,
	       (unsigned long long)st->run_ok);
	printf("  failures:       %s this run (after the offer; the job has "
	       "used %llu of its max_failed)\n", fail,
	       (unsigned long long)st->failed_after_offer);
	printf("  refused:        %s this run (before the offer: nothing "
	       "sent)\n", refused);
	printf("  rate:           %.0f devices/s over %.1f s\n",
	       kj_progress_rate(st),
	       st->elapsed_ms / 1000.0);
	printf("  journal:        %s/journal.db (%llu fsyncs, %llu records "
	       "in the log)\n", s->state_dir, (unsigned long long)s->fsyncs,
	       (unsigned long long)s->tree_size);
	printf("  checkpoints:    %llu (slowest quote %llu ms)\n",
	       (unsigned long long)s->checkpoints,
	       (unsigned long long)s->quote_ms_max);
	printf("  secret memory:  %s\n", s->secret_memory);
	if (st->tls_ktls + st->tls_user + st->tls_refused)
		printf("  TLS:            %llu handshakes, records %s "
		       "(%llu kTLS, %llu user space), %llu refused, %llu "
		       "signatures, %llu over the rate limit\n",
		       (unsigned long long)(st->tls_ktls + st->tls_user),
		       st->tls_ktls && st->tls_user ? "mixed" :
		       st->tls_ktls ? "in the kernel" : "in user space",
		       (unsigned long long)st->tls_ktls,
		       (unsigned long long)st->tls_user,
		       (unsigned long long)st->tls_refused,
		       (unsigned long long)st->tls_signed,
		       (unsigned long long)st->tls_sign_limited);
	fflush(stdout);
}

int kj_summary_write_json(const char *path, const struct kj_run_summary *s,
			  const struct kj_keeper_stats *st)
{
	char buf[4096];
	int n;

	/* Job ids are checked by the work order parser: no quotes or
	 * control characters, so they need no escaping here. */
	n = snprintf(buf, sizeof(buf),
		     "{\"job\":\"%s\",\"outcome\":\"%s\",\"exit_code\":%d,"
		     "\"quantity\":%llu,\"ok\":%llu,\"run_ok\":%llu,"
		     "\"failed_after_offer\":%llu,\"in_flight\":%llu,"
		     "\"elapsed_ms\":%llu,\"devices_per_s\":%.1f,"
		     "\"fsyncs\":%llu,\"journal_commits\":%llu,"
		     "\"checkpoints\":%llu,\"quote_ms_max\":%llu,"
		     "\"quote_ms_total\":%llu,"
		     "\"tree_size\":%llu,\"injector_restarts\":%llu,"
		     "\"sandbox_violations\":%llu,\"refusal_closed\":%llu,"
		     "\"connections\":%llu,\"pre_hello_failures\":%llu,"
		     "\"bytes_sent\":%llu,\"secret_memory\":\"%s\","
		     "\"tls\":{\"ktls\":%llu,\"user_space\":%llu,"
		     "\"refused\":%llu,\"signed\":%llu,"
		     "\"sign_limited\":%llu},"
		     "\"results\":{",
		     s->job, s->outcome, s->exit_code,
		     (unsigned long long)st->quantity,
		     (unsigned long long)st->ok,
		     (unsigned long long)st->run_ok,
		     (unsigned long long)st->failed_after_offer,
		     (unsigned long long)st->in_flight,
		     (unsigned long long)st->elapsed_ms, kj_progress_rate(st),
		     (unsigned long long)s->fsyncs,
		     (unsigned long long)st->commits,
		     (unsigned long long)s->checkpoints,
		     (unsigned long long)s->quote_ms_max,
		     (unsigned long long)s->quote_ms_total,
		     (unsigned long long)s->tree_size,
		     (unsigned long long)st->injector_restarts,
		     (unsigned long long)st->sandbox_violations,
		     (unsigned long long)st->refusal_closed,
		     (unsigned long long)st->conns_accepted,
		     (unsigned long long)st->pre_hello_failures,
		     (unsigned long long)st->bytes_sent, s->secret_memory,
		     (unsigned long long)st->tls_ktls,
		     (unsigned long long)st->tls_user,
		     (unsigned long long)st->tls_refused,
		     (unsigned long long)st->tls_signed,
		     (unsigned long long)st->tls_sign_limited);
	for (int r = KJ_RES_OK; r <= KJ_RES_DEVICE_LAST &&
	     n > 0 && (size_t)n < sizeof(buf); r++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s\"%s\":%llu",
			      r == KJ_RES_OK ? "" : ",", kj_result_name(r),
			      (unsigned long long)st->results[r]);
	if (n > 0 && (size_t)n < sizeof(buf))
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "}}\n");
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		kj_err("--json-summary: summary too long");
		return -EMSGSIZE;
	}
	return kj_write_file_atomic(path, buf, (size_t)n, 0644);
}
