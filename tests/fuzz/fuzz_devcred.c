// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the device-key paths a site controls (wire/
 * devcred.h): a HELLO device_pubkey (any 65 bytes) as a P-256 point, a
 * PROOF signature over a CHALLENGE, and an inject-mode blob opened with a
 * fixed device key.  Invariants (abort on violation): nothing crashes or
 * leaks; a blob opens only if its tag verifies, so a fuzzed blob never
 * opens (the fuzzer cannot forge AES-GCM), and the point parser accepts
 * only what re-encodes to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "wire/devcred.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static EVP_PKEY *dev;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t pt[KJ_PUBKEY_LEN], back[KJ_PUBKEY_LEN], out[512];
	uint8_t nonce[KJ_NONCE_LEN] = { 1 }, uid[4] = { 2 };
	EVP_PKEY *k;

	if (!dev)
		dev = EVP_EC_gen("P-256");
	check(dev != NULL);
	if (size >= KJ_PUBKEY_LEN) {
		memcpy(pt, data, KJ_PUBKEY_LEN);
		k = kj_p256_from_sec1(pt);
		if (k) {
			check(kj_p256_sec1(k, back) == 0);
			check(!memcmp(pt, back, KJ_PUBKEY_LEN));
			EVP_PKEY_free(k);
		}
	}
	if (size >= KJ_PROOF_SIG_LEN)
		check(kj_devauth_verify(dev, nonce, uid, sizeof(uid), data) < 0);
	if (size <= sizeof(out) + KJ_SEAL_OVERHEAD)
		check(kj_cred_open(dev, uid, sizeof(uid), data, size, out,
				   sizeof(out)) < 0);
	return 0;
}
