// SPDX-License-Identifier: Apache-2.0
/*
 * Wire protocol bodies (PROTOCOL.md): HELLO's fields and their UTF-8,
 * READBACK, COMMIT, ABORT, OFFER and DATA, and the builders' bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/util.h"
#include "wire/proto.h"

/* A valid HELLO body with every field at a chosen size. */
static size_t hello_body(uint8_t *b, size_t site_len, size_t uid_len,
			 size_t hw_len, size_t pk_len)
{
	size_t n = 0;

	b[n++] = 1;
	b[n++] = (uint8_t)site_len;
	memset(b + n, 's', site_len);
	n += site_len;
	kj_put_u16be(b + n, 7);
	n += 2;
	kj_put_u16be(b + n, (uint16_t)uid_len);
	n += 2;
	memset(b + n, 0xa5, uid_len);
	n += uid_len;
	b[n++] = (uint8_t)hw_len;
	memset(b + n, 'B', hw_len);
	n += hw_len;
	kj_put_u16be(b + n, (uint16_t)pk_len);
	n += 2;
	memset(b + n, 0x11, pk_len);
	if (pk_len)
		b[n] = 0x04;
	n += pk_len;
	return n;
}

/* ---- HELLO body ---- */

static int hello(const uint8_t *b, size_t n, struct kj_hello *h,
		 const char **why)
{
	return kj_hello_parse(b, n, h, why);
}

static void expect_hello_bad(const uint8_t *b, size_t n, const char *part)
{
	struct kj_hello h;
	const char *why = NULL;

	assert_int_equal(hello(b, n, &h, &why), -EBADMSG);
	assert_non_null(why);
	if (!strstr(why, part))
		fail_msg("why `%s' lacks `%s'", why, part);
}

static void test_hello_fields(void **state)
{
	uint8_t b[700];
	struct kj_hello h;
	const char *why;
	size_t n;

	(void)state;
	/* largest legal HELLO: 255 + 64 + 255 + 65 */
	n = hello_body(b, 255, 64, 255, 65);
	assert_int_equal(n + 5, KJ_HELLO_FRAME_MAX);
	assert_int_equal(hello(b, n, &h, &why), 0);
	assert_int_equal(h.uid_len, 64);
	assert_int_equal(h.pubkey_len, 65);
	assert_int_equal(h.socket, 7);
	assert_int_equal(strlen(h.site_id), 255);
	/* smallest: empty strings, 1-byte uid, no key */
	n = hello_body(b, 0, 1, 0, 0);
	assert_int_equal(n, 10);
	assert_int_equal(hello(b, n, &h, &why), 0);
	assert_string_equal(h.hwrev, "");
	/* every truncation point of a full HELLO */
	n = hello_body(b, 5, 8, 1, 65);
	for (size_t k = 0; k < n; k++)
		expect_hello_bad(b, k, "truncated");
	/* trailing byte */
	b[n] = 0;
	expect_hello_bad(b, n + 1, "trailing");

	n = hello_body(b, 5, 0, 1, 0);
	expect_hello_bad(b, n, "uid length");
	n = hello_body(b, 5, 65, 1, 0);
	expect_hello_bad(b, n, "uid length");
	n = hello_body(b, 5, 8, 1, 64);
	expect_hello_bad(b, n, "device_pubkey length");
	n = hello_body(b, 5, 8, 1, 66);
	expect_hello_bad(b, n, "device_pubkey length");
	n = hello_body(b, 5, 8, 1, 1);
	expect_hello_bad(b, n, "device_pubkey length");
	n = hello_body(b, 5, 8, 1, 65);
	b[n - 65] = 0x02; /* compressed point prefix */
	expect_hello_bad(b, n, "SEC1");
	n = hello_body(b, 5, 8, 1, 0);
	b[0] = 2;
	expect_hello_bad(b, n, "version");
	b[0] = 0;
	expect_hello_bad(b, n, "version");
}

