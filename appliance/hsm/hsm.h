/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The appliance's HSM through p11-kit (SPEC.md §2, §3, §5).  One session per
 * process, logged in with the PIN from --pin-source (pin.h).  The token and
 * the key object are named by a PKCS#11 URI (RFC 7512), e.g.
 *
 *   pkcs11:token=kinject;object=transport
 *   pkcs11:token=kinject;object=transport;id=%01?module-path=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
 *
 * Without module-path every module registered with p11-kit is loaded and the
 * first token matching the URI is used.  Errors name the URI and the CK_RV.
 * A CK_RV that means the token or its session is gone (CKR_DEVICE_REMOVED,
 * CKR_TOKEN_NOT_PRESENT, CKR_SESSION_HANDLE_INVALID, ...) returns -ENODEV,
 * any other failed call -EIO (a wrong PIN -EACCES).
 */
#ifndef KINJECT_HSM_H
#define KINJECT_HSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "ecdh_key.h"

struct kj_hsm;
typedef struct evp_pkey_st EVP_PKEY;

/*
 * Load the module(s), find the token matching uri, open one R/W session and
 * C_Login as CKU_USER with the PIN read from pin_source ("file:PATH" or
 * "env:NAME"; NULL: the URI's own ?pin-source=, RFC 7512, or no login).  The PIN is wiped right after C_Login.
 * The key object is looked up lazily (it may not exist yet: ceremony).
 * PKCS#11 login state is per process and token: a second handle on a token
 * this process is already logged in to gets CKR_USER_ALREADY_LOGGED_IN
 * (accepted; the PIN is not checked again), and closing one handle does not
 * log the others out (no C_Logout; the token logs out with the last
 * session).
 */
KJ_MUST_CHECK int kj_hsm_open(struct kj_hsm **out, const char *uri,
			      const char *pin_source);

/* Logout, close the session, finalize the module(s).  NULL is fine. */
void kj_hsm_close(struct kj_hsm *h);

/* The URI the handle was opened with, for messages. */
const char *kj_hsm_uri(const struct kj_hsm *h);

/*
 * ECDH inside the HSM: CKM_ECDH1_DERIVE (CKD_NULL) of the EC private key
 * named by the URI with peer (an uncompressed point 04||X||Y).  The shared
 * secret Z (the X coordinate, 32 bytes for P-256) is read out of a
 * short-lived session object straight into z, which must be arena memory,
 * and the object is destroyed.  *z_len is set to its length.
 */
KJ_MUST_CHECK int kj_hsm_ecdh(struct kj_hsm *h, const uint8_t *peer,
			      size_t peer_len, uint8_t *z, size_t z_cap,
			      size_t *z_len);

/* Is the private key named by the URI there?  0, or -ENOKEY (logged). */
KJ_MUST_CHECK int kj_hsm_check_key(struct kj_hsm *h);

/*
 * The transport public key as an uncompressed point, from the public key
 * object with the URI's label/id (CKA_EC_POINT, DER OCTET STRING unwrapped).
 */
KJ_MUST_CHECK int kj_hsm_public_point(struct kj_hsm *h, uint8_t *out,
				      size_t cap, size_t *len);

/*
 * Ceremony: generate the EC P-256 transport key pair in the token with the
 * URI's object label and id: private key sensitive, derive + sign; public
 * key token object.  Never extractable, unless wrappable: then
 * CKA_EXTRACTABLE is true (CKA_SENSITIVE stays true), so that the backup
 * can take it out wrapped and only wrapped (kj_hsm_wrap_transport).
 * Refuses if a private key with that label/id already exists (-EEXIST).
 */
KJ_MUST_CHECK int kj_hsm_generate_ec_p256(struct kj_hsm *h, bool wrappable);

/*
 * Backup (hsm_wrap.c): C_WrapKey of the transport private key with
 * CKM_AES_KEY_WRAP_PAD (RFC 5649) under kek, a 32-byte AES key (arena
 * memory) imported as a session object for this call only.  -EPERM
 * (logged) when the key is never extractable: the token cannot back it up.
 */
KJ_MUST_CHECK int kj_hsm_wrap_transport(struct kj_hsm *h,
					const uint8_t kek[32], uint8_t *out,
					size_t cap, size_t *len);

