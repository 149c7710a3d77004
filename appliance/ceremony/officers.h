/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The officer set (SPEC.md §5): N officer certificates and the threshold M
 * that every privileged act needs.  Kept in the state directory:
 *
 *   DIR/ceremony/officers.pem   the certificates, in order (measured into
 *                               PCR 14 at every job start, measure.h)
 *   DIR/ceremony/officers.json  {"kinject_officers":1,"threshold":M,
 *                                "officers":[{"sha256":..,"subject":..}]}
 *
 * An officer is named by the SHA-256 of its certificate's DER (its
 * fingerprint) and its subject.  A quorum is M signatures, CMS SignedData
 * detached over the exact request bytes, from M distinct officers.
 */
#ifndef KINJECT_OFFICERS_H
#define KINJECT_OFFICERS_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"

#define KJ_OFFICERS_MAX 32
#define KJ_OFFICERS_PEM "ceremony/officers.pem"
#define KJ_OFFICERS_JSON "ceremony/officers.json"

typedef struct x509_st X509;

struct kj_officers {
	unsigned n, threshold;
	X509 *cert[KJ_OFFICERS_MAX];
	char fp[KJ_OFFICERS_MAX][65];	  /* SHA-256 of the DER, hex */
	char subject[KJ_OFFICERS_MAX][256];
};

/* Certificates from files (--officer), checked: 2 <= M <= N, distinct. */
KJ_MUST_CHECK int kj_officers_from_files(const char *const *paths, unsigned n,
					 unsigned threshold,
					 struct kj_officers *out);
/* The same from PEM text (a request's officer list); what names it. */
KJ_MUST_CHECK int kj_officers_from_pem(const char *pem, unsigned threshold,
				       const char *what,
				       struct kj_officers *out);
/* DIR/ceremony/officers.{pem,json}; -ENOENT (logged) if not initialised. */
KJ_MUST_CHECK int kj_officers_load(const char *state,
				   struct kj_officers *out);
KJ_MUST_CHECK int kj_officers_save(const char *state,
				   const struct kj_officers *set);
/* The certificates as one PEM text, malloc'd, NUL-terminated. */
KJ_MUST_CHECK int kj_officers_pem(const struct kj_officers *set, char **pem);
void kj_officers_free(struct kj_officers *set);

/* SHA-256 fingerprint of a certificate's DER, hex. */
KJ_MUST_CHECK int kj_cert_fingerprint(X509 *x, char hex[65]);

/*
 * Check that sigs[0..nsig) (DER files, paths) are a quorum over data
 * (what names it in messages): each one a valid detached CMS signature
 * over exactly these bytes by an officer of set, no officer twice, at
 * least set->threshold of them.  who[i] receives the officer index of
 * sigs[i].  Any bad signature refuses the whole (-EBADMSG / -EPERM, logged
 * naming the file and why).
 */
KJ_MUST_CHECK int kj_officers_quorum(const struct kj_officers *set,
				     const uint8_t *data, size_t len,
				     const char *what,
				     const char *const *sigs, unsigned nsig,
				     unsigned *who);

#endif
