// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <openssl/err.h>

#include "log.h"
#include "clock.h"

static enum kj_log_level max_level = KJ_LOG_INFO;
static bool to_syslog;
static int json = -1; /* -1: not decided yet (KJ_LOG_FORMAT_ENV) */
static void (*observer)(void *ctx, const char *line);
static void *observer_ctx;

void kj_log_observe_errors(void (*fn)(void *ctx, const char *line),
			   void *ctx)
{
	observer = fn;
	observer_ctx = ctx;
}

void kj_log_set_json(bool on)
{
	json = on;
	/* Child processes (injectors) log the same way. */
	if (setenv(KJ_LOG_FORMAT_ENV, on ? "json" : "text", 1))
		json = on; /* ENOMEM: this process still does */
}

bool kj_log_json(void)
{
	const char *v;

	if (json < 0) {
		v = getenv(KJ_LOG_FORMAT_ENV);
		json = v && !strcmp(v, "json");
	}
	return json;
}

/* "2026-12-03T10:00:00.123Z" into out[25]. */
void kj_log_time(char out[25])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (!strftime(out, 25, "%Y-%m-%dT%H:%M:%S", &tm))
		out[0] = '\0';
	snprintf(out + strlen(out), 6, ".%03uZ",
		 (unsigned)(ts.tv_nsec / 1000000) % 1000);
}

size_t kj_json_escape(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	for (; *s && n + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return n;
}

static void log_json(enum kj_log_level lvl, const char *line)
{
	static const char *const name[] = { "error", "warning", "info",
					     "debug" };
	char esc[4 * 2048], ts[25];

	kj_json_escape(line, esc, sizeof(esc));
	kj_log_time(ts);
	fprintf(stderr, "{\"ts\":\"%s\",\"event\":\"log\",\"level\":\"%s\","
		"\"message\":\"%s\"}\n", ts, name[lvl], esc);
}

static bool muted;

void kj_log_set_level(enum kj_log_level max)
{
	max_level = max;
}

void kj_log_mute(bool on)
{
	muted = on;
}

void kj_log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	to_syslog = true;
}

void kj_vlog(enum kj_log_level lvl, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "", "warning: ", "", "debug: " };

	if (lvl > max_level || muted)
		return;
	if (to_syslog) {
		vsyslog(prio[lvl], fmt, ap);
		return;
	}
	/* One fprintf per line: lines from several processes do not interleave. */
	char line[2048];
	vsnprintf(line, sizeof(line), fmt, ap);
	if (lvl == KJ_LOG_ERR && observer)
		observer(observer_ctx, line);
	if (kj_log_json())
		log_json(lvl, line);
	else
		fprintf(stderr, "kinject: %s%s\n", tag[lvl], line);
}

void kj_log(enum kj_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kj_vlog(lvl, fmt, ap);
	va_end(ap);
}

int kj_err_ssl(const char *fmt, ...)
{
	char msg[1024], reason[256] = "no detail on the OpenSSL error queue";
	unsigned long e = ERR_peek_error();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	kj_err("%s (OpenSSL: %s)", msg, reason);
	return -EIO;
}

void kj_log_ratelimited(struct kj_ratelimit *rl, enum kj_log_level lvl,
			const char *fmt, ...)
{
	uint64_t now = kj_now_ms();
	va_list ap;

	if (now - rl->window_start_ms >= rl->interval_ms) {
		if (rl->suppressed)
			kj_log(lvl, "%u similar messages suppressed", rl->suppressed);
		rl->window_start_ms = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed >= rl->burst) {
		rl->suppressed++;
		return;
	}
	rl->printed++;
	va_start(ap, fmt);
	kj_vlog(lvl, fmt, ap);
	va_end(ap);
}
