/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the verifier: shared by verify.c, verify_log.c and
 * verify_report.c only.
 */
#ifndef KINJECT_VERIFY_INT_H
#define KINJECT_VERIFY_INT_H

#include <openssl/pem.h>

#include "verify.h"

/* verify_report.c */

/* Mark check c failed with the item and reason (the first one is kept). */
void kj_vfail(struct kj_verify_report *rep, enum kj_vcheck c,
	      const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The summary line of a check that did not fail. */
void kj_vpass(struct kj_verify_report *rep, enum kj_vcheck c,
	      const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* verify_log.c: checks 4-8. */
KJ_MUST_CHECK int kj_verify_log(const struct kj_evidence *ev,
				const struct kj_verify_opts *o,
				struct kj_verify_report *rep);

/* verify_ceremony.c: check 9 (the outcome goes into rep only). */
void kj_verify_ceremony(const struct kj_evidence *ev,
			const struct kj_verify_opts *o,
			struct kj_verify_report *rep);

#endif
