// SPDX-License-Identifier: Apache-2.0
/*
 * Records of EVIDENCE.md §2 and their RFC 8785 (JCS) bytes.  The bytes are
 * the transparency log's leaves: any change here changes every leaf hash,
 * so tests/unit/test_record.c pins them with golden vectors.  The strict
 * parser is record_parse.c, the "time" format record_time.c.
 */
#include <stdio.h>
#include <string.h>

#include "record.h"
#include "base/log.h"
#include "base/util.h"
#include "record_int.h"

/* In the order of enum field (record_int.h): RFC 8785 §3.2.3 order. */
const char *const kj_rec_field_names[F_COUNT_] = {
	"attempt", "batch", "cert_sha256", "cred_index", "customer",
	"failed_count", "fw_sha256", "fw_version", "hwrev", "job", "job_seq",
	"kind", "ok_count", "operator", "product", "quantity", "readback",
	"result", "seq", "serial", "site", "site_code", "socket", "time",
	"uid", "v", "work_order_sha256",
};

const char *const kj_rec_kind_names[KJ_REC_JOB_END + 1] = {
	[KJ_REC_JOB_START] = "job_start",
	[KJ_REC_DEVICE] = "device",
	[KJ_REC_JOB_END] = "job_end",
};

static const char *const result_names[KJ_RES_COUNT_] = {
	[KJ_RES_OK] = "ok",
	[KJ_RES_LOCKED_OUT] = "locked_out",
	[KJ_RES_QUOTA] = "quota",
	[KJ_RES_DUPLICATE] = "duplicate",
	[KJ_RES_READBACK] = "readback",
	[KJ_RES_TIMEOUT] = "timeout",
	[KJ_RES_INTERNAL] = "internal",
	[KJ_RES_STOPPED] = "stopped",
	[KJ_RES_UNAUTHORIZED] = "unauthorized",
	[KJ_RES_PROTOCOL] = "protocol",
	[KJ_RES_DISCONNECTED] = "disconnected",
	[KJ_RES_SITE_ABORT] = "site_abort",
	[KJ_RES_INTERRUPTED] = "interrupted",
	[KJ_RES_COUNTERFEIT] = "counterfeit",
	[KJ_RES_WITHDRAWN] = "withdrawn",
	[KJ_RES_COMPLETED] = "completed",
	[KJ_RES_FAILED] = "failed",
};

const char *kj_record_kind_name(enum kj_record_kind k)
{
	if ((unsigned)k >= KJ_ARRAY_SIZE(kj_rec_kind_names))
		return NULL;
	return kj_rec_kind_names[k];
}

const char *kj_result_name(enum kj_result r)
{
	if ((unsigned)r >= KJ_RES_COUNT_)
		return NULL;
	return result_names[r];
}

