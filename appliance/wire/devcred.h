/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device's own P-256 key on the wire (PROTOCOL.md, device authenticity
 * and the inject mode of cred_blob): both ends compute the same bytes, so
 * they are here, next to the frames, and are fuzzed and tested alone.
 *
 *   proof digest = SHA-256("KINJECT-DEVICE-AUTH-1" || nonce ||
 *                          u16be(len uid) || uid), signed r || s (64 bytes)
 *   sealed blob  = ephemeral P-256 public key (65) || AES-256-GCM(cred_blob)
 *                  || tag (16); key = HKDF-SHA256(ECDH secret, salt = uid,
 *                  info = "KINJECT-CRED-1"), nonce = 12 zero bytes (the key
 *                  is fresh per blob, so the nonce never repeats under it)
 *
 * The ECDH secret and the AES key are stack temporaries wiped before
 * return; the plaintext is wherever the caller keeps it (the arena).
 * Nothing here logs peer bytes: verify/open return -EBADMSG, the caller
 * records why.
 */
#ifndef KINJECT_DEVCRED_H
#define KINJECT_DEVCRED_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "base/kinject.h"
#include "proto.h"

#define KJ_DEVAUTH_DOMAIN "KINJECT-DEVICE-AUTH-1"
#define KJ_CRED_SEAL_INFO "KINJECT-CRED-1"
#define KJ_GCM_TAG_LEN 16
#define KJ_SEAL_OVERHEAD (KJ_PUBKEY_LEN + KJ_GCM_TAG_LEN)

/* The digest the device signs for a CHALLENGE. */
void kj_devauth_digest(const uint8_t nonce[KJ_NONCE_LEN], const uint8_t *uid,
		       size_t uid_len, uint8_t out[32]);

/* Sign the digest with the device key (kinject sim): r || s. */
KJ_MUST_CHECK int kj_devauth_sign(EVP_PKEY *key,
				  const uint8_t nonce[KJ_NONCE_LEN],
				  const uint8_t *uid, size_t uid_len,
				  uint8_t sig[KJ_PROOF_SIG_LEN]);

/* 0 when sig (r || s) is key's signature of the digest; -EBADMSG if not. */
KJ_MUST_CHECK int kj_devauth_verify(EVP_PKEY *key,
				    const uint8_t nonce[KJ_NONCE_LEN],
				    const uint8_t *uid, size_t uid_len,
				    const uint8_t sig[KJ_PROOF_SIG_LEN]);

/* A P-256 public key from SEC1 uncompressed bytes; NULL if not on curve. */
EVP_PKEY *kj_p256_from_sec1(const uint8_t pt[KJ_PUBKEY_LEN]);

/* key's public point, SEC1 uncompressed; -EINVAL unless a P-256 key. */
KJ_MUST_CHECK int kj_p256_sec1(EVP_PKEY *key, uint8_t out[KJ_PUBKEY_LEN]);

/*
 * Seal plain (len bytes) to the device key pt: writes len +
 * KJ_SEAL_OVERHEAD bytes to out (cap checked) and returns that size, or
 * -EINVAL (not a P-256 point, cap too small), -EIO (OpenSSL, logged).
 */
KJ_MUST_CHECK int kj_cred_seal(const uint8_t pt[KJ_PUBKEY_LEN],
			       const uint8_t *uid, size_t uid_len,
			       const uint8_t *plain, size_t len, uint8_t *out,
			       size_t cap);

/*
 * Open a sealed blob with the device's private key (kinject sim, tests):
 * writes len - KJ_SEAL_OVERHEAD bytes to out and returns that size, or
 * -EBADMSG (wrong key, altered bytes, too short) / -ENOSPC.
 */
KJ_MUST_CHECK int kj_cred_open(EVP_PKEY *key, const uint8_t *uid,
			       size_t uid_len, const uint8_t *blob, size_t len,
			       uint8_t *out, size_t cap);

#endif