static void test_str8_utf8(void **state)
{
	static const struct {
		const char *s;
		size_t n;
		bool ok;
	} t[] = {
		{ "", 0, true },
		{ "line1-a", 7, true },
		{ "\xc3\xa9", 2, true },	     /* é */
		{ "\xe2\x82\xac", 3, true },	     /* € */
		{ "\xf0\x9f\x98\x80", 4, true },     /* U+1F600 */
		{ "\xf4\x8f\xbf\xbf", 4, true },     /* U+10FFFF */
		{ "\xed\x9f\xbf", 3, true },	     /* U+D7FF */
		{ "a\0b", 3, false },		     /* NUL */
		{ "\x80", 1, false },		     /* lone continuation */
		{ "\xc0\x80", 2, false },	     /* overlong NUL */
		{ "\xc1\xbf", 2, false },	     /* overlong */
		{ "\xe0\x9f\xbf", 3, false },	     /* overlong 3-byte */
		{ "\xf0\x8f\xbf\xbf", 4, false },    /* overlong 4-byte */
		{ "\xed\xa0\x80", 3, false },	     /* surrogate D800 */
		{ "\xf4\x90\x80\x80", 4, false },    /* > U+10FFFF */
		{ "\xf5\x80\x80\x80", 4, false },
		{ "\xff", 1, false },
		{ "\xe2\x82", 2, false },	     /* truncated */
		{ "\xc3", 1, false },
		{ "\xc3\x28", 2, false },	     /* bad continuation */
		{ "\xe2\x28\xa1", 3, false },
		{ "\xf0\x9f\x98\x28", 4, false },
	};
	uint8_t b[64];
	struct kj_hello h;
	const char *why;

	(void)state;
	for (size_t i = 0; i < KJ_ARRAY_SIZE(t); i++) {
		size_t n = 0;

		assert_int_equal(kj_str8_valid((const uint8_t *)t[i].s,
					       t[i].n), t[i].ok);
		/* and in a HELLO's site_id */
		b[n++] = 1;
		b[n++] = (uint8_t)t[i].n;
		memcpy(b + n, t[i].s, t[i].n);
		n += t[i].n;
		memcpy(b + n, "\x00\x01\x00\x01\x42\x01\x42\x00\x00", 9);
		n += 9;
		if (t[i].ok) {
			assert_int_equal(hello(b, n, &h, &why), 0);
			assert_memory_equal(h.site_id, t[i].s, t[i].n);
		} else {
			expect_hello_bad(b, n, "site_id is not UTF-8");
		}
	}
	/* hwrev is checked too */
	memcpy(b, "\x01\x00\x00\x01\x00\x01\x42\x01\xff\x00\x00", 11);
	expect_hello_bad(b, 11, "hwrev is not UTF-8");
}

/* ---- other bodies ---- */

static void test_readback_commit_abort(void **state)
{
	uint8_t b[300], d[32];
	struct kj_commit c;
	struct kj_abort a;
	const char *why;

	(void)state;
	memset(b, 0x5a, sizeof(b));
	assert_int_equal(kj_readback_parse(b, 32, d, &why), 0);
	assert_int_equal(kj_readback_parse(b, 31, d, &why), -EBADMSG);
	assert_int_equal(kj_readback_parse(b, 33, d, &why), -EBADMSG);
	assert_string_equal(why, "READBACK: trailing bytes");

	kj_put_u64be(b, 42);
	kj_put_u64be(b + 8, 7);
	assert_int_equal(kj_commit_parse(b, 16, &c, &why), 0);
	assert_int_equal(c.attempt, 42);
	assert_int_equal(c.leaf_index, 7);
	for (size_t k = 0; k < 16; k++)
		assert_int_equal(kj_commit_parse(b, k, &c, &why), -EBADMSG);
	assert_int_equal(kj_commit_parse(b, 17, &c, &why), -EBADMSG);

	memcpy(b, "\x00\x05\x03" "bad", 6);
	assert_int_equal(kj_abort_parse(b, 6, &a, &why), 0);
	assert_int_equal(a.code, KJ_ABORT_READBACK);
	assert_string_equal(a.message, "bad");
	for (size_t k = 0; k < 6; k++)
		assert_int_equal(kj_abort_parse(b, k, &a, &why), -EBADMSG);
	assert_int_equal(kj_abort_parse(b, 7, &a, &why), -EBADMSG);
	assert_string_equal(why, "ABORT: trailing bytes");
	memcpy(b, "\x00\x00\x00", 3);
	assert_int_equal(kj_abort_parse(b, 3, &a, &why), -EBADMSG);
	assert_string_equal(why, "ABORT: code not 1..10");
	memcpy(b, "\x00\x0b\x00", 3);
	assert_int_equal(kj_abort_parse(b, 3, &a, &why), -EBADMSG);
	memcpy(b, "\x00\x09\x00", 3);
	assert_int_equal(kj_abort_parse(b, 3, &a, &why), 0);
	memcpy(b, "\x00\x01\x01\x00", 4);
	assert_int_equal(kj_abort_parse(b, 4, &a, &why), -EBADMSG);
	assert_string_equal(why, "ABORT: message is not UTF-8 without NUL");
}

