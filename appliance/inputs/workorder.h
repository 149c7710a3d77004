/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The customer's work order, WO.json (SPEC.md §3.3).  Parsed strictly: an
 * unknown, missing or ill-typed field is an error naming the file and the
 * field path.  Limits and charsets: docs/INPUT-FORMATS.md.  The signature
 * (WO.json.sig) is checked by the caller over the same bytes before or after
 * parsing; the parsed struct keeps a copy of those bytes and their SHA-256
 * (the job_start record's work_order_sha256, EVIDENCE.md §2).
 */
#ifndef KINJECT_WORKORDER_H
#define KINJECT_WORKORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "semver.h"

#define KJ_WO_FILE_MAX (64 * 1024)	/* bytes of WO.json */
#define KJ_NAME_MAX 64			/* customer, product, hwrev */
#define KJ_LABEL_MAX 255		/* id, batch: str8-safe */
#define KJ_PREFIX_MAX 32		/* serial prefix */
#define KJ_WO_MAX_HWREV 64
#define KJ_WO_QUANTITY_MAX 10000000ULL
#define KJ_WO_MAX_FAILED_MAX 10000000ULL
#define KJ_WO_SERIAL_START_MAX 999999999999999ULL /* 15 digits */

/* "credential_mode" (PROTOCOL.md, cred_blob modes; default plain). */
enum kj_cred_mode {
	KJ_CRED_PLAIN = 0, /* the batch's blob as it is */
	KJ_CRED_INJECT,	   /* the blob encrypted to HELLO device_pubkey */
	KJ_CRED_ISSUE,	   /* a certificate issued for device_pubkey */
};

/* "plain", "inject", "issue". */
const char *kj_cred_mode_name(enum kj_cred_mode m);

struct kj_work_order {
	char id[KJ_LABEL_MAX + 1];
	char customer[KJ_NAME_MAX + 1];
	char product[KJ_NAME_MAX + 1];
	char batch[KJ_LABEL_MAX + 1];
	uint64_t quantity;		/* 1..KJ_WO_QUANTITY_MAX */
	uint64_t max_failed;		/* 0..KJ_WO_MAX_FAILED_MAX */
	unsigned n_hwrev;		/* 1..KJ_WO_MAX_HWREV, no duplicates */
	char hwrev[KJ_WO_MAX_HWREV][KJ_NAME_MAX + 1];
	struct kj_semver fw_version;
	char fw_version_str[KJ_SEMVER_STR_MAX]; /* as written (canonical) */
	uint8_t fw_sha256[32];
	char serial_prefix[KJ_PREFIX_MAX + 1];
	uint64_t serial_start;		/* 0..KJ_WO_SERIAL_START_MAX */
	enum kj_cred_mode cred_mode;	/* "credential_mode" */

	uint8_t *raw;			/* malloc'd copy of the file bytes */
	size_t raw_len;
	uint8_t sha256[32];		/* SHA-256(raw): work_order_sha256 */
};

/*
 * Parse len bytes of WO.json.  `name` is used in every message (the path as
 * the operator gave it).  Returns 0, or -EINVAL (logged) / -ENOMEM.  On
 * success free with kj_work_order_free(); on failure nothing to free.
 */
KJ_MUST_CHECK int kj_work_order_parse(const uint8_t *buf, size_t len,
				      const char *name,
				      struct kj_work_order *wo);

/* Read path (at most KJ_WO_FILE_MAX bytes) and parse it. */
KJ_MUST_CHECK int kj_work_order_load(const char *path,
				     struct kj_work_order *wo);

void kj_work_order_free(struct kj_work_order *wo);

/*
 * Per device (PROTOCOL.md LOCKED_OUT): is the HELLO's hwrev (str8, not
 * NUL-terminated) one of the work order's hardware_revisions?  Exact,
 * case-sensitive byte match.  kj_order_check() (product.h) has already made
 * sure every listed revision may receive the job's firmware, so a listed
 * revision is allowed.  Does not log (hot path; the caller records).
 */
bool kj_order_hwrev_allowed(const struct kj_work_order *wo, const char *hwrev,
			    size_t len);

#endif
