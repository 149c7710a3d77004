// SPDX-License-Identifier: Apache-2.0
/*
 * Credential batch (creds.h): parse into a real arena, exact cred_blob bytes
 * (PROTOCOL.md), the offsets-only table, and every malformed line named by
 * line number and field without echoing secret content.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "base/util.h"
#include "inputs/creds.h"
#include "secret/arena.h"
#include "kj_capture.h"
#include "kj_testutil.h"

/*
 * One EC P-256 key and NCERTS self-signed certificates for it (serial
 * numbers 1..NCERTS: every index of a batch has its own), DER and base64;
 * cert_der/cert_b64 are the first.
 */
#define NCERTS 1000
static uint8_t *key_der, *cders[NCERTS];
static int key_len, clens[NCERTS];
static char *key_b64, *cb64s[NCERTS];
#define cert_der cders[0]
#define cert_b64 cb64s[0]

static char *b64(const uint8_t *p, int n)
{
	char *s = malloc((size_t)(n + 2) / 3 * 4 + 1);

	assert_non_null(s);
	EVP_EncodeBlock((unsigned char *)s, p, n);
	return s;
}

static int setup(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	PKCS8_PRIV_KEY_INFO *p8;
	uint8_t *p;

	(void)state;
	if (!k)
		return -1;
	for (int i = 0; i < NCERTS; i++) {
		X509 *x = kj_test_self_signed_serial(k, i + 1);

		if (!x)
			return -1;
		clens[i] = i2d_X509(x, NULL);
		cders[i] = p = malloc((size_t)clens[i]);
		i2d_X509(x, &p);
		cb64s[i] = b64(cders[i], clens[i]);
		X509_free(x);
	}
	p8 = EVP_PKEY2PKCS8(k);
	key_len = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL);
	key_der = p = malloc((size_t)key_len);
	i2d_PKCS8_PRIV_KEY_INFO(p8, &p);
	key_b64 = b64(key_der, key_len);
	PKCS8_PRIV_KEY_INFO_free(p8);
	EVP_PKEY_free(k);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < NCERTS; i++) {
		free(cders[i]);
		free(cb64s[i]);
	}
	free(key_der);
	free(key_b64);
	return 0;
}

/* Parse text into a fresh arena; *a is left for the caller to inspect. */
static int parse(struct kj_arena *a, const char *text, struct kj_creds *c)
{
	size_t len = strlen(text);

	assert_int_equal(kj_arena_create(a, kj_creds_arena_need(
			(const uint8_t *)text, len), KJ_ARENA_AUTO), 0);
	return kj_creds_parse(a, (const uint8_t *)text, len, "CREDS", c);
}

/* Expect text to be refused with a message containing want. */
static char refused_log[16384]; /* what the last refused() logged */

static void refused(const char *text, const char *want)
{
	struct kj_arena a;
	struct kj_creds c;
	const char *err;
	int rc;

	cap_start();
	rc = parse(&a, text, &c);
	err = cap_end();
	if (rc != -EINVAL)
		fail_msg("accepted (rc %d): %.200s", rc, text);
	assert_logged(err, want);
	snprintf(refused_log, sizeof(refused_log), "%s", err);
	/* Secret content is never printed. */
	if (strstr(err, key_b64 + 40) ||
	    strstr(err, cert_b64 + 40))
		fail_msg("message echoes base64 content: %s", err);
	kj_arena_destroy(&a);
}

/* A line for index with certificate number cert. */
static char *line_cert(char *p, uint64_t index, unsigned cert, bool with_key)
{
	if (with_key)
		return p + sprintf(p, "{\"index\":%llu,\"cert\":\"%s\","
				   "\"key\":\"%s\"}\n",
				   (unsigned long long)index, cb64s[cert],
				   key_b64);
	return p + sprintf(p, "{\"index\":%llu,\"cert\":\"%s\"}\n",
			   (unsigned long long)index, cb64s[cert]);
}

static char *line(char *p, uint64_t index, bool with_key)
{
	return line_cert(p, index, (unsigned)(index % NCERTS), with_key);
}

static char *batch(size_t n, bool with_key)
{
	char *text = malloc(n * (strlen(cert_b64) + strlen(key_b64) + 80) + 1);
	char *p = text;

	assert_non_null(text);
	*p = '\0';
	/* Reverse order: the table must come out sorted anyway. */
	for (size_t i = 0; i < n; i++)
		p = line(p, n - 1 - i, with_key);
	return text;
}

