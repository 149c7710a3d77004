// SPDX-License-Identifier: Apache-2.0
/*
 * The operator's status screen (progress.h, SPEC.md §4): the bottom lines
 * of the terminal, redrawn in place, plain ANSI (VT100 scroll region, no
 * curses).  Log lines, ours and the injectors' (other processes writing
 * the same terminal), scroll in the region above: the cursor is never left
 * inside the screen, so nothing can be printed into it.  Each redraw is
 * one write(2).  A terminal that does not say its size (script(1) without
 * one) gets a single live line instead.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/array.h"
#include "base/log.h"
#include "base/util.h"
#include "progress.h"

#define HEAD_LINES 7
#define SOCK_LINES 10           /* socket rows shown, the busiest */
#define SCREEN_LINES (HEAD_LINES + SOCK_LINES + 1)
#define MAX_SOCKS 65536
#define BAR 30

static unsigned term_rows(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) || ws.ws_row < SCREEN_LINES + 5)
		return 0; /* too small or unknown: one live line */
	return ws.ws_row;
}

/* The log region above the screen, the cursor on its last line. */
static void set_region(const struct kj_progress *p)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "\033[1;%ur\033[%u;1H",
			 p->rows - SCREEN_LINES, p->rows - SCREEN_LINES);

	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return; /* a display only */
}

/*
 * The last error: a failed device (the record hook) or an error line any
 * thread logged (the checkpoint worker's TPM errors too).  Process-wide,
 * not in the kj_progress, so the log observer can never outlive it.
 */
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_error[192];

static void observe_error(void *ctx, const char *line)
{
	(void)ctx;
	pthread_mutex_lock(&err_lock);
	snprintf(last_error, sizeof(last_error), "%s", line);
	pthread_mutex_unlock(&err_lock);
}

void kj_status_setup(struct kj_progress *p)
{
	kj_log_observe_errors(observe_error, NULL);
	p->rows = term_rows();
	if (!p->rows)
		return;
	/* Room at the bottom: what was on the screen scrolls up. */
	for (int i = 0; i < SCREEN_LINES; i++)
		fputc('\n', stderr);
	fflush(stderr);
	set_region(p);
	p->region = true;
}

/* A resized terminal: the region and the screen move to the new bottom. */
static void follow_resize(struct kj_progress *p)
{
	unsigned rows = term_rows();

	if (rows == p->rows)
		return;
	if (write(STDERR_FILENO, "\033[r\033[J", 6) < 0)
		return;
	p->rows = rows;
	p->region = rows != 0;
	if (p->region)
		set_region(p);
}

void kj_status_note(struct kj_progress *p, const struct kj_record *r,
		    bool offered)
{
	struct kj_progress_sock *s = NULL;
	char t[KJ_RECORD_TIME_LEN + 1];

	for (size_t i = 0; i < p->n_socks && !s; i++)
		if (p->socks[i].socket == r->socket &&
		    !strcmp(p->socks[i].site, r->site))
			s = &p->socks[i];
	if (!s) {
		if (p->n_socks >= MAX_SOCKS ||
		    kj_grow(&p->socks, &p->cap_socks, p->n_socks + 1, 64) < 0)
			return;
		s = &p->socks[p->n_socks++];
		memset(s, 0, sizeof(*s));
		snprintf(s->site, sizeof(s->site), "%s", r->site);
		s->socket = r->socket;
	}
	s->last_ms = kj_now_ms();
	s->programming = offered;
	if (offered)
		return;
	if (r->result == KJ_RES_OK)
		s->ok++;
	else
		s->failed++;
	s->last = r->result;
	if (r->result == KJ_RES_OK || kj_record_format_time(r->time_ms, t))
		return;
	pthread_mutex_lock(&err_lock);
	snprintf(last_error, sizeof(last_error),
		 "%s at %.40s socket %u, serial %.40s, %.8s UTC",
		 kj_result_name(r->result), r->site, r->socket,
		 r->serial ? r->serial : "none", t + 11);
	pthread_mutex_unlock(&err_lock);
}

