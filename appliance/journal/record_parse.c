// SPDX-License-Identifier: Apache-2.0
/*
 * The strict record parser (record.h): it accepts exactly the bytes
 * record.c would write, so a leaf read back from the journal or from
 * evidence is the leaf that was hashed.  Apart from the serialiser because
 * it is the half that reads bytes from outside (the verifier's view of a
 * leaf; tests/fuzz/fuzz_record.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "record.h"
#include "record_int.h"

enum tok_type { T_NULL, T_INT, T_STR };

struct tok {
	enum tok_type type;
	uint64_t n;
	const char *s; /* NUL-terminated, in owned_ */
	size_t slen;
};

struct reader {
	const uint8_t *p;
	size_t len;
	size_t pos;
	char *out;     /* owned_ */
	size_t out_len;
	enum field f;  /* for messages */
};

static int parse_err(struct reader *rd, const char *why)
{
	if (rd->f < F_COUNT_)
		kj_err("record: field \"%s\": %s at byte %zu",
		       kj_rec_field_names[rd->f], why, rd->pos);
	else
		kj_err("record: %s at byte %zu", why, rd->pos);
	return -EBADMSG;
}

static int expect(struct reader *rd, const char *lit)
{
	size_t n = strlen(lit);

	if (rd->len - rd->pos < n || memcmp(rd->p + rd->pos, lit, n))
		return parse_err(rd, "unexpected bytes");
	rd->pos += n;
	return 0;
}

