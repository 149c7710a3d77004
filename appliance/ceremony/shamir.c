// SPDX-License-Identifier: Apache-2.0
/*
 * Shamir secret sharing over GF(2^8) (shamir.h).  Written here rather than
 * taken from a library because neither OpenSSL nor the distribution ships
 * one, and the few lines of field arithmetic must be constant-time, which
 * the table-driven versions in the wild are not.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "shamir.h"
#include "base/log.h"

/* Russian-peasant multiplication with masks instead of branches. */
uint8_t kj_gf256_mul(uint8_t a, uint8_t b)
{
	uint8_t r = 0;

	for (int i = 0; i < 8; i++) {
		r ^= (uint8_t)(-(b & 1) & a);
		b >>= 1;
		a = (uint8_t)((a << 1) ^ (-(a >> 7) & 0x1b));
	}
	return r;
}

/* a^254 = a^-1 (a^255 = 1 for a != 0; 0 maps to 0): same steps always. */
uint8_t kj_gf256_inv(uint8_t a)
{
	uint8_t r = 1, p = a;

	/* 254 = 0b11111110: square-and-multiply over the fixed exponent. */
	for (int i = 1; i < 8; i++) {
		p = kj_gf256_mul(p, p);
		r = kj_gf256_mul(r, p);
	}
	return r;
}

int kj_shamir_split(const uint8_t *secret, size_t len, unsigned m,
		    unsigned n, const uint8_t *coeffs, uint8_t *shares)
{
	if (m < 2 || m > n || n > KJ_SHAMIR_MAX_SHARES || !len) {
		kj_err("Shamir: need 2 <= threshold (%u) <= shares (%u) <= %d "
		       "and a secret", m, n, KJ_SHAMIR_MAX_SHARES);
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t x = (uint8_t)(i + 1), *sh = shares + i * (len + 1);

		sh[0] = x;
		for (size_t b = 0; b < len; b++) {
			const uint8_t *c = coeffs + b * (m - 1);
			uint8_t y = 0;

			/* Horner from the highest coefficient down. */
			for (unsigned d = m - 1; d > 0; d--)
				y = kj_gf256_mul((uint8_t)(y ^ c[d - 1]), x);
			sh[1 + b] = (uint8_t)(y ^ secret[b]);
		}
	}
	return 0;
}

int kj_shamir_split_random(const uint8_t *secret, size_t len, unsigned m,
			   unsigned n, uint8_t *scratch, uint8_t *shares)
{
	size_t need = len * (m > 1 ? m - 1 : 0), got = 0;
	int rc;

	while (got < need) {
		ssize_t r = getrandom(scratch + got, need - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			kj_err("getrandom: %s", strerror(errno));
			goto out;
		}
		got += (size_t)r;
	}
	rc = kj_shamir_split(secret, len, m, n, scratch, shares);
out:
	explicit_bzero(scratch, need);
	return rc;
}

int kj_shamir_combine(const uint8_t *const *shares, unsigned k, size_t len,
		      uint8_t *secret)
{
	uint8_t lag[KJ_SHAMIR_MAX_SHARES];

	if (!k || k > KJ_SHAMIR_MAX_SHARES) {
		kj_err("Shamir: %u shares given, need 1..%d", k,
		       KJ_SHAMIR_MAX_SHARES);
		return -EINVAL;
	}
	/* Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i).  The
	 * x's are public (share numbers), only the y's are secret. */
	for (unsigned i = 0; i < k; i++) {
		uint8_t num = 1, den = 1, xi = shares[i][0];

		if (!xi) {
			kj_err("Shamir: share %u has x = 0", i + 1);
			return -EINVAL;
		}
		for (unsigned j = 0; j < k; j++) {
			if (j == i)
				continue;
			if (shares[j][0] == xi) {
				kj_err("Shamir: two shares with number %u", xi);
				return -EINVAL;
			}
			num = kj_gf256_mul(num, shares[j][0]);
			den = kj_gf256_mul(den, (uint8_t)(shares[j][0] ^ xi));
		}
		lag[i] = kj_gf256_mul(num, kj_gf256_inv(den));
	}
	for (size_t b = 0; b < len; b++) {
		uint8_t s = 0;

		for (unsigned i = 0; i < k; i++)
			s ^= kj_gf256_mul(lag[i], shares[i][1 + b]);
		secret[b] = s;
	}
	return 0;
}