int kj_result_from_name(const char *s, enum kj_result *out)
{
	for (unsigned i = 1; i < KJ_RES_COUNT_; i++) {
		if (!strcmp(s, result_names[i])) {
			*out = (enum kj_result)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool kj_result_after_offer(enum kj_result r)
{
	switch (r) {
	case KJ_RES_READBACK:
	case KJ_RES_TIMEOUT:
	case KJ_RES_DISCONNECTED:
	case KJ_RES_PROTOCOL:
	case KJ_RES_INTERNAL:
	case KJ_RES_SITE_ABORT:
	case KJ_RES_INTERRUPTED:
	case KJ_RES_WITHDRAWN:
		return true;
	default:
		return false;
	}
}

bool kj_rec_result_fits_kind(enum kj_record_kind k, enum kj_result r)
{
	switch (k) {
	case KJ_REC_JOB_START:
		return r == KJ_RES_NONE;
	case KJ_REC_DEVICE:
		return r >= KJ_RES_OK && r <= KJ_RES_DEVICE_LAST;
	case KJ_REC_JOB_END:
		return r == KJ_RES_COMPLETED || r == KJ_RES_FAILED;
	default:
		return false;
	}
}

/* ---- serialiser ---------------------------------------------------------- */

struct writer {
	char *buf;
	size_t cap;
	size_t len;
	int err;
};

static void put(struct writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (n > w->cap - w->len) {
		w->err = -EMSGSIZE;
		return;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void put_c(struct writer *w, char c)
{
	put(w, &c, 1);
}

static int put_null(struct writer *w)
{
	put(w, "null", 4);
	return w->err;
}

static int bad_field(struct writer *w, enum field f, const char *why)
{
	kj_err("record: field \"%s\": %s", kj_rec_field_names[f], why);
	if (!w->err)
		w->err = -EINVAL;
	return -EINVAL;
}

/* Decimal digits of v into the end of tmp[24]; returns where they start
 * (no printf: the journal writes several per device). */
static const char *u64_digits(uint64_t v, char tmp[24])
{
	char *p = tmp + 24;

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return p;
}

static int put_u64(struct writer *w, enum field f, uint64_t v)
{
	char tmp[24];
	const char *p;

	if (v > KJ_RECORD_INT_MAX)
		return bad_field(w, f, "integer above 2^53-1 (RFC 8785 range)");
	p = u64_digits(v, tmp);
	put(w, p, (size_t)(tmp + 24 - p));
	return w->err;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629), or 0. */
size_t kj_rec_utf8_seq(const uint8_t *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* RFC 8785 §3.2.2.2: the JSON.stringify escaping of ECMAScript. */
static int put_str(struct writer *w, enum field f, const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = 0, i = 0, run = 0;

	/* the usual string: printable ASCII with nothing to escape */
	while (p[n] >= 0x20 && p[n] < 0x80 && p[n] != '"' && p[n] != '\\')
		n++;
	if (!p[n]) {
		put_c(w, '"');
		put(w, s, n);
		put_c(w, '"');
		return w->err;
	}
	n += strlen(s + n);
	put_c(w, '"');
	while (i < n) {
		size_t l = kj_rec_utf8_seq(p + i, n - i);
		const char *esc = NULL;
		char u[7];

		if (!l)
			return bad_field(w, f, "not valid UTF-8");
		switch (p[i]) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (p[i] < 0x20) {
				snprintf(u, sizeof(u), "\\u%04x", p[i]);
				esc = u;
			}
			break;
		}
		if (esc) {
			put(w, s + i - run, run);
			put(w, esc, strlen(esc));
			run = 0;
		} else {
			run += l;
		}
		i += l;
	}
	put(w, s + n - run, run);
	put_c(w, '"');
	return w->err;
}

static int put_req_str(struct writer *w, enum field f, const char *s)
{
	if (!s)
		return bad_field(w, f, "missing (NULL)");
	return put_str(w, f, s);
}

static int put_hex(struct writer *w, const uint8_t *b, size_t n)
{
	char hex[2 * KJ_RECORD_UID_MAX + 1];

	kj_hex_encode(b, n, hex);
	put_c(w, '"');
	put(w, hex, 2 * n);
	put_c(w, '"');
	return w->err;
}

static int put_time(struct writer *w, uint64_t ms)
{
	char t[KJ_RECORD_TIME_LEN + 1];

	if (kj_record_format_time(ms, t))
		return bad_field(w, F_TIME, "out of range");
	put_c(w, '"');
	put(w, t, KJ_RECORD_TIME_LEN);
	put_c(w, '"');
	return w->err;
}

static int put_field(struct writer *w, const struct kj_record *r,
		      enum field f)
{
	bool dev = r->kind == KJ_REC_DEVICE;
	bool start = r->kind == KJ_REC_JOB_START;
	bool end = r->kind == KJ_REC_JOB_END;

	switch (f) {
	case F_ATTEMPT:
		if (dev && r->has_attempt)
			return put_u64(w, f, r->attempt);
		break;
	case F_BATCH:
		return put_req_str(w, f, r->batch);
	case F_CERT_SHA256:
		if (dev && r->has_cred)
			return put_hex(w, r->cert_sha256, 32);
		break;
	case F_CRED_INDEX:
		if (dev && r->has_cred)
			return put_u64(w, f, r->cred_index);
		break;
	case F_CUSTOMER:
		return put_req_str(w, f, r->customer);
	case F_FAILED_COUNT:
		if (end)
			return put_u64(w, f, r->failed_count);
		break;
	case F_FW_SHA256:
		if (start || dev)
			return put_hex(w, r->fw_sha256, 32);
		break;
	case F_FW_VERSION:
		if (start || dev)
			return put_req_str(w, f, r->fw_version);
		break;
	case F_HWREV:
		if (dev)
			return put_req_str(w, f, r->hwrev);
		break;
	case F_JOB:
		return put_req_str(w, f, r->job);
	case F_JOB_SEQ:
		return put_u64(w, f, r->job_seq);
	case F_KIND:
		return put_str(w, f, kj_rec_kind_names[r->kind]);
	case F_OK_COUNT:
		if (end)
			return put_u64(w, f, r->ok_count);
		break;
	case F_OPERATOR:
		return put_req_str(w, f, r->operator_id);
	case F_PRODUCT:
		return put_req_str(w, f, r->product);
	case F_QUANTITY:
		if (start)
			return put_u64(w, f, r->quantity);
		break;
	case F_READBACK:
		if (dev && r->has_readback)
			return put_hex(w, r->readback, 32);
		break;
	case F_RESULT:
		if (!start)
			return put_str(w, f, result_names[r->result]);
		break;
	case F_SEQ:
		return put_u64(w, f, r->seq);
	case F_SERIAL:
		if (dev && r->serial)
			return put_str(w, f, r->serial);
		break;
	case F_SITE:
		if (dev)
			return put_req_str(w, f, r->site);
		break;
	case F_SITE_CODE:
		if (dev && r->result == KJ_RES_SITE_ABORT)
			return put_u64(w, f, r->site_code);
		break;
	case F_SOCKET:
		if (dev)
			return put_u64(w, f, r->socket);
		break;
	case F_TIME:
		return put_time(w, r->time_ms);
	case F_UID:
		if (dev)
			return put_hex(w, r->uid, r->uid_len);
		break;
	case F_V:
		return put_u64(w, f, KJ_RECORD_VERSION);
	case F_WORK_ORDER_SHA256:
		if (start)
			return put_hex(w, r->work_order_sha256, 32);
		break;
	default:
		break;
	}
	return put_null(w);
}

/* The rules that tie fields together (EVIDENCE.md §2). */
static int check_record(struct writer *w, const struct kj_record *r)
{
	if (!kj_record_kind_name(r->kind)) {
		kj_err("record: field \"kind\": bad value %d", (int)r->kind);
		return w->err = -EINVAL;
	}
	if (!kj_rec_result_fits_kind(r->kind, r->result))
		return bad_field(w, F_RESULT, "not a result of this kind");
	if ((r->kind == KJ_REC_JOB_START) != (r->job_seq == 0))
		return bad_field(w, F_JOB_SEQ,
				 "0 exactly for job_start (EVIDENCE.md §2)");
	if (r->kind != KJ_REC_DEVICE)
		return 0;
	if (r->uid_len < 1 || r->uid_len > KJ_RECORD_UID_MAX)
		return bad_field(w, F_UID, "length not 1..64 bytes");
	if (r->result == KJ_RES_OK &&
	    (!r->has_attempt || !r->serial || !r->has_readback))
		return bad_field(w, F_RESULT,
				 "ok needs attempt, serial and readback");
	return 0;
}

/* Each field's `,"name":' (the first without the comma), as
 * kj_rec_field_names in JCS order; written per record, so spelled out. */
static const struct {
	const char *s;
	size_t n;
} field_keys[F_COUNT_] = {
#define K(str) { str, sizeof(str) - 1 }
	K("\"attempt\":"), K(",\"batch\":"), K(",\"cert_sha256\":"),
	K(",\"cred_index\":"), K(",\"customer\":"), K(",\"failed_count\":"),
	K(",\"fw_sha256\":"), K(",\"fw_version\":"), K(",\"hwrev\":"),
	K(",\"job\":"), K(",\"job_seq\":"), K(",\"kind\":"),
	K(",\"ok_count\":"), K(",\"operator\":"), K(",\"product\":"),
	K(",\"quantity\":"), K(",\"readback\":"), K(",\"result\":"),
	K(",\"seq\":"), K(",\"serial\":"), K(",\"site\":"),
	K(",\"site_code\":"), K(",\"socket\":"), K(",\"time\":"),
	K(",\"uid\":"), K(",\"v\":"), K(",\"work_order_sha256\":"),
#undef K
};

int kj_record_serialize(const struct kj_record *r, char *buf, size_t cap)
{
	struct writer w = { .buf = buf, .cap = cap };

	if (check_record(&w, r))
		return w.err;
	put_c(&w, '{');
	for (int f = 0; f < F_COUNT_ && !w.err; f++) {
		put(&w, field_keys[f].s, field_keys[f].n);
		(void)put_field(&w, r, (enum field)f);
	}
	put_c(&w, '}');
	if (w.err == -EMSGSIZE)
		kj_err("record: JCS longer than %zu bytes", cap);
	return w.err ? w.err : (int)w.len;
}