static void check_blob(const struct kj_arena *a, const struct kj_cred *c,
		       bool with_key)
{
	const uint8_t *blob = kj_cred_blob(a->base, a->size, c);
	/* Index i carries certificate i (line()). */
	const uint8_t *der = cders[c->index % NCERTS];
	int dlen = clens[c->index % NCERTS];
	uint8_t h[32];

	assert_non_null(blob);
	/* PROTOCOL.md: u32be len(cert) || cert || u32be len(key) || key */
	assert_int_equal(c->cert_len, dlen);
	assert_int_equal(kj_get_u32be(blob), (uint32_t)dlen);
	assert_memory_equal(blob + 4, der, (size_t)dlen);
	if (with_key) {
		assert_int_equal(c->blob_len, 8 + dlen + key_len);
		assert_int_equal(kj_get_u32be(blob + 4 + dlen),
				 (uint32_t)key_len);
		assert_memory_equal(blob + 8 + dlen, key_der,
				    (size_t)key_len);
	} else {
		assert_int_equal(c->blob_len, 8 + dlen);
		assert_int_equal(kj_get_u32be(blob + 4 + dlen), 0);
	}
	kj_sha256(der, (size_t)dlen, h);
	assert_memory_equal(c->cert_sha256, h, 32);
}

static void test_thousand_lines(void **state)
{
	char *text = batch(1000, true);
	const struct kj_cred_table *t;
	struct kj_arena a;
	struct kj_creds c;

	(void)state;
	assert_int_equal(parse(&a, text, &c), 0);
	assert_int_equal(c.count, 1000);
	assert_int_equal(c.n_keys, 1000);
	/* The injector's view: offsets only, through the mapping's base. */
	t = kj_creds_table(a.base, a.size, c.table_off);
	assert_ptr_equal(t, c.table);
	assert_int_equal(t->count, 1000);
	for (uint64_t i = 0; i < 1000; i++) {
		const struct kj_cred *e = kj_creds_find(t, i);

		assert_non_null(e);
		assert_int_equal(e->index, i);
		assert_int_equal(e->line, 1000 - i);
		check_blob(&a, e, true);
	}
	assert_null(kj_creds_find(t, 1000));
	/* A table offset that is not a table is refused. */
	cap_start();
	assert_null(kj_creds_table(a.base, a.size, c.table_off + 64));
	assert_null(kj_creds_table(a.base, a.size, a.size));
	cap_end();
	kj_arena_destroy(&a);
	free(text);
}

static void test_read_only_mapping(void **state)
{
	char *text = batch(10, false);
	const struct kj_cred_table *t;
	const uint8_t *ro;
	struct kj_arena a;
	struct kj_creds c;

	(void)state;
	assert_int_equal(parse(&a, text, &c), 0);
	assert_int_equal(c.n_keys, 0);
	if (kj_arena_map_ro(a.fd, a.size, &ro) < 0)
		skip();
	t = kj_creds_table(ro, a.size, c.table_off);
	assert_non_null(t);
	check_blob(&(struct kj_arena){ .base = (uint8_t *)ro, .size = a.size },
		   kj_creds_find(t, 7), false);
	kj_arena_unmap_ro(ro, a.size);
	kj_arena_destroy(&a);
	free(text);
}

static void test_syntax_variants(void **state)
{
	char text[8192], *esc;
	struct kj_arena a;
	struct kj_creds c;

	(void)state;
	/* Any field order, JSON whitespace, CRLF, no final newline. */
	snprintf(text, sizeof(text),
		 " { \"key\" : \"%s\" ,\t\"cert\":\"%s\", \"index\" : 5 }\r\n"
		 "{\"cert\":\"%s\",\"index\":0}", key_b64, cb64s[5], cert_b64);
	assert_int_equal(parse(&a, text, &c), 0);
	assert_int_equal(c.count, 2);
	check_blob(&a, kj_creds_find(c.table, 5), true);
	check_blob(&a, kj_creds_find(c.table, 0), false);
	kj_arena_destroy(&a);

	/* JSON's escaped solidus "\/" inside base64 (PHP emits it). */
	esc = text + sprintf(text, "{\"index\":1,\"cert\":\"");
	for (const char *p = cb64s[1]; *p; p++)
		esc += sprintf(esc, *p == '/' ? "\\/" : "%c", *p);
	sprintf(esc, "\"}\n");
	assert_int_equal(parse(&a, text, &c), 0);
	check_blob(&a, kj_creds_find(c.table, 1), false);
	kj_arena_destroy(&a);

	/* Largest index. */
	snprintf(text, sizeof(text), "{\"index\":9007199254740991,\"cert\":"
		 "\"%s\"}\n", cert_b64);
	assert_int_equal(parse(&a, text, &c), 0);
	kj_arena_destroy(&a);
}

