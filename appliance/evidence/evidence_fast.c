// SPDX-License-Identifier: Apache-2.0
/*
 * The records of a 1,000,000-device bundle in well under a minute: half
 * of a streamed verify went into jansson building and freeing one small
 * object per record.  This reads a record element directly, but only in
 * the plain form export writes (the four keys once each, decimal
 * integers, hex proof strings, the record string with no escape other
 * than \" and \\ and nothing outside printable ASCII); anything else, valid
 * or not, goes to jansson and evidence_parse.c as before, so what is
 * accepted and every message stay theirs.
 */
#include <stdlib.h>
#include <string.h>

#include "attest/mtree.h"
#include "base/util.h"
#include "journal/record.h"
#include "evidence_int.h"

struct cur {
	const uint8_t *p, *end;
};

static void ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' ||
				 *c->p == '\t' || *c->p == '\r'))
		c->p++;
}

static bool lit(struct cur *c, char ch)
{
	ws(c);
	if (c->p == c->end || *c->p != (uint8_t)ch)
		return false;
	c->p++;
	return true;
}

/* A plain key: its bytes between the quotes (no escape). */
static bool key(struct cur *c, const uint8_t **k, size_t *n)
{
	if (!lit(c, '"'))
		return false;
	*k = c->p;
	while (c->p < c->end && *c->p != '"' && *c->p != '\\')
		c->p++;
	if (c->p == c->end || *c->p != '"')
		return false;
	*n = (size_t)(c->p - *k);
	c->p++;
	return lit(c, ':');
}

/* A decimal integer 0..max, canonical (no sign, no leading zero). */
static bool uint_of(struct cur *c, uint64_t max, uint64_t *v)
{
	const uint8_t *s;

	ws(c);
	s = c->p;
	*v = 0;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		if (c->p - s >= 18)
			return false;
		*v = *v * 10 + (uint64_t)(*c->p++ - '0');
	}
	if (c->p == s || (*s == '0' && c->p - s > 1) || *v > max)
		return false;
	return c->p == c->end || (*c->p != '.' && *c->p != 'e' &&
				  *c->p != 'E');
}

/* The record string: printable ASCII, \" and \\ only. */
static bool text(struct cur *c, struct kj_ev_record *r)
{
	const uint8_t *s;
	size_t n = 0;

	if (!lit(c, '"'))
		return false;
	s = c->p;
	r->jcs = malloc((size_t)(c->end - s) + 1);
	if (!r->jcs)
		return false;
	for (; c->p < c->end && *c->p != '"'; c->p++) {
		uint8_t b = *c->p;

		if (b < 0x20 || b > 0x7e)
			return false;
		if (b == '\\') {
			if (++c->p == c->end ||
			    (*c->p != '"' && *c->p != '\\'))
				return false;
			b = *c->p;
		}
		r->jcs[n++] = (char)b;
	}
	if (c->p == c->end || n > KJ_RECORD_MAX)
		return false;
	c->p++;
	r->jcs[n] = 0;
	r->jcs_len = n;
	return true;
}

static bool lower_hex(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		      (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/* ["<64 lowercase hex>", ...], at most KJ_MTREE_MAX_PROOF. */
static bool proof(struct cur *c, struct kj_ev_record *r)
{
	if (!lit(c, '['))
		return false;
	r->proof = malloc(KJ_MTREE_MAX_PROOF * 32);
	if (!r->proof)
		return false;
	if (lit(c, ']'))
		return true;
	do {
		uint8_t *d = r->proof[r->proof_len];
		char h[65];

		if (r->proof_len == KJ_MTREE_MAX_PROOF || !lit(c, '"') ||
		    c->end - c->p < 65 || c->p[64] != '"')
			return false;
		memcpy(h, c->p, 64);
		h[64] = 0;
		if (!lower_hex(c->p, 64) || kj_hex_decode(h, d, 32) < 0)
			return false;
		c->p += 65;
		r->proof_len++;
	} while (lit(c, ','));
	return lit(c, ']');
}

static bool member(struct cur *c, size_t n_ck, unsigned *seen,
		   struct kj_ev_record *r)
{
	static const char *const names[] = { "leaf_index", "checkpoint",
					     "record", "inclusion" };
	const uint8_t *k;
	size_t n;
	unsigned i;

	if (!key(c, &k, &n))
		return false;
	for (i = 0; i < 4; i++)
		if (strlen(names[i]) == n && !memcmp(names[i], k, n))
			break;
	if (i == 4 || (*seen & (1u << i)))
		return false;
	*seen |= 1u << i;
	switch (i) {
	case 0:
		return uint_of(c, INT64_MAX, &r->leaf_index);
	case 1:
		return uint_of(c, n_ck - 1, &r->checkpoint);
	case 2:
		return text(c, r);
	default:
		return proof(c, r);
	}
}

int kj_ev_fast_record(const uint8_t *p, size_t len, size_t n_ck,
		      struct kj_ev_record *r)
{
	struct cur c = { p, p + len };
	unsigned seen = 0;
	bool ok;

	memset(r, 0, sizeof(*r));
	ok = lit(&c, '{');
	while (ok && seen != 0xf) {
		ok = member(&c, n_ck, &seen, r);
		if (ok && seen != 0xf)
			ok = lit(&c, ',');
	}
	if (ok && lit(&c, '}')) {
		ws(&c);
		if (c.p == c.end) {
			if (!r->proof_len) {
				free(r->proof);
				r->proof = NULL;
			}
			return 0;
		}
	}
	free(r->jcs);
	free(r->proof);
	memset(r, 0, sizeof(*r));
	return 1;
}