static size_t put(char *buf, size_t n, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static size_t put(char *buf, size_t n, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (n >= cap)
		return n;
	va_start(ap, fmt);
	k = vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
	return k < 0 ? n : n + (size_t)k < cap ? n + (size_t)k : cap - 1;
}

/* "[#####.....] 37/50 ok  212/s  eta 0:04" */
static size_t bar_line(char *buf, size_t n, size_t cap,
		       const struct kj_keeper_stats *st)
{
	char bar[BAR + 1], when[32];
	unsigned filled = st->quantity ? (unsigned)(st->ok * BAR / st->quantity)
				       : 0;

	if (filled > BAR)
		filled = BAR;
	memset(bar, '#', filled);
	memset(bar + filled, '.', BAR - filled);
	bar[BAR] = 0;
	kj_progress_eta(st, when, sizeof(when));
	return put(buf, n, cap, "[%s] %llu/%llu ok  %.0f/s  eta %s  in flight "
		   "%llu  connections %llu", bar, (unsigned long long)st->ok,
		   (unsigned long long)st->quantity, kj_progress_rate(st), when,
		   (unsigned long long)st->in_flight,
		   (unsigned long long)st->conns_open);
}

static int by_name(const void *a, const void *b)
{
	const struct kj_progress_sock *x = a, *y = b;

	return strcmp(x->site, y->site) ?: (int)x->socket - (int)y->socket;
}

static int busier(const void *a, const void *b)
{
	const struct kj_progress_sock *x = a, *y = b;

	if (x->last_ms != y->last_ms)
		return x->last_ms < y->last_ms ? 1 : -1;
	return by_name(a, b);
}

static size_t sock_lines(char *buf, size_t n, size_t cap,
			 struct kj_progress *p, unsigned *lines)
{
	size_t shown = p->n_socks < SOCK_LINES ? p->n_socks : SOCK_LINES;

	/* The most recently busy sockets, shown in a steady order. */
	if (p->n_socks > shown)
		qsort(p->socks, p->n_socks, sizeof(*p->socks), busier);
	if (shown)
		qsort(p->socks, shown, sizeof(*p->socks), by_name);
	n = put(buf, n, cap, "\r\033[2K\033[1m%-20s %6s  %-11s %8s %7s  %s\033[0m\n",
		"site", "socket", "state", "ok", "failed", "last result");
	(*lines)++;
	for (size_t i = 0; i < shown; i++, (*lines)++) {
		const struct kj_progress_sock *s = &p->socks[i];

		n = put(buf, n, cap, "\r\033[2K%-20.20s %6u  %-11s %8llu %7llu  "
			"%s\n", s->site, s->socket,
			s->programming ? "programming" : "idle",
			(unsigned long long)s->ok, (unsigned long long)s->failed,
			s->last ? kj_result_name(s->last) : "-");
	}
	if (p->n_socks > shown) {
		n = put(buf, n, cap, "\r\033[2K(+%zu more sockets)\n",
			p->n_socks - shown);
		(*lines)++;
	} else if (!p->n_socks) {
		n = put(buf, n, cap, "\r\033[2K(no device yet)\n");
		(*lines)++;
	}
	return n;
}

static void draw_screen(struct kj_progress *p)
{
	const struct kj_keeper_stats *st = &p->st;
	uint64_t used = st->failed_after_offer;
	char buf[8192], fail[512], refused[512], err[sizeof(last_error)];
	unsigned lines = HEAD_LINES;
	size_t n;

	pthread_mutex_lock(&err_lock);
	memcpy(err, last_error, sizeof(err));
	pthread_mutex_unlock(&err_lock);
	kj_progress_reasons(st, true, fail, sizeof(fail));
	kj_progress_reasons(st, false, refused, sizeof(refused));
	/* Save the cursor (in the log region), draw below it, restore. */
	n = put(buf, 0, sizeof(buf), "\0337\033[%u;1H",
		p->rows - SCREEN_LINES + 1);
	n = put(buf, n, sizeof(buf), "\r\033[2K\033[7m kinject  job %.60s%s "
		"\033[0m\n\r\033[2K", p->job ? p->job : "",
		st->issuing ? "" : "  (no longer issuing)");
	n = bar_line(buf, n, sizeof(buf), st);
	n = put(buf, n, sizeof(buf), "\n\r\033[2Kfailure budget (max_failed): "
		"%llu used of %llu, %llu left\n", (unsigned long long)used,
		(unsigned long long)p->max_failed,
		(unsigned long long)(p->max_failed > used ? p->max_failed - used
							  : 0));
	n = put(buf, n, sizeof(buf), "\r\033[2Kfailures after offer (this run): "
		"%.200s\n", fail);
	n = put(buf, n, sizeof(buf), "\r\033[2Krefused before offer (this run, "
		"nothing sent): %.200s\n", refused);
	n = put(buf, n, sizeof(buf), "\r\033[2Klast error: %s\n\r\033[2K\n",
		err[0] ? err : "none");
	n = sock_lines(buf, n, sizeof(buf), p, &lines);
	for (; lines < SCREEN_LINES; lines++)
		n = put(buf, n, sizeof(buf), "\r\033[2K\n");
	n = put(buf, n - 1, sizeof(buf), "\0338"); /* no newline on the last */
	if (write(STDERR_FILENO, buf, n) < 0)
		return; /* a display only: the job goes on */
}

void kj_status_draw(struct kj_progress *p)
{
	char buf[1024];
	size_t n;

	if (p->region || p->rows)
		follow_resize(p);
	if (p->region) {
		draw_screen(p);
		return;
	}
	n = put(buf, 0, sizeof(buf), "\r\033[K");
	n = bar_line(buf, n, sizeof(buf), &p->st);
	n = put(buf, n, sizeof(buf), "  max_failed %llu/%llu",
		(unsigned long long)p->st.failed_after_offer,
		(unsigned long long)p->max_failed);
	if (write(STDERR_FILENO, buf, n) > 0)
		p->drew_line = true;
}

void kj_status_end(struct kj_progress *p)
{
	char buf[64];
	int n;

	kj_log_observe_errors(NULL, NULL);
	if (p->region) {
		draw_screen(p);
		/* Whole terminal scrolls again; the summary goes below the
		 * last screen, which stays as the final picture. */
		n = snprintf(buf, sizeof(buf), "\033[r\033[%u;1H\n", p->rows);
		if (write(STDERR_FILENO, buf, (size_t)n) < 0)
			return;
		p->region = false;
	} else if (p->drew_line) {
		fputc('\n', stderr);
	}
	p->drew_line = false;
}
