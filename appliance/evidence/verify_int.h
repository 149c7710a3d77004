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
/* kj_vfail, and record index i in the check's "failing_records". */
void kj_vfail_rec(struct kj_verify_report *rep, enum kj_vcheck c, size_t i,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same for checkpoint i ("failing_checkpoints"). */
void kj_vfail_ckpt(struct kj_verify_report *rep, enum kj_vcheck c, size_t i,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The check's details object (created on first use; NULL: no memory). */
json_t *kj_vdetail(struct kj_verify_report *rep, enum kj_vcheck c);
/* Append v (reference stolen) to the array key of the check's details,
 * at most KJ_VDETAIL_MAX entries (then "<key>_more" counts the rest). */
void kj_vdetail_push(struct kj_verify_report *rep, enum kj_vcheck c,
		     const char *key, json_t *v);
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
