// SPDX-License-Identifier: Apache-2.0
/*
 * Credential batch parser (SPEC.md §3.2), secret-safe: see creds.h.  The
 * plaintext is read in place and decoded straight into the arena; nothing
 * secret goes to the heap or the log.  Messages name the line and field.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "creds.h"
#include "base/der.h"
#include "base/log.h"
#include "base/util.h"

#define ALIGN64(n) (((n) + 63) & ~(size_t)63)

struct lexer {
	const uint8_t *p, *end;	/* the current line, without its '\n' */
	const char *name;
	uint32_t line;
};

struct fields {
	bool have_index, have_cert, have_key;
	uint64_t index;
	const uint8_t *cert, *key; /* base64 spans, may hold "\/" escapes */
	size_t cert_n, key_n;	   /* span bytes */
	size_t cert_esc, key_esc;  /* number of "\/" in the span */
};

static int line_err(const struct lexer *lx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int line_err(const struct lexer *lx, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kj_err("%s: line %u: %s", lx->name, lx->line, msg);
	return -EINVAL;
}

/* ---- base64 (RFC 4648 §4, padded, canonical) ---- */

static inline int b64v(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decoded size of a span, or -1 if its length cannot be base64. */
static ssize_t b64_len(const uint8_t *s, size_t n, size_t esc)
{
	size_t chars = n - esc, pad = 0;

	if (!chars || chars % 4)
		return -1;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	return (ssize_t)(chars / 4 * 3 - pad);
}

/*
 * Decode exactly out_len bytes.  The scanner guaranteed that every '\\' is
 * followed by '/' (JSON's escaped solidus, which some encoders emit).
 * Rejects bytes outside the alphabet, '=' other than 1-2 final pad bytes,
 * and non-zero pad bits (non-canonical encodings).
 */
static int b64_decode(const uint8_t *s, size_t n, uint8_t *out,
		      size_t out_len)
{
	uint32_t acc = 0;
	unsigned q = 0, pad = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		int v = 0;

		if (c == '\\')
			c = s[++i];
		if (c == '=') {
			pad++;
		} else if (pad || (v = b64v(c)) < 0) {
			return -1;
		}
		acc = acc << 6 | (uint32_t)v;
		if (++q < 4)
			continue;
		if (pad > 2 || (pad && i + 1 != n) ||
		    (pad == 1 && (acc & 0xff)) || (pad == 2 && (acc & 0xffff)))
			return -1;
		if (o + 3 - pad > out_len)
			return -1;
		out[o++] = (uint8_t)(acc >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(acc >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)acc;
		acc = 0;
		q = 0;
	}
	return q || o != out_len ? -1 : 0;
}

/* ---- DER structure of PKCS#8 ---- */

/*
 * PKCS#8 PrivateKeyInfo / OneAsymmetricKey (RFC 5958 §2):
 *   SEQUENCE { version INTEGER (0|1), AlgorithmIdentifier SEQUENCE { OID,
 *   parameters ANY OPTIONAL }, privateKey OCTET STRING, [0] attributes
 *   OPTIONAL, [1] publicKey OPTIONAL }, filling the buffer exactly.
 * Why a walk over the DER (der.h, quiet: never logs key bytes) and not
 * d2i_PKCS8_PRIV_KEY_INFO/d2i_PrivateKey: those copy the private key into
 * OpenSSL heap objects (and decoding the inner key spreads it into
 * BIGNUMs); the device, not the appliance, uses the key, so checking the
 * envelope in place is enough and copies nothing.
 */
static int pkcs8_check(const uint8_t *der, size_t n)
{
	struct kj_der top, seq, alg;
	struct kj_tlv t;
	long version;

	kj_der_init(&top, der, n, "key");
	top.quiet = true;
	if (kj_der_expect(&top, KJ_DER_SEQUENCE, &t, "") ||
	    kj_der_end(&top, ""))
		return -1;
	kj_der_enter(&top, &t, &seq);
	if (kj_der_expect(&seq, KJ_DER_INTEGER, &t, "") ||
	    kj_der_small_int(&seq, &t, "", &version) || version > 1)
		return -1;
	if (kj_der_expect(&seq, KJ_DER_SEQUENCE, &t, ""))
		return -1;
	kj_der_enter(&seq, &t, &alg);
	if (kj_der_expect(&alg, KJ_DER_OID, &t, "") || !t.len)
		return -1;
	if (kj_der_more(&alg) &&
	    (kj_der_next(&alg, &t, "") || kj_der_end(&alg, "")))
		return -1;
	if (kj_der_expect(&seq, KJ_DER_OCTET_STRING, &t, "") || !t.len)
		return -1;
	if (kj_der_optional(&seq, KJ_DER_CTX0, &t, "") < 0)
		return -1;
	if (kj_der_optional(&seq, KJ_DER_CTX1_PRIM, &t, "") < 0)
		return -1;
	return kj_der_end(&seq, "") ? -1 : 0;
}

/* ---- one line ---- */

static void skip_ws(struct lexer *lx)
{
	/* JSON whitespace; '\n' ends the line, "\r\n" endings are fine. */
	while (lx->p < lx->end &&
	       (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r'))
		lx->p++;
}

static int expect(struct lexer *lx, char c, const char *where)
{
	skip_ws(lx);
	if (lx->p >= lx->end || *lx->p != (uint8_t)c)
		return line_err(lx, "expected '%c' %s", c, where);
	lx->p++;
	return 0;
}

static int parse_index(struct lexer *lx, struct fields *f)
{
	const uint8_t *s = lx->p;
	uint64_t v = 0;

	while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9') {
		v = v * 10 + (uint64_t)(*lx->p++ - '0');
		if (v > KJ_CRED_INDEX_MAX)
			goto bad;
	}
	if (lx->p == s || (*s == '0' && lx->p - s > 1))
		goto bad;
	if (lx->p < lx->end && (*lx->p == '.' || *lx->p == 'e' ||
				*lx->p == 'E'))
		goto bad;
	f->index = v;
	f->have_index = true;
	return 0;
bad:
	return line_err(lx, "field \"index\": expected an integer 0..%llu",
			(unsigned long long)KJ_CRED_INDEX_MAX);
}

/* A base64 string value: record its span; decoding comes later. */
static int scan_b64(struct lexer *lx, const char *field, const uint8_t **s,
		    size_t *n, size_t *esc)
{
	const uint8_t *p;

	if (lx->p >= lx->end || *lx->p != '"')
		return line_err(lx, "field \"%s\": expected a base64 string",
				field);
	p = ++lx->p;
	*esc = 0;
	for (; p < lx->end && *p != '"'; p++) {
		if (*p < 0x20)
			return line_err(lx, "field \"%s\": control character "
					"in string", field);
		if (*p != '\\')
			continue;
		if (p + 1 >= lx->end || p[1] != '/')
			return line_err(lx, "field \"%s\": string escape "
					"other than \\/ (base64 needs none)",
					field);
		p++;
		(*esc)++;
	}
	if (p >= lx->end)
		return line_err(lx, "field \"%s\": unterminated string", field);
	*s = lx->p;
	*n = (size_t)(p - lx->p);
	lx->p = p + 1;
	return 0;
}

/* The field name: plain ASCII, no escapes (our three names need none). */
static int scan_key(struct lexer *lx, const uint8_t **k, size_t *n)
{
	const uint8_t *p;

	if (lx->p >= lx->end || *lx->p != '"')
		return line_err(lx, "expected a field name in double quotes");
	for (p = ++lx->p; p < lx->end && *p != '"'; p++)
		if (*p == '\\' || *p < 0x20)
			return line_err(lx, "field names must be plain "
					"\"index\", \"cert\" or \"key\"");
	if (p >= lx->end)
		return line_err(lx, "unterminated field name");
	*k = lx->p;
	*n = (size_t)(p - lx->p);
	lx->p = p + 1;
	return 0;
}

static bool key_is(const uint8_t *k, size_t n, const char *want)
{
	return n == strlen(want) && !memcmp(k, want, n);
}

/*
 * The name is decrypted batch content: it could be key bytes that lost
 * their quotes.  Never echo it, only its length (the line says where).
 */
static int unknown_field(const struct lexer *lx, const uint8_t *k, size_t n)
{
	(void)k;
	return line_err(lx, "unknown field (a name of %zu bytes; allowed: "
			"index, cert, key)", n);
}

static int parse_member(struct lexer *lx, struct fields *f)
{
	const uint8_t *k = NULL;
	size_t n = 0;

	skip_ws(lx);
	KJ_TRY(scan_key(lx, &k, &n));
	KJ_TRY(expect(lx, ':', "after a field name"));
	skip_ws(lx);
	if (key_is(k, n, "index")) {
		if (f->have_index)
			return line_err(lx, "field \"index\": given twice");
		return parse_index(lx, f);
	}
	if (key_is(k, n, "cert")) {
		if (f->have_cert)
			return line_err(lx, "field \"cert\": given twice");
		f->have_cert = true;
		return scan_b64(lx, "cert", &f->cert, &f->cert_n, &f->cert_esc);
	}
	if (key_is(k, n, "key")) {
		if (f->have_key)
			return line_err(lx, "field \"key\": given twice");
		f->have_key = true;
		return scan_b64(lx, "key", &f->key, &f->key_n, &f->key_esc);
	}
	return unknown_field(lx, k, n);
}

static int parse_line(struct lexer *lx, struct fields *f)
{
	memset(f, 0, sizeof(*f));
	KJ_TRY(expect(lx, '{', "at the start of the line"));
	for (;;) {
		KJ_TRY(parse_member(lx, f));
		skip_ws(lx);
		if (lx->p < lx->end && *lx->p == ',') {
			lx->p++;
			continue;
		}
		KJ_TRY(expect(lx, '}', "or ',' after a field"));
		break;
	}
	skip_ws(lx);
	if (lx->p != lx->end)
		return line_err(lx, "trailing data after the object (one "
				"object per line)");
	if (!f->have_index)
		return line_err(lx, "field \"index\": missing");
	if (!f->have_cert)
		return line_err(lx, "field \"cert\": missing");
	return 0;
}

/* ---- blob building ---- */

/*
 * Certificates: RFC 5280 §4.1 Certificate decoded with OpenSSL's ASN.1
 * decoder (Name, Time, AlgorithmIdentifier, Extension are OpenSSL's own
 * items), the same grammar as d2i_X509 minus one step: d2i_X509 also
 * decodes the subject public key through the OpenSSL 3 provider decoders,
 * which costs ~120 us per certificate (14 s for a 100k-line batch on the
 * target) against ~4 us here.  The device, not the appliance, uses the key.
 */
typedef struct {
	ASN1_TIME *not_before, *not_after;
} kj_x509_validity;

typedef struct {
	X509_ALGOR *alg;
	ASN1_BIT_STRING *key;
} kj_x509_spki;

typedef struct {
	ASN1_INTEGER *version, *serial;
	X509_ALGOR *sig_alg;
	X509_NAME *issuer;
	kj_x509_validity *validity;
	X509_NAME *subject;
	kj_x509_spki *spki;
	ASN1_BIT_STRING *issuer_uid, *subject_uid;
	STACK_OF(X509_EXTENSION) *extensions;
} kj_x509_tbs;

typedef struct {
	kj_x509_tbs *tbs;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *sig;
} kj_x509_cert;

ASN1_SEQUENCE(kj_x509_validity) = {
	ASN1_SIMPLE(kj_x509_validity, not_before, ASN1_TIME),
	ASN1_SIMPLE(kj_x509_validity, not_after, ASN1_TIME),
} static_ASN1_SEQUENCE_END(kj_x509_validity)

ASN1_SEQUENCE(kj_x509_spki) = {
	ASN1_SIMPLE(kj_x509_spki, alg, X509_ALGOR),
	ASN1_SIMPLE(kj_x509_spki, key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(kj_x509_spki)

ASN1_SEQUENCE(kj_x509_tbs) = {
	ASN1_EXP_OPT(kj_x509_tbs, version, ASN1_INTEGER, 0),
	ASN1_SIMPLE(kj_x509_tbs, serial, ASN1_INTEGER),
	ASN1_SIMPLE(kj_x509_tbs, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(kj_x509_tbs, issuer, X509_NAME),
	ASN1_SIMPLE(kj_x509_tbs, validity, kj_x509_validity),
	ASN1_SIMPLE(kj_x509_tbs, subject, X509_NAME),
	ASN1_SIMPLE(kj_x509_tbs, spki, kj_x509_spki),
	ASN1_IMP_OPT(kj_x509_tbs, issuer_uid, ASN1_BIT_STRING, 1),
	ASN1_IMP_OPT(kj_x509_tbs, subject_uid, ASN1_BIT_STRING, 2),
	ASN1_EXP_SEQUENCE_OF_OPT(kj_x509_tbs, extensions, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END(kj_x509_tbs)

ASN1_SEQUENCE(kj_x509_cert) = {
	ASN1_SIMPLE(kj_x509_cert, tbs, kj_x509_tbs),
	ASN1_SIMPLE(kj_x509_cert, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(kj_x509_cert, sig, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(kj_x509_cert)

static int check_cert(const struct lexer *lx, const uint8_t *der, size_t n)
{
	const uint8_t *p = der;
	ASN1_VALUE *x;

	/* Certificates are public: OpenSSL's heap copy of one is harmless. */
	x = ASN1_item_d2i(NULL, &p, (long)n, ASN1_ITEM_rptr(kj_x509_cert));
	if (!x) {
		ERR_clear_error();
		return line_err(lx, "field \"cert\": not a DER X.509 "
				"certificate");
	}
	ASN1_item_free(x, ASN1_ITEM_rptr(kj_x509_cert));
	if (p != der + n)
		return line_err(lx, "field \"cert\": %zu bytes after the "
				"certificate", (size_t)(der + n - p));
	return 0;
}

/*
 * Writes cred_blob (PROTOCOL.md "cred_blob") at out, which has room for
 * *room bytes; fills c except index/line.
 */
static int build_blob(const struct lexer *lx, const struct fields *f,
		      uint8_t *out, size_t room, struct kj_cred *c)
{
	ssize_t cl = b64_len(f->cert, f->cert_n, f->cert_esc);
	ssize_t kl = f->have_key ? b64_len(f->key, f->key_n, f->key_esc) : 0;

	if (!f->cert_n)
		return line_err(lx, "field \"cert\": empty string");
	if (f->have_key && !f->key_n)
		return line_err(lx, "field \"key\": empty string (omit \"key\" "
				"when the device gets no key)");
	if (cl < 0 || cl > KJ_CRED_CERT_MAX)
		return line_err(lx, "field \"cert\": %s", cl < 0 ?
				"not valid base64" : "certificate too large");
	if (kl < 0 || kl > KJ_CRED_KEY_MAX || (f->have_key && !kl))
		return line_err(lx, "field \"key\": %s", kl > KJ_CRED_KEY_MAX ?
				"key too large" : "not valid base64");
	if ((size_t)(8 + cl + kl) > room)
		return line_err(lx, "internal: blob larger than its bound");
	kj_put_u32be(out, (uint32_t)cl);
	if (b64_decode(f->cert, f->cert_n, out + 4, (size_t)cl) < 0)
		return line_err(lx, "field \"cert\": not valid base64");
	kj_put_u32be(out + 4 + cl, (uint32_t)kl);
	if (kl && b64_decode(f->key, f->key_n, out + 8 + cl, (size_t)kl) < 0)
		return line_err(lx, "field \"key\": not valid base64");
	KJ_TRY(check_cert(lx, out + 4, (size_t)cl));
	if (kl && pkcs8_check(out + 8 + cl, (size_t)kl) < 0)
		return line_err(lx, "field \"key\": not a DER PKCS#8 "
				"PrivateKeyInfo");
	c->blob_len = (uint32_t)(8 + cl + kl);
	c->cert_len = (uint32_t)cl;
	c->key_len = (uint32_t)kl;
	kj_sha256(out + 4, (size_t)cl, c->cert_sha256);
	return 0;
}

/* ---- the batch ---- */

static size_t count_lines(const uint8_t *text, size_t len)
{
	const uint8_t *p = text, *end = text + len, *nl;
	size_t n = 1;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		n++;
		p = nl + 1;
	}
	return n;
}

static size_t blob_bound(size_t len, size_t lines)
{
	/* base64 decodes to at most 3/4 of its length, plus 8 per line,
	 * plus the sealing room. */
	return len / 4 * 3 +
	       (8 + KJ_CRED_SEAL_HEAD + KJ_CRED_SEAL_TAIL) * lines + 8;
}

size_t kj_creds_arena_need(const uint8_t *text, size_t len)
{
	size_t lines = count_lines(text, len);

	return ALIGN64(blob_bound(len, lines)) +
	       ALIGN64(sizeof(struct kj_cred_table) +
		       lines * sizeof(struct kj_cred)) + 128;
}

static int cmp_cred(const void *a, const void *b)
{
	const struct kj_cred *x = a, *y = b;

	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

static int sort_and_check(struct kj_cred_table *t, const char *name)
{
	qsort(t->cred, t->count, sizeof(t->cred[0]), cmp_cred);
	for (size_t i = 1; i < t->count; i++) {
		if (t->cred[i].index != t->cred[i - 1].index)
			continue;
		kj_err("%s: line %u: field \"index\": %llu already used on "
		       "line %u", name, t->cred[i].line,
		       (unsigned long long)t->cred[i].index,
		       t->cred[i - 1].line);
		return -EINVAL;
	}
	return 0;
}

static int cmp_cert(const void *a, const void *b)
{
	const struct kj_cred *x = *(const struct kj_cred *const *)a;
	const struct kj_cred *y = *(const struct kj_cred *const *)b;
	int d = memcmp(x->cert_sha256, y->cert_sha256, 32);

	if (d)
		return d;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * A certificate is one device's identity: two lines carrying the same one
 * would put it (and its key) on two devices, each under its own index.
 * Compared by SHA-256, the hash reservations and records name it by.
 */
static int certs_unique(const struct kj_cred_table *t, const char *name)
{
	const struct kj_cred **v;
	int rc = 0;

	v = malloc(t->count * sizeof(*v)); /* pointers only, no secret */
	if (!v) {
		kj_err("%s: out of memory comparing %llu certificates", name,
		       (unsigned long long)t->count);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->count; i++)
		v[i] = &t->cred[i];
	qsort(v, t->count, sizeof(*v), cmp_cert);
	for (size_t i = 1; i < t->count && !rc; i++) {
		if (memcmp(v[i]->cert_sha256, v[i - 1]->cert_sha256, 32))
			continue;
		kj_err("%s: indexes %llu (line %u) and %llu (line %u) carry "
		       "the same certificate: a credential is for one device "
		       "only; ask the customer for a batch with one "
		       "certificate per index", name,
		       (unsigned long long)v[i - 1]->index, v[i - 1]->line,
		       (unsigned long long)v[i]->index, v[i]->line);
		rc = -EINVAL;
	}
	free(v);
	return rc;
}

/* Walk the lines, filling blobs and table entries. */
static int parse_all(const uint8_t *text, size_t len, const char *name,
		     uint8_t *blobs, size_t cap, struct kj_cred_table *t,
		     size_t *used)
{
	const uint8_t *p = text, *end = text + len;
	struct lexer lx = { .name = name };
	struct fields f;

	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		struct kj_cred *c = &t->cred[t->count];

		lx.line++;
		lx.p = p;
		lx.end = nl ? nl : end;
		if (lx.p == lx.end)
			return line_err(&lx, "empty line");
		KJ_TRY(parse_line(&lx, &f));
		if (cap - *used < KJ_CRED_SEAL_HEAD + KJ_CRED_SEAL_TAIL)
			return line_err(&lx, "internal: blob larger than its "
					"bound");
		*used += KJ_CRED_SEAL_HEAD;
		KJ_TRY(build_blob(&lx, &f, blobs + *used,
				  cap - *used - KJ_CRED_SEAL_TAIL, c));
		c->index = f.index;
		c->line = lx.line;
		c->blob_off = *used; /* made arena-relative by the caller */
		t->n_keys += c->key_len != 0;
		t->count++;
		*used += c->blob_len + KJ_CRED_SEAL_TAIL;
		p = nl ? nl + 1 : end;
	}
	if (!t->count) {
		kj_err("%s: no credentials in the batch", name);
		return -EINVAL;
	}
	return 0;
}

int kj_creds_parse(struct kj_arena *a, const uint8_t *text, size_t len,
		   const char *name, struct kj_creds *out)
{
	size_t lines = count_lines(text, len), cap, tsize, used = 0;
	struct kj_cred_table *t;
	uint8_t *blobs;
	int rc;

	memset(out, 0, sizeof(*out));
	if (lines > KJ_CREDS_MAX_LINES) {
		kj_err("%s: %zu lines, more than the limit of %u", name, lines,
		       KJ_CREDS_MAX_LINES);
		return -EINVAL;
	}
	cap = blob_bound(len, lines);
	tsize = sizeof(*t) + lines * sizeof(t->cred[0]);
	blobs = kj_arena_alloc(a, cap);
	t = blobs ? kj_arena_alloc(a, tsize) : NULL;
	if (!t)
		return -ENOMEM;
	memset(t, 0, sizeof(*t));
	rc = parse_all(text, len, name, blobs, cap, t, &used);
	if (rc == 0)
		rc = sort_and_check(t, name);
	if (rc == 0)
		rc = certs_unique(t, name);
	if (rc < 0) {
		explicit_bzero(blobs, cap);
		explicit_bzero(t, tsize);
		return rc;
	}
	for (size_t i = 0; i < t->count; i++)
		t->cred[i].blob_off += kj_arena_offset(a, blobs);
	t->magic = KJ_CREDS_MAGIC;
	out->table_off = kj_arena_offset(a, t);
	out->table_size = sizeof(*t) + t->count * sizeof(t->cred[0]);
	out->count = t->count;
	out->n_keys = t->n_keys;
	out->blob_bytes = cap;
	out->table = t;
	return 0;
}

const struct kj_cred_table *kj_creds_table(const uint8_t *base, size_t size,
					   size_t table_off)
{
	const struct kj_cred_table *t;

	if (table_off % 8 || table_off > size ||
	    size - table_off < sizeof(*t))
		goto bad;
	t = (const struct kj_cred_table *)(base + table_off);
	if (t->magic != KJ_CREDS_MAGIC ||
	    t->count > (size - table_off - sizeof(*t)) / sizeof(t->cred[0]))
		goto bad;
	return t;
bad:
	kj_err("credential table at arena offset %zu: inconsistent "
	       "(arena of %zu bytes)", table_off, size);
	return NULL;
}

const void *kj_index_find(const void *v, size_t n, size_t size,
			  uint64_t index)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const uint8_t *e = (const uint8_t *)v + mid * size;
		uint64_t at;

		memcpy(&at, e, sizeof(at));
		if (at == index)
			return e;
		if (at < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

_Static_assert(offsetof(struct kj_cred, index) == 0,
	       "kj_index_find reads the index first");

const struct kj_cred *kj_creds_find(const struct kj_cred_table *t,
				    uint64_t index)
{
	return kj_index_find(t->cred, t->count, sizeof(t->cred[0]), index);
}

const uint8_t *kj_cred_blob(const uint8_t *base, size_t size,
			    const struct kj_cred *c)
{
	if (c->blob_off > size || size - c->blob_off < c->blob_len ||
	    c->blob_len != 8 + (uint64_t)c->cert_len + c->key_len)
		return NULL;
	return base + c->blob_off;
}
