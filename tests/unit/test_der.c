// SPDX-License-Identifier: Apache-2.0
/* der.c: the strict DER rules the CMS parsers rely on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/der.h"

static int one(const uint8_t *b, size_t n, struct kj_tlv *t)
{
	struct kj_der d;

	kj_der_init(&d, b, n, "t");
	return kj_der_next(&d, t, "x");
}

static void test_lengths(void **state)
{
	static const uint8_t ok_short[] = { 0x04, 0x02, 0xaa, 0xbb };
	static const uint8_t ok_long[] = { 0x04, 0x81, 0x80 };
	static const uint8_t nonmin1[] = { 0x04, 0x81, 0x05, 1, 2, 3, 4, 5 };
	static const uint8_t nonmin2[] = { 0x04, 0x82, 0x00, 0x90 };
	static const uint8_t indef[] = { 0x30, 0x80, 0x00, 0x00 };
	static const uint8_t hightag[] = { 0x1f, 0x81, 0x01, 0x00 };
	static const uint8_t huge[] = { 0x04, 0x85, 1, 0, 0, 0, 0 };
	static const uint8_t past[] = { 0x04, 0x03, 0xaa };
	uint8_t big[3 + 0x80] = { 0x04, 0x81, 0x80 };
	struct kj_tlv t;

	(void)state;
	assert_int_equal(one(ok_short, sizeof(ok_short), &t), 0);
	assert_int_equal(t.len, 2);
	assert_int_equal(t.tlv_len, 4);
	assert_int_equal(one(big, sizeof(big), &t), 0);
	assert_int_equal(t.len, 0x80);
	assert_int_equal(one(ok_long, sizeof(ok_long), &t), -EBADMSG);
	assert_int_equal(one(nonmin1, sizeof(nonmin1), &t), -EBADMSG);
	assert_int_equal(one(nonmin2, sizeof(nonmin2), &t), -EBADMSG);
	assert_int_equal(one(indef, sizeof(indef), &t), -EBADMSG);
	assert_int_equal(one(hightag, sizeof(hightag), &t), -EBADMSG);
	assert_int_equal(one(huge, sizeof(huge), &t), -EBADMSG);
	assert_int_equal(one(past, sizeof(past), &t), -EBADMSG);
	assert_int_equal(one(past, 1, &t), -EBADMSG);
}

static void test_structure(void **state)
{
	/* SEQUENCE { INTEGER 3, OID 1.2.840.10045.2.1 } + trailing byte */
	static const uint8_t b[] = { 0x30, 0x0c, 0x02, 0x01, 0x03, 0x06, 0x07,
				     0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
				     0x00 };
	static const uint8_t ecpub[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
					 0x01 };
	struct kj_der d, in;
	struct kj_tlv seq, i, o;
	char txt[64];
	long v;

	(void)state;
	kj_der_init(&d, b, sizeof(b), "t");
	assert_int_equal(kj_der_expect(&d, KJ_DER_SEQUENCE, &seq, "s"), 0);
	assert_int_equal(kj_der_end(&d, "s"), -EBADMSG); /* trailing 0x00 */
	kj_der_enter(&d, &seq, &in);
	assert_int_equal(kj_der_optional(&in, KJ_DER_OID, &o, "o"), 0);
	assert_int_equal(kj_der_expect(&in, KJ_DER_OID, &i, "i"), -EBADMSG);
	assert_int_equal(kj_der_expect(&in, KJ_DER_INTEGER, &i, "i"), 0);
	assert_int_equal(kj_der_small_int(&in, &i, "i", &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(kj_der_optional(&in, KJ_DER_OID, &o, "o"), 1);
	assert_true(kj_der_oid_is(&o, ecpub, sizeof(ecpub)));
	kj_der_oid_text(&o, txt, sizeof(txt));
	assert_string_equal(txt, "1.2.840.10045.2.1");
	assert_int_equal(kj_der_end(&in, "s"), 0);
	assert_int_equal(kj_der_peek(&in), -1);
	assert_int_equal(kj_der_expect(&in, KJ_DER_OID, &o, "o"), -EBADMSG);
}

static void test_small_int(void **state)
{
	static const uint8_t neg[] = { 0x02, 0x01, 0x80 };
	static const uint8_t pad[] = { 0x02, 0x02, 0x00, 0x05 };
	static const uint8_t okpad[] = { 0x02, 0x02, 0x00, 0x85 };
	struct kj_der d;
	struct kj_tlv t;
	long v;

	(void)state;
	kj_der_init(&d, neg, sizeof(neg), "t");
	assert_int_equal(kj_der_next(&d, &t, "n"), 0);
	assert_int_equal(kj_der_small_int(&d, &t, "n", &v), -EBADMSG);
	kj_der_init(&d, pad, sizeof(pad), "t");
	assert_int_equal(kj_der_next(&d, &t, "n"), 0);
	assert_int_equal(kj_der_small_int(&d, &t, "n", &v), -EBADMSG);
	kj_der_init(&d, okpad, sizeof(okpad), "t");
	assert_int_equal(kj_der_next(&d, &t, "n"), 0);
	assert_int_equal(kj_der_small_int(&d, &t, "n", &v), 0);
	assert_int_equal(v, 0x85);
}

static void test_header(void **state)
{
	uint8_t h[6];
	size_t lens[] = { 0, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000,
			  0x123456, 0x1000000 };

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t hl = kj_der_header(0x30, lens[i], h);
		static uint8_t buf[6 + 0x1000000];
		struct kj_tlv t;

		memcpy(buf, h, hl);
		assert_int_equal(one(buf, hl + lens[i], &t), 0);
		assert_int_equal(t.len, lens[i]);
		assert_int_equal(t.tlv_len, hl + lens[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_small_int),
		cmocka_unit_test(test_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