static int parse_int(struct reader *rd, struct tok *t)
{
	uint64_t v = 0;
	size_t start = rd->pos;

	while (rd->pos < rd->len && rd->p[rd->pos] >= '0' &&
	       rd->p[rd->pos] <= '9') {
		v = v * 10 + (uint64_t)(rd->p[rd->pos++] - '0');
		if (v > KJ_RECORD_INT_MAX)
			return parse_err(rd, "integer above 2^53-1");
	}
	if (rd->pos - start > 1 && rd->p[start] == '0')
		return parse_err(rd, "leading zero");
	t->type = T_INT;
	t->n = v;
	return 0;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* One escape after the backslash; only the forms RFC 8785 emits. */
static int parse_escape(struct reader *rd, char *c)
{
	static const char from[] = "\"\\bfnrt", to[] = "\"\\\b\f\n\r\t";
	const char *k;
	int hi, lo;

	if (rd->pos >= rd->len)
		return parse_err(rd, "truncated escape");
	k = memchr(from, rd->p[rd->pos], sizeof(from) - 1);
	if (k && rd->p[rd->pos]) {
		*c = to[k - from];
		rd->pos++;
		return 0;
	}
	if (rd->len - rd->pos < 5 || memcmp(rd->p + rd->pos, "u00", 3))
		return parse_err(rd, "escape RFC 8785 does not use");
	hi = hexval(rd->p[rd->pos + 3]);
	lo = hexval(rd->p[rd->pos + 4]);
	if (hi < 0 || lo < 0 || hi > 1 || (hi == 0 && lo == 0))
		return parse_err(rd, "\\u escape RFC 8785 does not use");
	*c = (char)(hi * 16 + lo);
	rd->pos += 5;
	return 0;
}

static int parse_str(struct reader *rd, struct tok *t)
{
	char *o = rd->out + rd->out_len;
	size_t n = 0;

	rd->pos++; /* opening quote */
	for (;;) {
		uint8_t c;
		size_t l;

		if (rd->pos >= rd->len)
			return parse_err(rd, "unterminated string");
		c = rd->p[rd->pos];
		if (c == '"')
			break;
		if (c == '\\') {
			rd->pos++;
			KJ_TRY(parse_escape(rd, &o[n++]));
			continue;
		}
		if (c < 0x20)
			return parse_err(rd, "raw control character");
		l = kj_rec_utf8_seq(rd->p + rd->pos, rd->len - rd->pos);
		if (!l)
			return parse_err(rd, "invalid UTF-8");
		memcpy(o + n, rd->p + rd->pos, l);
		n += l;
		rd->pos += l;
	}
	rd->pos++;
	o[n] = '\0';
	rd->out_len += n + 1;
	t->type = T_STR;
	t->s = o;
	t->slen = n;
	return 0;
}

static int parse_value(struct reader *rd, struct tok *t)
{
	if (rd->pos >= rd->len)
		return parse_err(rd, "truncated");
	switch (rd->p[rd->pos]) {
	case 'n':
		t->type = T_NULL;
		return expect(rd, "null");
	case '"':
		return parse_str(rd, t);
	default:
		if (rd->p[rd->pos] >= '0' && rd->p[rd->pos] <= '9')
			return parse_int(rd, t);
		return parse_err(rd, "not null, a string or an integer");
	}
}

static int tokenize(struct reader *rd, struct tok toks[F_COUNT_])
{
	rd->f = F_COUNT_;
	KJ_TRY(expect(rd, "{"));
	for (int f = 0; f < F_COUNT_; f++) {
		rd->f = (enum field)f;
		KJ_TRY(expect(rd, "\""));
		KJ_TRY(expect(rd, kj_rec_field_names[f]));
		KJ_TRY(expect(rd, "\":"));
		KJ_TRY(parse_value(rd, &toks[f]));
		KJ_TRY(expect(rd, f == F_COUNT_ - 1 ? "}" : ","));
	}
	rd->f = F_COUNT_;
	if (rd->pos != rd->len)
		return parse_err(rd, "trailing bytes");
	return 0;
}

static int tok_err(enum field f, const char *why)
{
	kj_err("record: field \"%s\": %s", kj_rec_field_names[f], why);
	return -EBADMSG;
}

static int want_str(const struct tok *toks, enum field f, const char **out)
{
	if (toks[f].type != T_STR)
		return tok_err(f, "expected a string");
	*out = toks[f].s;
	return 0;
}

static int want_int(const struct tok *toks, enum field f, uint64_t max,
		    uint64_t *out)
{
	if (toks[f].type != T_INT)
		return tok_err(f, "expected an integer");
	if (toks[f].n > max)
		return tok_err(f, "integer out of range");
	*out = toks[f].n;
	return 0;
}

static int want_hex(const struct tok *toks, enum field f, uint8_t *out,
		    size_t n)
{
	if (toks[f].type != T_STR || toks[f].slen != 2 * n ||
	    kj_hex_decode(toks[f].s, out, n))
		return tok_err(f, "expected lowercase hex of the right length");
	return 0;
}

static int fill_device(const struct tok *t, struct kj_record *r)
{
	uint64_t v;

	KJ_TRY(want_str(t, F_SITE, &r->site));
	KJ_TRY(want_int(t, F_SOCKET, UINT16_MAX, &v));
	r->socket = (uint16_t)v;
	KJ_TRY(want_str(t, F_HWREV, &r->hwrev));
	if (t[F_UID].type != T_STR || t[F_UID].slen % 2 ||
	    t[F_UID].slen < 2 || t[F_UID].slen > 2 * KJ_RECORD_UID_MAX)
		return tok_err(F_UID, "expected 1..64 bytes of hex");
	r->uid_len = t[F_UID].slen / 2;
	KJ_TRY(want_hex(t, F_UID, r->uid, r->uid_len));
	if (t[F_ATTEMPT].type != T_NULL) {
		r->has_attempt = true;
		KJ_TRY(want_int(t, F_ATTEMPT, KJ_RECORD_INT_MAX, &r->attempt));
	}
	if (t[F_SERIAL].type != T_NULL)
		KJ_TRY(want_str(t, F_SERIAL, &r->serial));
	if (t[F_CRED_INDEX].type != T_NULL) {
		r->has_cred = true;
		KJ_TRY(want_int(t, F_CRED_INDEX, KJ_RECORD_INT_MAX,
				&r->cred_index));
		KJ_TRY(want_hex(t, F_CERT_SHA256, r->cert_sha256, 32));
	}
	if (t[F_READBACK].type != T_NULL) {
		r->has_readback = true;
		KJ_TRY(want_hex(t, F_READBACK, r->readback, 32));
	}
	if (r->result == KJ_RES_SITE_ABORT) {
		KJ_TRY(want_int(t, F_SITE_CODE, UINT16_MAX, &v));
		r->site_code = (uint16_t)v;
	}
	return 0;
}

static int fill_kind(const struct tok *t, struct kj_record *r)
{
	const char *s;

	KJ_TRY(want_str(t, F_KIND, &s));
	for (unsigned k = 0; k < KJ_ARRAY_SIZE(kj_rec_kind_names); k++)
		if (!strcmp(s, kj_rec_kind_names[k]))
			r->kind = (enum kj_record_kind)k;
	if (strcmp(s, kj_rec_kind_names[r->kind]))
		return tok_err(F_KIND, "unknown kind");
	r->result = KJ_RES_NONE;
	if (r->kind != KJ_REC_JOB_START) {
		KJ_TRY(want_str(t, F_RESULT, &s));
		if (kj_result_from_name(s, &r->result) ||
		    !kj_rec_result_fits_kind(r->kind, r->result))
			return tok_err(F_RESULT, "not a result of this kind");
	}
	return 0;
}

static int fill_record(const struct tok *t, struct kj_record *r)
{
	uint64_t v;

	KJ_TRY(want_int(t, F_V, KJ_RECORD_INT_MAX, &v));
	if (v != KJ_RECORD_VERSION)
		return tok_err(F_V, "unsupported record version");
	KJ_TRY(fill_kind(t, r));
	KJ_TRY(want_int(t, F_SEQ, KJ_RECORD_INT_MAX, &r->seq));
	KJ_TRY(want_int(t, F_JOB_SEQ, KJ_RECORD_INT_MAX, &r->job_seq));
	if (t[F_TIME].type != T_STR ||
	    kj_record_parse_time(t[F_TIME].s, t[F_TIME].slen, &r->time_ms))
		return tok_err(F_TIME, "expected RFC 3339 UTC with ms");
	KJ_TRY(want_str(t, F_JOB, &r->job));
	KJ_TRY(want_str(t, F_CUSTOMER, &r->customer));
	KJ_TRY(want_str(t, F_PRODUCT, &r->product));
	KJ_TRY(want_str(t, F_BATCH, &r->batch));
	KJ_TRY(want_str(t, F_OPERATOR, &r->operator_id));
	switch (r->kind) {
	case KJ_REC_JOB_START:
		KJ_TRY(want_hex(t, F_WORK_ORDER_SHA256, r->work_order_sha256,
				32));
		KJ_TRY(want_int(t, F_QUANTITY, KJ_RECORD_INT_MAX,
				&r->quantity));
		break;
	case KJ_REC_JOB_END:
		KJ_TRY(want_int(t, F_OK_COUNT, KJ_RECORD_INT_MAX,
				&r->ok_count));
		KJ_TRY(want_int(t, F_FAILED_COUNT, KJ_RECORD_INT_MAX,
				&r->failed_count));
		return 0;
	default:
		KJ_TRY(fill_device(t, r));
		break;
	}
	KJ_TRY(want_str(t, F_FW_VERSION, &r->fw_version));
	return want_hex(t, F_FW_SHA256, r->fw_sha256, 32);
}

/* The bytes must be exactly what we would write for the parsed record:
 * catches nulls that should be values and values that should be null. */
static int check_canonical(const struct kj_record *r, const uint8_t *jcs,
			   size_t len)
{
	char *again = malloc(KJ_RECORD_MAX);
	int n, rc = 0;
	size_t i;

	if (!again) {
		kj_err("record: out of memory");
		return -ENOMEM;
	}
	n = kj_record_serialize(r, again, KJ_RECORD_MAX);
	if (n < 0) {
		rc = -EBADMSG;
	} else if ((size_t)n != len || memcmp(again, jcs, len)) {
		for (i = 0; i < len && i < (size_t)n && again[i] == jcs[i]; i++)
			;
		kj_err("record: not the canonical form of a %s record "
		       "(EVIDENCE.md §2): differs at byte %zu",
		       kj_rec_kind_names[r->kind], i);
		rc = -EBADMSG;
	}
	free(again);
	return rc;
}

int kj_record_parse(const void *jcs, size_t len, struct kj_record *out)
{
	struct tok toks[F_COUNT_];
	struct reader rd = { .p = jcs, .len = len };
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > KJ_RECORD_MAX) {
		kj_err("record: %zu bytes, more than %d", len, KJ_RECORD_MAX);
		return -EBADMSG;
	}
	/* Unescaped strings never outgrow their escaped form. */
	out->owned_ = malloc(len + F_COUNT_);
	if (!out->owned_) {
		kj_err("record: out of memory");
		return -ENOMEM;
	}
	rd.out = out->owned_;
	rc = tokenize(&rd, toks);
	if (!rc)
		rc = fill_record(toks, out);
	if (!rc)
		rc = check_canonical(out, jcs, len);
	if (rc)
		kj_record_release(out);
	return rc;
}

void kj_record_release(struct kj_record *r)
{
	free(r->owned_);
	memset(r, 0, sizeof(*r));
}
