/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by every module: numbers, files, hex, hashing, time. */
#ifndef KINJECT_UTIL_H
#define KINJECT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* kj_now_ms(): apart in clock.h, so log.c needs nothing of util.c. */
#include "clock.h"
#include "kinject.h"

/*
 * Parse a decimal integer in [min, max].  `what` names the flag or field for
 * the error message, e.g. "--max-connections".  Rejects signs, spaces,
 * trailing bytes and overflow.
 */
KJ_MUST_CHECK int kj_parse_u64(const char *s, uint64_t min, uint64_t max,
			       const char *what, uint64_t *out);

/*
 * Read a whole (non-secret) file into a malloc'd buffer with a trailing NUL
 * not counted in *len.  Files over max_size are refused.  Errors name path.
 */
KJ_MUST_CHECK int kj_read_file(const char *path, size_t max_size,
			       uint8_t **buf, size_t *len);

/*
 * Durably replace path with data: write a temporary file of an
 * unpredictable name in the same directory (created O_EXCL, mode set with
 * fchmod), fsync it, rename over path, fsync the directory.
 */
KJ_MUST_CHECK int kj_write_file_atomic(const char *path, const void *data,
				       size_t len, unsigned mode);

/* Create a directory (and parents) with mode if missing. */
KJ_MUST_CHECK int kj_mkdir_p(const char *path, unsigned mode);

/* Lower-case hex; out must hold 2*len+1 bytes. */
void kj_hex_encode(const uint8_t *in, size_t len, char *out);
/* Exactly 2*out_len hex digits, either case. */
KJ_MUST_CHECK int kj_hex_decode(const char *in, uint8_t *out, size_t out_len);

/* SHA-256 of a buffer (non-secret or secret: no copy is made). */
void kj_sha256(const void *data, size_t len, uint8_t out[32]);

/* Big-endian stores and loads, for wire formats and hashing domains. */
static inline void kj_put_u16be(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void kj_put_u32be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void kj_put_u64be(uint8_t *p, uint64_t v)
{
	kj_put_u32be(p, (uint32_t)(v >> 32));
	kj_put_u32be(p + 4, (uint32_t)v);
}

static inline uint16_t kj_get_u16be(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t kj_get_u32be(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t kj_get_u64be(const uint8_t *p)
{
	return ((uint64_t)kj_get_u32be(p) << 32) | kj_get_u32be(p + 4);
}

#endif
