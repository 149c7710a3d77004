/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the verifier: shared by verify.c, verify_log.c and
 * verify_report.c only.
 */
#ifndef KINJECT_VERIFY_INT_H
#define KINJECT_VERIFY_INT_H

#include <stdbool.h>
#include <jansson.h>
#include <openssl/pem.h>

#include "journal/record.h"
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

/*
 * verify_sort.c: an external sort of fixed-size entries (the key first,
 * compared with memcmp) through an unlinked temporary file in $TMPDIR:
 * add them all, then done, then next gives them in key order.  Errors are
 * logged where met; -ENOMEM is not.
 */
struct kj_xsort;
struct kj_xsort *kj_xsort_new(size_t esz, size_t klen);
KJ_MUST_CHECK int kj_xsort_add(struct kj_xsort *s, const void *e);
KJ_MUST_CHECK int kj_xsort_done(struct kj_xsort *s);
/* 1: the next entry in out; 0: no more; < 0: an error. */
KJ_MUST_CHECK int kj_xsort_next(struct kj_xsort *s, void *out);
void kj_xsort_free(struct kj_xsort *s);
/* An unlinked read-write file in $TMPDIR (or /tmp), or -errno (logged). */
KJ_MUST_CHECK int kj_vtmp_fd(void);
/* pwrite all len bytes to such a file at off, or -errno, logged naming
 * $TMPDIR and the bytes needed when it is full. */
KJ_MUST_CHECK int kj_vtmp_write(int fd, const void *p, size_t len,
				uint64_t off);

/* What a sort did (the unit tests and bench show the merge's cost). */
struct kj_xsort_stats {
	uint64_t runs;          /* sorted runs written (level 0) */
	uint64_t merges;        /* merges before the final one */
	uint64_t bytes_written, bytes_read;  /* to and from $TMPDIR */
	unsigned levels;        /* levels of runs: writes of an entry */
};
void kj_xsort_stats(const struct kj_xsort *s, struct kj_xsort_stats *st);
/*
 * Test only (tests/unit/test_verify_sort.c): the sorts made after this
 * call use runs of run_bytes and merge fanin runs at once (2..64), so a
 * few thousand entries go through several levels; 0, 0: the defaults.
 */
void kj_xsort_test_tune(size_t run_bytes, unsigned fanin);

/* verify_job.c: checks 6 and 7, one record at a time. */
struct kj_vjob;
struct kj_vjob *kj_vjob_new(const struct kj_verify_opts *o);
/* Record i at leaf; r NULL when it did not parse. */
KJ_MUST_CHECK int kj_vjob_record(struct kj_vjob *v, size_t i, uint64_t leaf,
				 const struct kj_record *r);
/* After the n records: the outcomes of checks 6 and 7 into rep. */
KJ_MUST_CHECK int kj_vjob_end(struct kj_vjob *v, size_t n,
			      struct kj_verify_report *rep);
/* The two sorts' costs added up (levels: the larger). */
void kj_vjob_sort_stats(const struct kj_vjob *v, struct kj_xsort_stats *st);
void kj_vjob_free(struct kj_vjob *v);

/* verify_log.c: checks 4-8. */
KJ_MUST_CHECK int kj_verify_log(const struct kj_evidence *ev,
				const struct kj_verify_opts *o,
				struct kj_verify_report *rep);

/* verify_log.c: the hex of digest is in the golden.json list. */
bool kj_golden_has(const json_t *list, const uint8_t digest[32]);

/*
 * verify_boot.c, in check 8: golden.json's "pcrs" (PCRs 4 and 9 of the
 * image's boot chain) against every checkpoint and the AK's policy.  A
 * note for the pass line in note; 1 when the AK has no boot policy (a
 * warning), 0, or -EINVAL (a malformed "pcrs", logged).
 */
KJ_MUST_CHECK int kj_verify_golden_boot(const struct kj_evidence *ev,
					const json_t *g, const char *file,
					struct kj_verify_report *rep,
					char *note, size_t size);
/* The AK's boot policy digest for PCR 4 = kernel, PCR 9 = initrd. */
void kj_boot_policy_digest(const uint8_t kernel[32], const uint8_t initrd[32],
			   uint8_t out[32]);

/* verify_ceremony.c: check 9 (the outcome goes into rep only). */
void kj_verify_ceremony(const struct kj_evidence *ev,
			const struct kj_verify_opts *o,
			struct kj_verify_report *rep);

#endif
