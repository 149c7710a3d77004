/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a `--listen tls:` job needs from the state directory and the HSM
 * (PROTOCOL.md "TLS"): the appliance's TLS certificate (STATE/tls.pem, made
 * by `kinject ceremony init`), its private key in the HSM, and the site CAs
 * the officers enrolled (STATE/site-ca/<name>.pem, `ceremony request
 * enrol-site-ca`).  Loaded by the pre-flight, in the keeper: the
 * certificate and the CAs go to the injector as PEM text (it has no
 * filesystem), the key stays here and signs through kj_tls_key_sign, for
 * the keeper's CertificateVerify check (keeper_sign.c) only.
 */
#ifndef KINJECT_TLS_KEY_H
#define KINJECT_TLS_KEY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"

struct kj_hsm;
typedef struct x509_st X509;

/* The DER ECDSA-Sig-Value of a P-256 signature is at most this long. */
#define KJ_TLS_SIG_MAX 72

struct kj_tls_key {
	X509 *cert;
	char *cert_pem;	      /* tls.pem's text */
	char *site_cas_pem;   /* every enrolled site CA, concatenated */
	unsigned n_site_cas;
	struct kj_hsm *hsm;
	unsigned long key;    /* the TLS private key in the HSM */
	char path[PATH_MAX];  /* tls.pem, for messages */
};

/*
 * Load tls.pem, find its key in hsm (by public key), read the site CAs.
 * Errors name the file or directory and say what to do: -ENOENT without
 * tls.pem (an appliance initialised before TLS), -ENOKEY without a site
 * CA or the key in the HSM.
 */
KJ_MUST_CHECK int kj_tls_key_load(const char *state_dir, struct kj_hsm *hsm,
				  struct kj_tls_key *out);
void kj_tls_key_free(struct kj_tls_key *k);

/*
 * ECDSA P-256 over SHA-256(msg) by the TLS key in the HSM, as DER
 * (ECDSA-Sig-Value, what TLS 1.3 carries) into sig (KJ_TLS_SIG_MAX).
 * Signs anything: the caller (keeper_sign.c) decides what may be signed.
 */
KJ_MUST_CHECK int kj_tls_key_sign(const struct kj_tls_key *k,
				  const uint8_t *msg, size_t len,
				  uint8_t sig[KJ_TLS_SIG_MAX], size_t *siglen);

#endif
