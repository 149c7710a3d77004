// SPDX-License-Identifier: Apache-2.0
#include <stdio.h>
#include <string.h>

#include "der.h"
#include "log.h"

void kj_der_init(struct kj_der *d, const uint8_t *buf, size_t len,
		 const char *path)
{
	d->base = buf;
	d->p = buf;
	d->end = buf + len;
	d->path = path;
	d->quiet = false;
}

void kj_der_enter(const struct kj_der *parent, const struct kj_tlv *t,
		  struct kj_der *child)
{
	child->base = parent->base;
	child->p = t->val;
	child->end = t->val + t->len;
	child->path = parent->path;
	child->quiet = parent->quiet;
}

int kj_der_fail(const struct kj_der *d, const uint8_t *at, const char *what,
		const char *why)
{
	if (d->quiet)
		return -EBADMSG;
	kj_err("%s: malformed CMS: %s at offset %zu: %s", d->path, what,
	       (size_t)(at - d->base), why);
	return -EBADMSG;
}

int kj_der_peek(const struct kj_der *d)
{
	return d->p < d->end ? d->p[0] : -1;
}

int kj_der_next(struct kj_der *d, struct kj_tlv *t, const char *what)
{
	const uint8_t *p = d->p;
	size_t avail = (size_t)(d->end - p), len, hl = 2;

	if (avail < 2)
		return kj_der_fail(d, p, what, "truncated");
	if ((p[0] & 0x1f) == 0x1f)
		return kj_der_fail(d, p, what, "multi-byte tag");
	len = p[1];
	if (len == 0x80)
		return kj_der_fail(d, p, what,
				   "indefinite length (BER streaming); "
				   "make it without -stream");
	if (len > 0x80) {
		size_t n = len & 0x7f;

		if (n > 4)
			return kj_der_fail(d, p, what, "length over 4 GiB");
		if (avail < 2 + n)
			return kj_der_fail(d, p, what, "truncated length");
		if (p[2] == 0)
			return kj_der_fail(d, p, what, "non-minimal length");
		len = 0;
		for (size_t i = 0; i < n; i++)
			len = (len << 8) | p[2 + i];
		if (len < 0x80)
			return kj_der_fail(d, p, what, "non-minimal length");
		hl += n;
	}
	if (len > avail - hl)
		return kj_der_fail(d, p, what, "length runs past its container");
	t->tag = p[0];
	t->tlv = p;
	t->tlv_len = hl + len;
	t->val = p + hl;
	t->len = len;
	d->p = p + hl + len;
	return 0;
}

int kj_der_expect(struct kj_der *d, uint8_t tag, struct kj_tlv *t,
		  const char *what)
{
	char why[64];

	if (kj_der_peek(d) != tag) {
		if (!kj_der_more(d))
			return kj_der_fail(d, d->p, what, "missing");
		snprintf(why, sizeof(why), "expected tag 0x%02x, got 0x%02x",
			 tag, d->p[0]);
		return kj_der_fail(d, d->p, what, why);
	}
	return kj_der_next(d, t, what);
}

int kj_der_optional(struct kj_der *d, uint8_t tag, struct kj_tlv *t,
		    const char *what)
{
	if (kj_der_peek(d) != tag)
		return 0;
	KJ_TRY(kj_der_next(d, t, what));
	return 1;
}

int kj_der_end(const struct kj_der *d, const char *what)
{
	if (kj_der_more(d))
		return kj_der_fail(d, d->p, what, "unexpected trailing data");
	return 0;
}

int kj_der_small_int(const struct kj_der *d, const struct kj_tlv *t,
		     const char *what, long *out)
{
	long v = 0;

	if (t->tag != KJ_DER_INTEGER || t->len < 1 || t->len > 4 ||
	    (t->val[0] & 0x80) || (t->len > 1 && t->val[0] == 0 &&
				   !(t->val[1] & 0x80)))
		return kj_der_fail(d, t->tlv, what, "not a small INTEGER");
	for (size_t i = 0; i < t->len; i++)
		v = (v << 8) | t->val[i];
	*out = v;
	return 0;
}

bool kj_der_oid_is(const struct kj_tlv *t, const uint8_t *oid, size_t oid_len)
{
	return t->tag == KJ_DER_OID && t->len == oid_len &&
	       !memcmp(t->val, oid, oid_len);
}

void kj_der_oid_text(const struct kj_tlv *t, char *buf, size_t cap)
{
	size_t off = 0;
	unsigned long v = 0;
	bool first = true;

	buf[0] = '\0';
	for (size_t i = 0; i < t->len && off + 24 < cap; i++) {
		v = (v << 7) | (t->val[i] & 0x7f);
		if (t->val[i] & 0x80) {
			if (v > (1UL << 48))
				break;
			continue;
		}
		if (first) {
			unsigned long a = v < 80 ? v / 40 : 2;

			off += (size_t)snprintf(buf + off, cap - off, "%lu.%lu",
						a, v - a * 40);
			first = false;
		} else {
			off += (size_t)snprintf(buf + off, cap - off, ".%lu", v);
		}
		v = 0;
	}
}

size_t kj_der_header(uint8_t tag, size_t len, uint8_t out[6])
{
	size_t n = 0;

	out[0] = tag;
	if (len < 0x80) {
		out[1] = (uint8_t)len;
		return 2;
	}
	for (size_t l = len; l; l >>= 8)
		n++;
	out[1] = (uint8_t)(0x80 | n);
	for (size_t i = 0; i < n; i++)
		out[2 + i] = (uint8_t)(len >> (8 * (n - 1 - i)));
	return 2 + n;
}
