/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue mode (PROTOCOL.md cred_blob, SPEC.md §3.2 "later mode"): the
 * officers enrolled an issuing CA (`ceremony request enrol-issuing-ca`,
 * STATE/issuing-ca/<name>.pem) whose key is in the HSM; per device the
 * appliance issues a certificate for the HELLO's device_pubkey, so the
 * device's private key never leaves the chip and the batch carries none.
 *
 * The device certificate: subject CN = the device's serial (the OFFER's),
 * issuer = the CA's subject, a random 127-bit serial number, valid from now
 * until the CA's notAfter, basicConstraints CA:FALSE and keyUsage
 * digitalSignature (both critical), subject and authority key ids,
 * ecdsa-with-SHA256 made in the HSM.
 */
#ifndef KINJECT_ISSUER_H
#define KINJECT_ISSUER_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"

struct kj_hsm;
typedef struct x509_st X509;
typedef struct evp_pkey_st EVP_PKEY;

/* Issued certificates are at most this long (checked when issuing). */
#define KJ_ISSUED_CERT_MAX 1024

struct kj_issuer {
	X509 *ca;
	EVP_PKEY *tmp;	    /* throw-away key: sets the algorithm ids */
	struct kj_hsm *hsm;
	unsigned long key;  /* the CA's private key in the HSM */
	char path[512];	    /* for messages */
};

/*
 * The one issuing CA enrolled in state_dir and its private key in hsm
 * (matched by public key).  Errors name the directory/file and say what to
 * do; -ENOKEY when none is enrolled or its key is not in the HSM.
 */
KJ_MUST_CHECK int kj_issuer_load(const char *state_dir, struct kj_hsm *hsm,
				 struct kj_issuer *out);
void kj_issuer_free(struct kj_issuer *is);
/* The HSM's URI, for messages. */
const char *kj_issuer_hsm_uri(const struct kj_issuer *is);

/*
 * Issue the certificate for dev (a P-256 public key) named serial; its
 * DER into out (cap bytes).  Returns the DER length, or a negative errno
 * (logged): -ENODEV when the HSM is gone (hsm.h), which stays so for every
 * later certificate.
 */
KJ_MUST_CHECK int kj_issuer_issue(const struct kj_issuer *is, EVP_PKEY *dev,
				  const char *serial, uint8_t *out,
				  size_t cap);

#endif
