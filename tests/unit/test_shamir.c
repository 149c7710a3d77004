// SPDX-License-Identifier: Apache-2.0
/*
 * Shamir over GF(2^8) (ceremony/shamir.h): field known answers from
 * FIPS-197, split known answers worked out by hand from them, and the
 * threshold property over random secrets: every M-subset of N shares
 * rebuilds the secret, every smaller subset gives something else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/rand.h>

#include "ceremony/shamir.h"
#include "kj_capture.h"

static void test_field_kat(void **state)
{
	(void)state;
	/* FIPS-197 §4.2: {57} * {83} = {c1}; {57} * {13} = {fe}. */
	assert_int_equal(kj_gf256_mul(0x57, 0x83), 0xc1);
	assert_int_equal(kj_gf256_mul(0x57, 0x13), 0xfe);
	/* FIPS-197 §4.2.1: {53} and {ca} are inverses. */
	assert_int_equal(kj_gf256_inv(0x53), 0xca);
	assert_int_equal(kj_gf256_inv(0xca), 0x53);
	assert_int_equal(kj_gf256_inv(0x01), 0x01);
	assert_int_equal(kj_gf256_inv(0x00), 0x00);
	for (unsigned a = 1; a < 256; a++)
		assert_int_equal(kj_gf256_mul((uint8_t)a,
					      kj_gf256_inv((uint8_t)a)), 1);
	for (unsigned a = 0; a < 256; a++)
		for (unsigned b = 0; b < 256; b += 7)
			assert_int_equal(kj_gf256_mul((uint8_t)a, (uint8_t)b),
					 kj_gf256_mul((uint8_t)b, (uint8_t)a));
}

/* m = 2: f(x) = s + c*x.  s = {53}, c = {ca}: f(1) = {99}, f(2) = {53} ^
 * xtime({ca}) = {53} ^ {8f} = {dc}, f(3) = {53} ^ {ca} ^ {8f} = {16}. */
static void test_split_kat(void **state)
{
	const uint8_t s[1] = { 0x53 }, c[1] = { 0xca };
	const uint8_t want[3][2] = { { 1, 0x99 }, { 2, 0xdc }, { 3, 0x16 } };
	uint8_t sh[3][2], back[1];
	const uint8_t *p[2];

	(void)state;
	assert_int_equal(kj_shamir_split(s, 1, 2, 3, c, &sh[0][0]), 0);
	assert_memory_equal(sh, want, sizeof(want));
	p[0] = sh[2];
	p[1] = sh[0];
	assert_int_equal(kj_shamir_combine(p, 2, 1, back), 0);
	assert_int_equal(back[0], 0x53);
	/* m = 3, f(x) = {00} + {01}x + {01}x^2: f(2) = 2 ^ 4 = {06}. */
	{
		const uint8_t z[1] = { 0 }, c2[2] = { 1, 1 };
		uint8_t t[3][2];

		assert_int_equal(kj_shamir_split(z, 1, 3, 3, c2, &t[0][0]), 0);
		assert_int_equal(t[0][1], 0x00);
		assert_int_equal(t[1][1], 0x06);
		assert_int_equal(t[2][1], 0x03 ^ kj_gf256_mul(3, 3));
	}
}

static void test_refusals(void **state)
{
	uint8_t s[4] = { 1, 2, 3, 4 }, c[16] = { 0 }, sh[5 * 5], out[4];
	const uint8_t *p[2];

	(void)state;
	cap_start();
	assert_int_equal(kj_shamir_split(s, 4, 1, 5, c, sh), -EINVAL);
	assert_int_equal(kj_shamir_split(s, 4, 6, 5, c, sh), -EINVAL);
	assert_int_equal(kj_shamir_split(s, 4, 2, 256, c, sh), -EINVAL);
	assert_int_equal(kj_shamir_split(s, 4, 2, 5, c, sh), 0);
	p[0] = sh;
	p[1] = sh;
	assert_int_equal(kj_shamir_combine(p, 2, 4, out), -EINVAL);
	assert_non_null(strstr(cap_end(), "two shares with number 1"));
}

/* Every subset of {0..n-1} by bitmask: size m rebuilds, size m-1 not. */
static void check_subsets(const uint8_t *secret, size_t len, unsigned m,
			  unsigned n, const uint8_t *shares)
{
	uint8_t *out = malloc(len);

	assert_non_null(out);
	for (unsigned mask = 1; mask < (1u << n); mask++) {
		const uint8_t *p[16];
		unsigned k = 0;

		for (unsigned i = 0; i < n; i++)
			if (mask & (1u << i))
				p[k++] = shares + i * (len + 1);
		if (k > m)
			continue;
		assert_int_equal(kj_shamir_combine(p, k, len, out), 0);
		if (k == m)
			assert_memory_equal(out, secret, len);
		else /* 32 random bytes equal by chance: 2^-256 */
			assert_memory_not_equal(out, secret, len);
	}
	free(out);
}

static void test_threshold_property(void **state)
{
	enum { LEN = 32 };
	uint8_t secret[LEN], scratch[LEN * 8], shares[8 * (LEN + 1)];

	(void)state;
	for (unsigned n = 2; n <= 8; n++)
		for (unsigned m = 2; m <= n; m++)
			for (int round = 0; round < 4; round++) {
				assert_int_equal(RAND_bytes(secret, LEN), 1);
				assert_int_equal(kj_shamir_split_random(
					secret, LEN, m, n, scratch, shares), 0);
				check_subsets(secret, LEN, m, n, shares);
				/* scratch is wiped after use */
				for (size_t i = 0; i < LEN * (m - 1); i++)
					assert_int_equal(scratch[i], 0);
			}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_field_kat),
		cmocka_unit_test(test_split_kat),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_threshold_property),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