static void test_offer_data_bodies(void **state)
{
	struct kj_offer o = { .attempt = 0x0102030405060708ull,
			      .fw_size = 70000, .cred_size = 1500 };
	uint8_t b[KJ_OFFER_FRAME_MAX + 1], stream;
	const uint8_t *payload;
	uint32_t off, plen;
	struct kj_offer o2;
	const char *why;
	int n;

	(void)state;
	memset(o.serial, 'S', 255);
	strcpy(o.fw_version, "3.1.5");
	memset(o.fw_sha256, 0xab, 32);
	n = kj_offer_build(b, sizeof(b), &o);
	assert_true(n > 0);
	assert_int_equal(kj_get_u32be(b), (uint32_t)n - 4);
	assert_int_equal(kj_offer_parse(b + 5, (size_t)n - 5, &o2, &why), 0);
	assert_memory_equal(&o, &o2, sizeof(o));
	for (int k = 0; k < n - 5; k++)
		assert_int_equal(kj_offer_parse(b + 5, (size_t)k, &o2, &why),
				 -EBADMSG);
	b[n] = 0;
	assert_int_equal(kj_offer_parse(b + 5, (size_t)n - 4, &o2, &why),
			 -EBADMSG);
	assert_string_equal(why, "OFFER: trailing bytes");
	b[5 + 8 + 1] = 0xc0; /* serial's first byte: invalid UTF-8 */
	assert_int_equal(kj_offer_parse(b + 5, (size_t)n - 5, &o2, &why),
			 -EBADMSG);

	memcpy(b, "\x01\x00\x00\x00\x10xyz", 8);
	assert_int_equal(kj_data_parse(b, 8, &stream, &off, &payload, &plen,
				       &why), 0);
	assert_int_equal(stream, 1);
	assert_int_equal(off, 16);
	assert_int_equal(plen, 3);
	assert_int_equal(kj_data_parse(b, 5, &stream, &off, &payload, &plen,
				       &why), -EBADMSG);
	b[0] = 2;
	assert_int_equal(kj_data_parse(b, 8, &stream, &off, &payload, &plen,
				       &why), -EBADMSG);
	memcpy(b, "\x00\xff\xff\xff\xff" "x", 6);
	assert_int_equal(kj_data_parse(b, 6, &stream, &off, &payload, &plen,
				       &why), -EBADMSG);
	assert_string_equal(why, "DATA: offset + length beyond 4 GiB");
}

/* ---- builders ---- */

static void test_builders(void **state)
{
	uint8_t b[1024];
	struct kj_hello h = { .version = 1, .uid_len = 1 };
	char longmsg[400];
	struct kj_abort a;
	int n;

	(void)state;
	n = kj_commit_build(b, sizeof(b), 0x1122334455667788ull, 5);
	assert_int_equal(n, 21);
	assert_memory_equal(b, "\x00\x00\x00\x11\x05\x11\x22\x33\x44\x55\x66"
			       "\x77\x88\x00\x00\x00\x00\x00\x00\x00\x05", 21);
	assert_int_equal(kj_commit_build(b, 20, 1, 1), -ENOSPC);
	n = kj_abort_build(b, sizeof(b), KJ_ABORT_QUOTA, NULL);
	assert_int_equal(n, 8);
	assert_memory_equal(b, "\x00\x00\x00\x04\x06\x00\x03\x00", 8);
	assert_int_equal(kj_abort_build(b, sizeof(b), 0, "x"), -EINVAL);
	assert_int_equal(kj_abort_build(b, sizeof(b), 11, "x"), -EINVAL);
	assert_int_equal(kj_abort_build(b, sizeof(b), 1, "\xff"), -EINVAL);
	/* 200 x "é": cut to 254 bytes, never inside a character */
	for (int i = 0; i < 200; i++)
		memcpy(longmsg + 2 * i, "\xc3\xa9", 2);
	longmsg[400 - 1] = '\0';
	longmsg[398] = '\0';
	n = kj_abort_build(b, sizeof(b), KJ_ABORT_INTERNAL, longmsg);
	assert_int_equal(n, 5 + 2 + 1 + 254);
	assert_int_equal(kj_abort_parse(b + 5, (size_t)n - 5, &a, NULL), 0);
	assert_int_equal(strlen(a.message), 254);

	assert_true(kj_hello_build(b, sizeof(b), &h) > 0);
	h.uid_len = 0;
	assert_int_equal(kj_hello_build(b, sizeof(b), &h), -EINVAL);
	h.uid_len = 65;
	assert_int_equal(kj_hello_build(b, sizeof(b), &h), -EINVAL);
	h.uid_len = 4;
	h.pubkey_len = 64;
	assert_int_equal(kj_hello_build(b, sizeof(b), &h), -EINVAL);
	h.pubkey_len = 65; /* pubkey[0] is 0, not 0x04 */
	assert_int_equal(kj_hello_build(b, sizeof(b), &h), -EINVAL);
	h.pubkey_len = 0;
	strcpy(h.hwrev, "\xc3");
	assert_int_equal(kj_hello_build(b, sizeof(b), &h), -EINVAL);
	strcpy(h.hwrev, "B");
	assert_int_equal(kj_hello_build(b, 12, &h), -ENOSPC);
	n = kj_hello_build(b, sizeof(b), &h);
	/* HELLO v1 site "" socket 0 uid 00000000 hwrev "B" no key */
	assert_int_equal(n, 5 + 1 + 1 + 2 + 2 + 4 + 2 + 2);
	assert_memory_equal(b, "\x00\x00\x00\x0f\x01\x01\x00\x00\x00\x00\x04"
			       "\x00\x00\x00\x00\x01" "B\x00\x00", 19);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_fields),
		cmocka_unit_test(test_str8_utf8),
		cmocka_unit_test(test_readback_commit_abort),
		cmocka_unit_test(test_offer_data_bodies),
		cmocka_unit_test(test_builders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
