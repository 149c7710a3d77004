// SPDX-License-Identifier: Apache-2.0
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "base/log.h"
#include "base/util.h"

#define PLAIN_INTERVAL_MS 5000

void kj_progress_init(struct kj_progress *p, uint64_t start_ok)
{
	memset(p, 0, sizeof(*p));
	p->tty = isatty(STDERR_FILENO);
	p->start_ok = start_ok;
}

static double rate_of(const struct kj_keeper_stats *st)
{
	return st->elapsed_ms ? st->run_ok * 1000.0 / st->elapsed_ms : 0.0;
}

/* "readback 3, timeout 1": every failure reason seen in this run. */
static void failures(const struct kj_keeper_stats *st, char *out, size_t cap)
{
	size_t n = 0;

	out[0] = 0;
	for (int r = KJ_RES_LOCKED_OUT; r <= KJ_RES_DEVICE_LAST; r++) {
		if (!st->results[r] || n >= cap)
			continue;
		n += (size_t)snprintf(out + n, cap - n, "%s%s %llu",
				      n ? ", " : "", kj_result_name(r),
				      (unsigned long long)st->results[r]);
	}
	if (!n)
		snprintf(out, cap, "none");
}

static void eta(const struct kj_keeper_stats *st, char *out, size_t cap)
{
	double rate = rate_of(st);
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

void kj_progress_update(struct kj_progress *p, const struct kj_keeper_stats *st)
{
	char fail[512], when[32], bar[31];
	unsigned width = sizeof(bar) - 1, filled;
	uint64_t now = kj_now_ms();

	failures(st, fail, sizeof(fail));
	eta(st, when, sizeof(when));
	if (!p->tty) {
		if (p->last_plain_ms && now - p->last_plain_ms < PLAIN_INTERVAL_MS)
			return;
		p->last_plain_ms = now;
		fprintf(stderr, "progress: %llu/%llu ok, %.0f devices/s, "
			"in flight %llu, eta %s, failures: %s\n",
			(unsigned long long)st->ok,
			(unsigned long long)st->quantity, rate_of(st),
			(unsigned long long)st->in_flight, when, fail);
		return;
	}
	filled = st->quantity ? (unsigned)(st->ok * width / st->quantity) : 0;
	if (filled > width)
		filled = width;
	memset(bar, '#', filled);
	memset(bar + filled, '.', width - filled);
	bar[width] = 0;
	fprintf(stderr, "\r\033[K[%s] %llu/%llu  %.0f/s  eta %s  conns %llu  "
		"failures: %s", bar, (unsigned long long)st->ok,
		(unsigned long long)st->quantity, rate_of(st), when,
		(unsigned long long)st->conns_open, fail);
	p->drew_line = true;
}

void kj_progress_finish(struct kj_progress *p)
{
	if (p->drew_line)
		fputc('\n', stderr);
	p->drew_line = false;
}

void kj_summary_print(const struct kj_run_summary *s,
		      const struct kj_keeper_stats *st)
{
	char fail[512];

	failures(st, fail, sizeof(fail));
	printf("job %s: %s\n", s->job, s->outcome);
	printf("  devices ok:     %llu of %llu (this run %llu)\n",
	       (unsigned long long)st->ok, (unsigned long long)st->quantity,
	       (unsigned long long)st->run_ok);
	printf("  failures:       %s (counted against max_failed: %llu)\n",
	       fail, (unsigned long long)st->failed_after_offer);
	printf("  rate:           %.0f devices/s over %.1f s\n", rate_of(st),
	       st->elapsed_ms / 1000.0);
	printf("  journal:        %s/journal.db (%llu fsyncs, %llu records "
	       "in the log)\n", s->state_dir, (unsigned long long)s->fsyncs,
	       (unsigned long long)s->tree_size);
	printf("  checkpoints:    %llu (slowest quote %llu ms)\n",
	       (unsigned long long)s->checkpoints,
	       (unsigned long long)s->quote_ms_max);
	printf("  secret memory:  %s\n", s->secret_memory);
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
		     "\"tree_size\":%llu,\"injector_restarts\":%llu,"
		     "\"connections\":%llu,\"pre_hello_failures\":%llu,"
		     "\"bytes_sent\":%llu,\"secret_memory\":\"%s\","
		     "\"results\":{",
		     s->job, s->outcome, s->exit_code,
		     (unsigned long long)st->quantity,
		     (unsigned long long)st->ok,
		     (unsigned long long)st->run_ok,
		     (unsigned long long)st->failed_after_offer,
		     (unsigned long long)st->in_flight,
		     (unsigned long long)st->elapsed_ms, rate_of(st),
		     (unsigned long long)s->fsyncs,
		     (unsigned long long)st->commits,
		     (unsigned long long)s->checkpoints,
		     (unsigned long long)s->quote_ms_max,
		     (unsigned long long)s->tree_size,
		     (unsigned long long)st->injector_restarts,
		     (unsigned long long)st->conns_accepted,
		     (unsigned long long)st->pre_hello_failures,
		     (unsigned long long)st->bytes_sent, s->secret_memory);
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
