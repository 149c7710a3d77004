/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Customer inputs in CMS (SPEC.md §3): the AuthEnvelopedData envelope of
 * FW.cms and CREDS.cms (AES-GCM, ECDH key agreement with an X9.63 KDF, AES
 * key wrap; RFC 5083, RFC 5652 §6.2.2, RFC 5753), the attached SignedData
 * inside it, and the detached signatures of WO.json and the product matrix.
 *
 * The envelope is parsed with our own DER walker (der.h), because the ECDH
 * happens in the HSM and OpenSSL 3 on Debian 12 has no PKCS#11 provider.
 * Every secret (Z, KEK, CEK, plaintext) is written only to the arena; the
 * plaintext is handed out only after the GCM tag verified.  The SignedData is
 * verified without OpenSSL ever copying the content: see docs/INPUTS.md.
 */
#ifndef KINJECT_CMS_H
#define KINJECT_CMS_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "hsm/ecdh_key.h"

struct kj_arena;
typedef struct evp_pkey_st EVP_PKEY;

/* A software key-agreement handle (tests, fuzzing): pkey is EC P-256. */
void kj_cms_sw_ecdh_key(EVP_PKEY *pkey, X509 *cert, struct kj_ecdh_key *out);

/*
 * Decrypt a CMS AuthEnvelopedData (DER ContentInfo) into the arena.
 * path names the file in messages.  On success *plain points into the arena
 * (GCM tag verified).  On any failure nothing is handed out and every arena
 * byte written is wiped.  -EBADMSG: malformed or failed authentication;
 * -ENOKEY: not encrypted to our key; -EINVAL unsupported algorithm;
 * -ENOMEM arena full; -EIO HSM/OpenSSL failure.
 */
KJ_MUST_CHECK int kj_cms_open_envelope(const struct kj_ecdh_key *key,
				       const uint8_t *der, size_t len,
				       const char *path, struct kj_arena *arena,
				       const uint8_t **plain,
				       size_t *plain_len);

/*
 * Verify an attached CMS SignedData (DER ContentInfo, usually in the arena)
 * signed by exactly one signer whose certificate equals signer, with signed
 * attributes (content type id-data, messageDigest checked against our own
 * digest of the content in place).  *content points at the eContent bytes
 * inside der: nothing is copied.  -EBADMSG on any failure (logged).
 */
KJ_MUST_CHECK int kj_cms_verify_signed(const uint8_t *der, size_t len,
				       X509 *signer, const char *path,
				       const uint8_t **content,
				       size_t *content_len);

/*
 * Verify a detached CMS SignedData (DER) over data (non-secret: WO.json,
 * the product matrix), same rules as kj_cms_verify_signed().  path names the
 * signature file in messages.
 */
KJ_MUST_CHECK int kj_cms_verify_detached(const uint8_t *data, size_t len,
					 const uint8_t *sig, size_t sig_len,
					 X509 *signer, const char *path);

/* Load one certificate, PEM or DER.  Errors name path. */
KJ_MUST_CHECK int kj_cert_load(const char *path, X509 **out);

#endif
