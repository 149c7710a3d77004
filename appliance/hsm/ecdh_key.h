/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key-agreement handle between whoever holds a transport private key
 * and the CMS decryption that needs its ECDH (SPEC.md §3.1-3.2).  Here and
 * not in inputs/cms.h so that hsm/ depends on nothing but base/: the HSM
 * fills one (kj_hsm_ecdh_key), inputs/ consumes it.
 */
#ifndef KINJECT_ECDH_KEY_H
#define KINJECT_ECDH_KEY_H

#include <stddef.h>
#include <stdint.h>

typedef struct x509_st X509;

/*
 * Who does the ECDH for the recipient: the HSM (kj_hsm_ecdh_key()) or, in
 * tests and the fuzzer, a software key (kj_cms_sw_ecdh_key()).  derive
 * writes Z into z (arena memory) and sets *z_len; returns 0 or -errno
 * (having logged).  cert, if set, picks the matching recipient by
 * issuerAndSerialNumber or subjectKeyIdentifier; NULL tries every one.
 */
struct kj_ecdh_key {
	int (*derive)(void *ctx, const uint8_t *peer, size_t peer_len,
		      uint8_t *z, size_t z_cap, size_t *z_len);
	void *ctx;
	X509 *cert;
};

#endif
