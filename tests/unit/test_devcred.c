// SPDX-License-Identifier: Apache-2.0
/*
 * The device-key crypto of the wire protocol (wire/devcred.h): the
 * CHALLENGE digest against an independent computation, PROOF signatures
 * made and refused, and the inject-mode seal: it opens only with the
 * device's own key, for its own uid, unaltered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "wire/devcred.h"

static void test_digest(void **state)
{
	uint8_t nonce[32], uid[3] = { 1, 2, 3 }, d[32], want[32], m[58];

	(void)state;
	for (int i = 0; i < 32; i++)
		nonce[i] = (uint8_t)i;
	kj_devauth_digest(nonce, uid, sizeof(uid), d);
	memcpy(m, "KINJECT-DEVICE-AUTH-1", 21);
	memcpy(m + 21, nonce, 32);
	memcpy(m + 53, "\x00\x03", 2);
	memcpy(m + 55, uid, 3);
	SHA256(m, sizeof(m), want);
	assert_memory_equal(d, want, 32);
}

static void test_sign_verify(void **state)
{
	EVP_PKEY *a = EVP_EC_gen("prime256v1"), *b = EVP_EC_gen("prime256v1");
	uint8_t nonce[32] = { 7 }, uid[16] = { 9 }, sig[64];

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(kj_devauth_sign(a, nonce, uid, 16, sig), 0);
	assert_int_equal(kj_devauth_verify(a, nonce, uid, 16, sig), 0);
	/* another key, another nonce, another uid, a flipped bit: refused */
	assert_int_equal(kj_devauth_verify(b, nonce, uid, 16, sig), -EBADMSG);
	nonce[0] ^= 1;
	assert_int_equal(kj_devauth_verify(a, nonce, uid, 16, sig), -EBADMSG);
	nonce[0] ^= 1;
	assert_int_equal(kj_devauth_verify(a, nonce, uid, 15, sig), -EBADMSG);
	sig[63] ^= 1;
	assert_int_equal(kj_devauth_verify(a, nonce, uid, 16, sig), -EBADMSG);
	memset(sig, 0, sizeof(sig));
	assert_int_equal(kj_devauth_verify(a, nonce, uid, 16, sig), -EBADMSG);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
}

static void test_sec1(void **state)
{
	EVP_PKEY *a = EVP_EC_gen("prime256v1"), *back;
	EVP_PKEY *rsa = EVP_RSA_gen(1024);
	uint8_t pt[65], pt2[65];

	(void)state;
	assert_int_equal(kj_p256_sec1(a, pt), 0);
	assert_int_equal(pt[0], 0x04);
	back = kj_p256_from_sec1(pt);
	assert_non_null(back);
	assert_int_equal(kj_p256_sec1(back, pt2), 0);
	assert_memory_equal(pt, pt2, 65);
	assert_int_equal(kj_p256_sec1(rsa, pt2), -EINVAL);
	pt[64] ^= 1; /* off the curve */
	assert_null(kj_p256_from_sec1(pt));
	EVP_PKEY_free(a);
	EVP_PKEY_free(back);
	EVP_PKEY_free(rsa);
}

static void test_seal_open(void **state)
{
	EVP_PKEY *dev = EVP_EC_gen("prime256v1");
	EVP_PKEY *other = EVP_EC_gen("prime256v1");
	uint8_t pt[65], uid[16] = { 0xaa }, plain[300], blob[400], out[400];
	int n, m;

	(void)state;
	for (int i = 0; i < 300; i++)
		plain[i] = (uint8_t)(i * 7);
	assert_int_equal(kj_p256_sec1(dev, pt), 0);
	n = kj_cred_seal(pt, uid, 16, plain, 300, blob, sizeof(blob));
	assert_int_equal(n, 300 + KJ_SEAL_OVERHEAD);
	assert_int_equal(blob[0], 0x04);
	assert_null(memmem(blob, (size_t)n, plain + 100, 32));
	m = kj_cred_open(dev, uid, 16, blob, (size_t)n, out, sizeof(out));
	assert_int_equal(m, 300);
	assert_memory_equal(out, plain, 300);
	/* a second key, another uid (salt), a flipped bit: nothing opens */
	assert_int_equal(kj_cred_open(other, uid, 16, blob, (size_t)n, out,
				      sizeof(out)), -EBADMSG);
	uid[15] ^= 1;
	assert_int_equal(kj_cred_open(dev, uid, 16, blob, (size_t)n, out,
				      sizeof(out)), -EBADMSG);
	uid[15] ^= 1;
	blob[100] ^= 1;
	assert_int_equal(kj_cred_open(dev, uid, 16, blob, (size_t)n, out,
				      sizeof(out)), -EBADMSG);
	blob[100] ^= 1;
	blob[n - 1] ^= 1; /* the tag */
	assert_int_equal(kj_cred_open(dev, uid, 16, blob, (size_t)n, out,
				      sizeof(out)), -EBADMSG);
	blob[n - 1] ^= 1;
	assert_int_equal(kj_cred_open(dev, uid, 16, blob, 80, out,
				      sizeof(out)), -EBADMSG);
	/* two seals of the same plaintext differ (fresh ephemeral key) */
	memcpy(out, blob, (size_t)n);
	assert_int_equal(kj_cred_seal(pt, uid, 16, plain, 300, blob,
				      sizeof(blob)), n);
	assert_memory_not_equal(out, blob, (size_t)n);
	/* too small, and a point that is not on the curve */
	assert_int_equal(kj_cred_seal(pt, uid, 16, plain, 300, blob, 380),
			 -EINVAL);
	pt[64] ^= 1;
	assert_int_equal(kj_cred_seal(pt, uid, 16, plain, 300, blob,
				      sizeof(blob)), -EINVAL);
	EVP_PKEY_free(dev);
	EVP_PKEY_free(other);
}

/* In place, as the keeper seals inside the arena (keeper_cred.c). */
static void test_seal_in_place(void **state)
{
	EVP_PKEY *dev = EVP_EC_gen("prime256v1");
	uint8_t pt[65], uid[4] = { 1 }, buf[65 + 100 + 16], out[100], want[100];
	int n;

	(void)state;
	for (int i = 0; i < 100; i++)
		want[i] = buf[65 + i] = (uint8_t)(i + 1);
	assert_int_equal(kj_p256_sec1(dev, pt), 0);
	n = kj_cred_seal(pt, uid, 4, buf + 65, 100, buf, sizeof(buf));
	assert_int_equal(n, (int)sizeof(buf));
	assert_memory_not_equal(buf + 65, want, 100);
	assert_int_equal(kj_cred_open(dev, uid, 4, buf, sizeof(buf), out,
				      sizeof(out)), 100);
	assert_memory_equal(out, want, 100);
	EVP_PKEY_free(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_sec1),
		cmocka_unit_test(test_seal_open),
		cmocka_unit_test(test_seal_in_place),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
