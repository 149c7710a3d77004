/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Project-wide conventions (docs/HACKING.md explains them):
 *
 *  - A function that can fail returns int: 0 (or a count) on success, a
 *    negative errno on failure.  The function that *detects* a failure logs
 *    it, naming the layer (PKCS#11 CK_RV, TPM_RC, OpenSSL queue, io_uring
 *    -errno) and the file/field/flag at fault; callers only propagate.
 *  - Results are checked everywhere; KJ_MUST_CHECK makes the compiler help.
 */
#ifndef KINJECT_H
#define KINJECT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define KJ_VERSION "0.1.0"

#define KJ_MUST_CHECK __attribute__((warn_unused_result))
#define KJ_UNUSED __attribute__((unused))
#define KJ_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Process exit codes, SPEC.md §4 (kinject run). */
enum {
	KJ_EXIT_OK = 0,
	KJ_EXIT_ERROR = 1,
	KJ_EXIT_USAGE = 2,
	KJ_EXIT_STOPPED = 3,
	KJ_EXIT_MAX_FAILED = 4,
};

/* Propagate a negative result; wrapped so it is safe in any if/else. */
#define KJ_TRY(expr)                          \
	do {                                  \
		int kj_try_rc_ = (expr);      \
		if (kj_try_rc_ < 0)           \
			return kj_try_rc_;    \
	} while (0)

/* Same, but jump to a cleanup label with rc set. */
#define KJ_TRY_GOTO(rc, expr, label)          \
	do {                                  \
		(rc) = (expr);                \
		if ((rc) < 0)                 \
			goto label;           \
	} while (0)

#endif