/*
 * Restore: C_UnwrapKey of a wrapped transport private key under kek into
 * a token object with the URI's label and id (sensitive, wrappable, derive
 * + sign) and its public key object from point (04||X||Y).  Refuses if the
 * token has a private key with that label/id already (-EEXIST); -EBADMSG
 * when the unwrap fails its integrity check (wrong key or blob).
 */
KJ_MUST_CHECK int kj_hsm_unwrap_transport(struct kj_hsm *h,
					  const uint8_t kek[32],
					  const uint8_t *wrapped, size_t len,
					  const uint8_t *point, size_t plen);

/*
 * ECDSA P-256 signature by the transport key over a 32-byte digest (for the
 * ceremony's self-signed transport.pem).  sig receives r||s (64 bytes).
 */
KJ_MUST_CHECK int kj_hsm_sign_ecdsa(struct kj_hsm *h, const uint8_t dgst[32],
				    uint8_t sig[64]);

/*
 * Another EC key of the token (the issuing CA's): the private key whose
 * public key object has CKA_EC_POINT = pt (uncompressed), matched through
 * CKA_ID.  *key is its handle for kj_hsm_sign_ecdsa_key.  -ENOKEY
 * (logged) when there is not exactly one.
 */
KJ_MUST_CHECK int kj_hsm_find_key_by_point(struct kj_hsm *h, const uint8_t *pt,
					   size_t len, unsigned long *key);
/* The handle of the private key the URI names (for the two above). */
KJ_MUST_CHECK int kj_hsm_uri_key(struct kj_hsm *h, unsigned long *key);
KJ_MUST_CHECK int kj_hsm_sign_ecdsa_key(struct kj_hsm *h, unsigned long key,
					const uint8_t dgst[32],
					uint8_t sig[64]);

/* Add extension nid = value (OpenSSL config syntax) to x; issuer NULL:
 * self-signed.  0 or -1. */
int kj_x509_add_ext(X509 *x, X509 *issuer, int nid, const char *value);

/*
 * A certificate signed in the HSM: draft has every field set and was
 * signed by any throw-away P-256 key (that sets the ecdsa-with-SHA256
 * algorithm identifiers); its TBSCertificate is signed again with key and
 * the result must verify with pub.  *out: the new certificate.
 */
KJ_MUST_CHECK int kj_hsm_sign_cert(struct kj_hsm *h, unsigned long key,
				   X509 *draft, EVP_PKEY *pub, X509 **out);

/*
 * Ceremony: the self-signed transport certificate (transport.pem) for the
 * key named by the URI, signed by that key in the HSM (ecdsa-with-SHA256):
 * subject CN=cn, a random serial, valid `days' from now, keyUsage
 * digitalSignature+keyAgreement (critical), basicConstraints CA:FALSE,
 * subjectKeyIdentifier.  The caller frees *out with X509_free.
 */
KJ_MUST_CHECK int kj_hsm_transport_cert(struct kj_hsm *h, const char *cn,
					unsigned days, X509 **out);

/*
 * Ceremony (hsm_tls.c): the appliance's TLS server key, EC P-256, in the
 * token with label "kinject-tls" and a random CKA_ID: sign only,
 * sensitive, never extractable (it is not backed up: a restored appliance
 * gets a new one).  pt receives its public point 04||X||Y; the keeper
 * finds the private key again with kj_hsm_find_key_by_point.
 */
KJ_MUST_CHECK int kj_hsm_generate_tls_key(struct kj_hsm *h, uint8_t pt[65],
					  unsigned long *key);

/*
 * The appliance's TLS certificate (tls.pem, PROTOCOL.md "TLS"):
 * self-signed in the HSM by the TLS key, subject CN=cn, keyUsage
 * digitalSignature (critical), extendedKeyUsage serverAuth, CA:FALSE.
 * Sites pin it (kinject sim --ca).  The caller frees *out.
 */
KJ_MUST_CHECK int kj_hsm_tls_cert(struct kj_hsm *h, unsigned long key,
				  const uint8_t pt[65], const char *cn,
				  unsigned days, X509 **out);

/*
 * A key-agreement handle for kj_cms_open_envelope() backed by this HSM.
 * cert is the transport certificate (used to pick the recipient; may be
 * NULL: then every key-agreement recipient is tried).
 */
void kj_hsm_ecdh_key(struct kj_hsm *h, X509 *cert, struct kj_ecdh_key *out);

/* "CKR_PIN_INCORRECT" etc.; "CKR_0x%lx" for unknown values (static buf). */
const char *kj_ck_rv_name(unsigned long rv);

#endif
