// SPDX-License-Identifier: Apache-2.0
/*
 * Records of EVIDENCE.md §2 and their RFC 8785 (JCS) bytes.  The bytes are
 * the transparency log's leaves: any change here changes every leaf hash,
 * so tests/unit/test_record.c pins them with golden vectors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record.h"
#include "base/log.h"
#include "base/util.h"

/*
 * The keys of EVIDENCE.md §2 in RFC 8785 §3.2.3 order (UTF-16 code units;
 * all ASCII, so plain byte order).  Serialiser and parser walk this table.
 */
enum field {
	F_ATTEMPT, F_BATCH, F_CERT_SHA256, F_CRED_INDEX, F_CUSTOMER,
	F_FAILED_COUNT, F_FW_SHA256, F_FW_VERSION, F_HWREV, F_JOB, F_JOB_SEQ,
	F_KIND, F_OK_COUNT, F_OPERATOR, F_PRODUCT, F_QUANTITY, F_READBACK,
	F_RESULT, F_SEQ, F_SERIAL, F_SITE, F_SITE_CODE, F_SOCKET, F_TIME,
	F_UID, F_V, F_WORK_ORDER_SHA256, F_COUNT_
};

static const char *const field_names[F_COUNT_] = {
	"attempt", "batch", "cert_sha256", "cred_index", "customer",
	"failed_count", "fw_sha256", "fw_version", "hwrev", "job", "job_seq",
	"kind", "ok_count", "operator", "product", "quantity", "readback",
	"result", "seq", "serial", "site", "site_code", "socket", "time",
	"uid", "v", "work_order_sha256",
};

static const char *const kind_names[] = {
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
	[KJ_RES_COMPLETED] = "completed",
	[KJ_RES_FAILED] = "failed",
};

const char *kj_record_kind_name(enum kj_record_kind k)
{
	if ((unsigned)k >= KJ_ARRAY_SIZE(kind_names))
		return NULL;
	return kind_names[k];
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
		return true;
	default:
		return false;
	}
}

static bool result_fits_kind(enum kj_record_kind k, enum kj_result r)
{
	switch (k) {
	case KJ_REC_JOB_START:
		return r == KJ_RES_NONE;
	case KJ_REC_DEVICE:
		return r >= KJ_RES_OK && r <= KJ_RES_INTERRUPTED;
	case KJ_REC_JOB_END:
		return r == KJ_RES_COMPLETED || r == KJ_RES_FAILED;
	default:
		return false;
	}
}

uint64_t kj_record_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int kj_record_format_time(uint64_t ms, char *out)
{
	time_t secs = (time_t)(ms / 1000);
	char tmp[80]; /* room for any int, so no truncation to reason about */
	struct tm tm;

	if (ms / 1000 > (uint64_t)INT32_MAX * 128 || !gmtime_r(&secs, &tm) ||
	    tm.tm_year + 1900 > 9999)
		return -EINVAL;
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
	memcpy(out, tmp, KJ_RECORD_TIME_LEN + 1);
	return 0;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int kj_record_parse_time(const char *s, size_t len, uint64_t *ms)
{
	/* 0123456789012345678901234 */
	/* 2026-11-24T10:00:00.123Z  */
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	int y, mo, d, h, mi, sec, frac;
	char again[KJ_RECORD_TIME_LEN + 1];
	struct tm tm = { 0 };
	time_t t;

	if (len != KJ_RECORD_TIME_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (shape[i] != 'd' && s[i] != shape[i])
			return -EINVAL;
	if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) ||
	    digits(s + 17, 2, &sec) || digits(s + 20, 3, &frac))
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 59)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t < 0)
		return -EINVAL;
	*ms = (uint64_t)t * 1000u + (uint64_t)frac;
	/* timegm normalises 02-31 to 03-03: only a round trip is exact. */
	if (kj_record_format_time(*ms, again) || memcmp(again, s, len))
		return -EINVAL;
	return 0;
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
	kj_err("record: field \"%s\": %s", field_names[f], why);
	if (!w->err)
		w->err = -EINVAL;
	return -EINVAL;
}

static int put_u64(struct writer *w, enum field f, uint64_t v)
{
	char tmp[24];
	int n;

	if (v > KJ_RECORD_INT_MAX)
		return bad_field(w, f, "integer above 2^53-1 (RFC 8785 range)");
	n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	put(w, tmp, (size_t)n);
	return w->err;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629), or 0. */
static size_t utf8_seq(const uint8_t *s, size_t n)
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
	size_t n = strlen(s), i = 0, run = 0;

	put_c(w, '"');
	while (i < n) {
		size_t l = utf8_seq(p + i, n - i);
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
		return put_str(w, f, kind_names[r->kind]);
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
	if (!result_fits_kind(r->kind, r->result))
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

int kj_record_serialize(const struct kj_record *r, char *buf, size_t cap)
{
	struct writer w = { .buf = buf, .cap = cap };

	if (check_record(&w, r))
		return w.err;
	put_c(&w, '{');
	for (int f = 0; f < F_COUNT_ && !w.err; f++) {
		if (f)
			put_c(&w, ',');
		put_c(&w, '"');
		put(&w, field_names[f], strlen(field_names[f]));
		put(&w, "\":", 2);
		(void)put_field(&w, r, (enum field)f);
	}
	put_c(&w, '}');
	if (w.err == -EMSGSIZE)
		kj_err("record: JCS longer than %zu bytes", cap);
	return w.err ? w.err : (int)w.len;
}

/* ---- parser -------------------------------------------------------------- */

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
		       field_names[rd->f], why, rd->pos);
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
		l = utf8_seq(rd->p + rd->pos, rd->len - rd->pos);
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
		KJ_TRY(expect(rd, field_names[f]));
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
	kj_err("record: field \"%s\": %s", field_names[f], why);
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
	for (unsigned k = 0; k < KJ_ARRAY_SIZE(kind_names); k++)
		if (!strcmp(s, kind_names[k]))
			r->kind = (enum kj_record_kind)k;
	if (strcmp(s, kind_names[r->kind]))
		return tok_err(F_KIND, "unknown kind");
	r->result = KJ_RES_NONE;
	if (r->kind != KJ_REC_JOB_START) {
		KJ_TRY(want_str(t, F_RESULT, &s));
		if (kj_result_from_name(s, &r->result) ||
		    !result_fits_kind(r->kind, r->result))
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
		       kind_names[r->kind], i);
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
