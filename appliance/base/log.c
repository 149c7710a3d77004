// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <syslog.h>
#include <openssl/err.h>

#include "log.h"
#include "clock.h"

static enum kj_log_level max_level = KJ_LOG_INFO;
static bool to_syslog;
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
