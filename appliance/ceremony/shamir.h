/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shamir secret sharing over GF(2^8) (SPEC.md §5, the backup key): one
 * random polynomial of degree M-1 per secret byte, the byte its constant
 * term, evaluated at x = 1..N.  Any M shares give the secret back by
 * Lagrange interpolation at 0; fewer reveal nothing about it.
 *
 * The field is the AES one (x^8 + x^4 + x^3 + x + 1).  Arithmetic is
 * constant-time: no table lookups indexed by secret bytes and no branches
 * on them, so neither the cache nor the branch predictor learns a share.
 *
 * A share is 1 + len bytes: its x (1..255), then one y per secret byte.
 * Callers keep secrets, coefficients and shares in the secret arena.
 */
#ifndef KINJECT_SHAMIR_H
#define KINJECT_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"

#define KJ_SHAMIR_MAX_SHARES 255

/* Field operations, exposed for the known-answer tests. */
uint8_t kj_gf256_mul(uint8_t a, uint8_t b);
uint8_t kj_gf256_inv(uint8_t a); /* 0 -> 0 */

/*
 * Split secret (len bytes) into n shares of threshold m (2 <= m <= n <=
 * 255), written to shares[i * (len + 1)].  coeffs holds len * (m - 1)
 * random bytes (the caller draws them from the HSM or getrandom); they are
 * read only.  -EINVAL on bad m/n/len (logged).
 */
KJ_MUST_CHECK int kj_shamir_split(const uint8_t *secret, size_t len,
				  unsigned m, unsigned n,
				  const uint8_t *coeffs, uint8_t *shares);

/*
 * Split with coefficients from getrandom(2) into scratch (len * (m - 1)
 * bytes of arena memory, wiped before return).
 */
KJ_MUST_CHECK int kj_shamir_split_random(const uint8_t *secret, size_t len,
					 unsigned m, unsigned n,
					 uint8_t *scratch, uint8_t *shares);

/*
 * Rebuild the secret (len bytes) from k shares (each 1 + len bytes,
 * pointers in shares[]).  It is the caller's threshold that says whether k
 * is enough: with fewer than m shares the result is some other value.
 * -EINVAL (logged) if an x is 0 or two shares have the same x.
 */
KJ_MUST_CHECK int kj_shamir_combine(const uint8_t *const *shares, unsigned k,
				    size_t len, uint8_t *secret);

#endif