static void test_duplicate_index(void **state)
{
	char *text = batch(10, true);

	(void)state;
	/* Lines hold indexes 9..0; index 6 was on line 4, 3 on line 7. */
	memcpy(strstr(text, "\"index\":6,"), "\"index\":3,", 10);
	refused(text, "CREDS: line 7: field \"index\": 3 already used on "
		      "line 4");
	free(text);
}

/* Two indexes with one certificate: refused, naming both (and lines). */
static void test_duplicate_cert(void **state)
{
	char *text = malloc(6 * (strlen(cert_b64) + strlen(key_b64) + 80));
	char *p = text;

	(void)state;
	assert_non_null(text);
	p = line_cert(p, 0, 0, true);
	p = line_cert(p, 1, 1, true);
	p = line_cert(p, 7, 3, true);
	p = line_cert(p, 3, 3, false); /* the same certificate, no key */
	line_cert(p, 4, 4, true);
	refused(text, "CREDS: indexes 3 (line 4) and 7 (line 3) carry the "
		      "same certificate");
	/* Distinct certificates of the same key are fine. */
	p = text;
	for (unsigned i = 0; i < 5; i++)
		p = line_cert(p, i, i, true);
	{
		struct kj_arena a;
		struct kj_creds c;

		assert_int_equal(parse(&a, text, &c), 0);
		assert_int_equal(c.count, 5);
		kj_arena_destroy(&a);
	}
	free(text);
}

static void test_bad_lines(void **state)
{
	char text[16384], bad[64];

	(void)state;
	/* A certificate that is base64 but not X.509, on line 2. */
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\"}\n"
		 "{\"index\":1,\"cert\":\"aGVsbG8gd29ybGQh\"}\n", cert_b64);
	refused(text, "CREDS: line 2: field \"cert\": not a DER X.509 "
		      "certificate");
	/* A key that is not PKCS#8 (the certificate's DER). */
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\","
		 "\"key\":\"%s\"}\n", cert_b64, cert_b64);
	refused(text, "CREDS: line 1: field \"key\": not a DER PKCS#8");
	/* Truncated key. */
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\","
		 "\"key\":\"%.40s\"}\n", cert_b64, key_b64);
	refused(text, "CREDS: line 1: field \"key\": not a DER PKCS#8");
	/* Unknown field, after the secret: decrypted bytes, never echoed,
	 * not even a short plain name (it could be a piece of a key). */
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\","
		 "\"key\":\"%s\",\"color\":1}\n", cert_b64, key_b64);
	refused(text, "CREDS: line 1: unknown field (a name of 5 bytes;");
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\","
		 "\"%.20s\":1}\n", cert_b64, key_b64 + 8);
	refused(text, "CREDS: line 1: unknown field (a name of 20 bytes;");
	snprintf(text, sizeof(text), "%.20s", key_b64 + 8);
	assert_null(strstr(refused_log, text));
	/* Duplicate field. */
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\","
		 "\"cert\":\"%s\"}\n", cert_b64, cert_b64);
	refused(text, "line 1: field \"cert\": given twice");
	/* Missing fields. */
	refused("{\"index\":0}\n", "line 1: field \"cert\": missing");
	snprintf(text, sizeof(text), "{\"cert\":\"%s\"}\n", cert_b64);
	refused(text, "line 1: field \"index\": missing");
	/* Escapes other than \/ are refused cleanly. */
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%.20s\\n%s\"}\n",
		 cert_b64, cert_b64 + 20);
	refused(text, "line 1: field \"cert\": string escape other than");
	snprintf(text, sizeof(text), "{\"ind\\u0065x\":0,\"cert\":\"%s\"}\n",
		 cert_b64);
	refused(text, "line 1: field names must be plain");
	/* Base64 that is not canonical or not base64 at all. */
	refused("{\"index\":0,\"cert\":\"QQ==QQ==\"}\n",
		"line 1: field \"cert\": not valid base64");
	refused("{\"index\":0,\"cert\":\"QR==\"}\n",
		"line 1: field \"cert\": not valid base64");
	refused("{\"index\":0,\"cert\":\"QUJD RA==\"}\n",
		"line 1: field \"cert\": not valid base64");
	refused("{\"index\":0,\"cert\":\"QUJ\"}\n",
		"line 1: field \"cert\": not valid base64");
	refused("{\"index\":0,\"cert\":\"\"}\n",
		"line 1: field \"cert\": empty");
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\","
		 "\"key\":\"\"}\n", cert_b64);
	refused(text, "line 1: field \"key\": empty");
	/* Index: integers 0..2^53-1 only. */
	static const char *const idx[] = { "-1", "01", "1.0", "1e3", "\"1\"",
					   "null", "9007199254740992", "" };
	for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
		snprintf(text, sizeof(text), "{\"index\":%s,\"cert\":\"%s\"}\n",
			 idx[i], cert_b64);
		snprintf(bad, sizeof(bad), "line 1: field \"index\"");
		refused(text, bad);
	}
	/* Line structure. */
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\"}\n\n"
		 "{\"index\":1,\"cert\":\"%s\"}\n", cert_b64, cert_b64);
	refused(text, "CREDS: line 2: empty line");
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\"}\n\n",
		 cert_b64);
	refused(text, "CREDS: line 2: empty line");
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\"} {}\n",
		 cert_b64);
	refused(text, "line 1: trailing data");
	snprintf(text, sizeof(text), "[{\"index\":0,\"cert\":\"%s\"}]\n",
		 cert_b64);
	refused(text, "line 1: expected '{'");
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\"\n",
		 cert_b64);
	refused(text, "line 1: expected '}'");
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%.30s\n",
		 cert_b64);
	refused(text, "line 1: field \"cert\": unterminated");
	refused("", "CREDS: no credentials");
	refused("\n", "CREDS: line 1: empty line");
	refused("{}\n", "line 1: expected a field name");
}

