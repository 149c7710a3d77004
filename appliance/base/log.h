/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One message convention: "kinject: <subject>: <problem>", where subject is
 * the file, field, flag or peer at fault, quoting the bad input.  Messages go
 * to stderr, or to syslog (LOG_DAEMON) once kj_log_use_syslog() was called.
 * Never pass secret bytes to these functions.
 */
#ifndef KINJECT_LOG_H
#define KINJECT_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kj_log_level { KJ_LOG_ERR, KJ_LOG_WARN, KJ_LOG_INFO, KJ_LOG_DEBUG };

void kj_log_set_level(enum kj_log_level max);

/*
 * JSON lines instead of text (`kinject run --log-format json', the
 * default off a terminal): {"ts","event":"log","level","message"}, one
 * object per line, for a plant's log collector.  Set in the environment
 * too (KINJECT_LOG_FORMAT=json|text), so child processes follow.
 */
#define KJ_LOG_FORMAT_ENV "KINJECT_LOG_FORMAT"
void kj_log_set_json(bool on);
bool kj_log_json(void);
/* fn sees every error line this process logs (the operator's screen
 * shows the last one); NULL stops it.  Called before the line is
 * written, in the logging thread. */
void kj_log_observe_errors(void (*fn)(void *ctx, const char *line),
			   void *ctx);
/* UTC now as "2026-12-03T10:00:00.123Z" (24 chars + NUL). */
void kj_log_time(char out[25]);
/* s as the inside of a JSON string (", \, controls escaped), truncated to
 * fit cap; returns its length. */
size_t kj_json_escape(const char *s, char *out, size_t cap);
/* Drop every message while on: a checker that already told a fault once
 * (the verifier: one broken event log fails every checkpoint alike). */
void kj_log_mute(bool on);
void kj_log_use_syslog(const char *ident);
void kj_log(enum kj_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kj_vlog(enum kj_log_level lvl, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define kj_err(...) kj_log(KJ_LOG_ERR, __VA_ARGS__)
#define kj_warn(...) kj_log(KJ_LOG_WARN, __VA_ARGS__)
#define kj_info(...) kj_log(KJ_LOG_INFO, __VA_ARGS__)
#define kj_debug(...) kj_log(KJ_LOG_DEBUG, __VA_ARGS__)

/*
 * OpenSSL failure: logs the message followed by the first reason on the
 * OpenSSL error queue, then clears the queue.  Returns -EIO so callers can
 * write "return kj_err_ssl(...)".
 */
int kj_err_ssl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Rate limit for noisy peers (PROTOCOL.md: pre-HELLO failures are counted
 * and logged rate-limited).  At most `burst` messages per `interval_ms`;
 * the next message after a quiet period reports how many were suppressed.
 */
struct kj_ratelimit {
	uint64_t window_start_ms;
	unsigned interval_ms;
	unsigned burst;
	unsigned printed;
	unsigned suppressed;
};
#define KJ_RATELIMIT_INIT(interval, n) { 0, (interval), (n), 0, 0 }
void kj_log_ratelimited(struct kj_ratelimit *rl, enum kj_log_level lvl,
			const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
