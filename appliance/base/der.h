/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small, strict DER reader for the CMS structures we parse in place
 * (cms.c).  Definite lengths only, minimal length encoding, one-byte tags
 * (CMS needs no high tag numbers), lengths below 2^32.  Errors are logged
 * once, naming the file (cursor path), the field and the byte offset.
 */
#ifndef KINJECT_DER_H
#define KINJECT_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinject.h"

/* Universal and context tags used by CMS. */
enum {
	KJ_DER_INTEGER = 0x02,
	KJ_DER_BIT_STRING = 0x03,
	KJ_DER_OCTET_STRING = 0x04,
	KJ_DER_NULL = 0x05,
	KJ_DER_OID = 0x06,
	KJ_DER_SEQUENCE = 0x30,
	KJ_DER_SET = 0x31,
	KJ_DER_CTX0 = 0xa0, /* [0] constructed */
	KJ_DER_CTX1 = 0xa1,
	KJ_DER_CTX2 = 0xa2,
	KJ_DER_CTX0_PRIM = 0x80, /* [0] primitive */
	KJ_DER_CTX1_PRIM = 0x81,
};

/* One element: tag, the whole encoding [tlv, tlv + tlv_len), the value. */
struct kj_tlv {
	uint8_t tag;
	const uint8_t *tlv;
	size_t tlv_len;
	const uint8_t *val;
	size_t len;
};

/* A cursor over the contents of one constructed element. */
struct kj_der {
	const uint8_t *base; /* start of the file, for offsets in messages */
	const uint8_t *p;
	const uint8_t *end;
	const char *path;
	bool quiet; /* probing: fail without logging */
};

void kj_der_init(struct kj_der *d, const uint8_t *buf, size_t len,
		 const char *path);

/* A cursor over the value of t (same base and path as parent). */
void kj_der_enter(const struct kj_der *parent, const struct kj_tlv *t,
		  struct kj_der *child);

static inline bool kj_der_more(const struct kj_der *d)
{
	return d->p < d->end;
}

/* Tag of the next element, or -1 at the end. */
int kj_der_peek(const struct kj_der *d);

/* Read the next element, whatever its tag.  what names it in messages. */
KJ_MUST_CHECK int kj_der_next(struct kj_der *d, struct kj_tlv *t,
			      const char *what);

/* Read the next element, which must have tag. */
KJ_MUST_CHECK int kj_der_expect(struct kj_der *d, uint8_t tag,
				struct kj_tlv *t, const char *what);

/* If the next element has tag, read it and return 1; else 0. */
KJ_MUST_CHECK int kj_der_optional(struct kj_der *d, uint8_t tag,
				  struct kj_tlv *t, const char *what);

/* The cursor must be exhausted (no trailing bytes inside a structure). */
KJ_MUST_CHECK int kj_der_end(const struct kj_der *d, const char *what);

/* A small non-negative INTEGER (<= 2^31), e.g. a version. */
KJ_MUST_CHECK int kj_der_small_int(const struct kj_der *d,
				   const struct kj_tlv *t, const char *what,
				   long *out);

/* True if t is an OID whose DER value equals oid[0..oid_len). */
bool kj_der_oid_is(const struct kj_tlv *t, const uint8_t *oid, size_t oid_len);

/* Dotted text of an OID value, for messages ("1.2.840..."). */
void kj_der_oid_text(const struct kj_tlv *t, char *buf, size_t cap);

/* Log "path: malformed DER: what at offset N: why" and return -EBADMSG. */
int kj_der_fail(const struct kj_der *d, const uint8_t *at, const char *what,
		const char *why);

/*
 * Writer helper: the header (tag + length) for a value of len bytes into
 * out (at most 6 bytes); returns the header length.
 */
size_t kj_der_header(uint8_t tag, size_t len, uint8_t out[6]);

#endif