/* The PKCS#8 envelope check accepts the usual key types, not just EC. */
static void test_key_types(void **state)
{
	EVP_PKEY *keys[] = { EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
			     EVP_RSA_gen(1024) };

	(void)state;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(keys[i]);
		uint8_t *der = NULL;
		int n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
		char *kb = b64(der, n), *text = malloc(strlen(kb) + 4096);
		struct kj_arena a;
		struct kj_creds c;
		const uint8_t *blob;

		sprintf(text, "{\"index\":3,\"cert\":\"%s\",\"key\":\"%s\"}\n",
			cert_b64, kb);
		assert_int_equal(parse(&a, text, &c), 0);
		blob = kj_cred_blob(a.base, a.size, kj_creds_find(c.table, 3));
		assert_non_null(blob);
		assert_int_equal(kj_get_u32be(blob + 4 + clens[0]), n);
		assert_memory_equal(blob + 8 + clens[0], der, (size_t)n);
		kj_arena_destroy(&a);
		free(text);
		free(kb);
		OPENSSL_free(der);
		PKCS8_PRIV_KEY_INFO_free(p8);
		EVP_PKEY_free(keys[i]);
	}
}

/* DER with bytes after the certificate is refused. */
static void test_cert_trailing_bytes(void **state)
{
	uint8_t der[8192];
	char *cb, text[16384];

	(void)state;
	memcpy(der, cert_der, (size_t)clens[0]);
	memcpy(der + clens[0], "\x05\x00", 2); /* a DER NULL */
	cb = b64(der, clens[0] + 2);
	snprintf(text, sizeof(text), "{\"index\":0,\"cert\":\"%s\"}\n", cb);
	refused(text, "line 1: field \"cert\": 2 bytes after the certificate");
	free(cb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thousand_lines),
		cmocka_unit_test(test_read_only_mapping),
		cmocka_unit_test(test_syntax_variants),
		cmocka_unit_test(test_duplicate_index),
		cmocka_unit_test(test_duplicate_cert),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_key_types),
		cmocka_unit_test(test_cert_trailing_bytes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
