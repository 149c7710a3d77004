// SPDX-License-Identifier: Apache-2.0
/*
 * One record element of an exported bundle, written without jansson: a
 * 1,000,000-device export spent a third of its time building and dumping
 * one small object per record (json_dumpf writes piece by piece).  The
 * bytes are the ones json_dumpf(JSON_COMPACT) wrote: the same key order,
 * the same string escapes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"
#include "evidence_int.h"

/* s as a JSON string the way jansson dumps it (UTF-8 kept). */
static char *put_string(char *o, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];

		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c >= 0x20) {
			*o++ = (char)c;
		} else {
			*o++ = '\\';
			switch (c) {
			case '\b': *o++ = 'b'; break;
			case '\f': *o++ = 'f'; break;
			case '\n': *o++ = 'n'; break;
			case '\r': *o++ = 'r'; break;
			case '\t': *o++ = 't'; break;
			default:
				o += sprintf(o, "u00%c%c", hex[c >> 4],
					     hex[c & 15]);
			}
		}
	}
	*o++ = '"';
	return o;
}

int kj_ev_write_record(FILE *f, bool first, uint64_t seq, uint64_t ck,
		       const uint8_t *jcs, size_t len,
		       const uint8_t (*proof)[32], int n, char **buf,
		       size_t *cap)
{
	size_t need = 6 * len + (size_t)n * 67 + 128;
	char *o;

	if (need > *cap) {
		char *nb = realloc(*buf, need);

		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = need;
	}
	o = *buf;
	o += sprintf(o, "%s{\"leaf_index\":%" PRIu64 ",\"checkpoint\":%" PRIu64 ",\"record\":",
		     first ? "" : ",", seq, ck);
	o = put_string(o, jcs, len);
	o += sprintf(o, ",\"inclusion\":[");
	for (int i = 0; i < n; i++) {
		*o++ = '"';
		kj_hex_encode(proof[i], 32, o);
		o += 64;
		*o++ = '"';
		if (i + 1 < n)
			*o++ = ',';
	}
	*o++ = ']';
	*o++ = '}';
	return fwrite(*buf, 1, (size_t)(o - *buf), f) == (size_t)(o - *buf) ?
		       0 : -EIO;
}
