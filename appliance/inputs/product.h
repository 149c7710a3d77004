/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The product matrix (version lock-out), policy/products/<product>.json
 * (SPEC.md §3.4), and the job-level check that a work order may run against
 * it.  Parsed as strictly as the work order (workorder.h).
 */
#ifndef KINJECT_PRODUCT_H
#define KINJECT_PRODUCT_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "semver.h"
#include "workorder.h"

#define KJ_PRODUCT_FILE_MAX (64 * 1024)
#define KJ_PRODUCT_MAX_HW 64
#define KJ_RULE_MAX 255
#define KJ_PRODUCT_MAX_DEVICE_CA 16

typedef struct x509_st X509;

struct kj_product_hw {
	char name[KJ_NAME_MAX + 1];	/* hardware revision, e.g. "B" */
	char rule[KJ_RULE_MAX + 1];	/* as written, for messages */
	struct kj_semver_range range;
};

struct kj_product {
	char product[KJ_NAME_MAX + 1];
	char customer[KJ_NAME_MAX + 1];
	uint64_t version;		/* only grows (SPEC.md §3.4) */
	struct kj_semver min_firmware;
	char min_firmware_str[KJ_SEMVER_STR_MAX];
	unsigned n_hw;			/* 1..KJ_PRODUCT_MAX_HW */
	struct kj_product_hw hw[KJ_PRODUCT_MAX_HW];
	/* "device_ca" (device authenticity, PROTOCOL.md): 0 = none. */
	unsigned n_device_ca;
	X509 *device_ca[KJ_PRODUCT_MAX_DEVICE_CA];

	uint8_t *raw;			/* malloc'd copy of the file bytes */
	size_t raw_len;
	uint8_t sha256[32];
};

/* Same contract as kj_work_order_parse(). */
KJ_MUST_CHECK int kj_product_parse(const uint8_t *buf, size_t len,
				   const char *name, struct kj_product *pm);
KJ_MUST_CHECK int kj_product_load(const char *path, struct kj_product *pm);
void kj_product_free(struct kj_product *pm);

/*
 * Anti-rollback of the matrix itself: the newest version this appliance
 * accepted for the product is kept in STATE/products/<product>.version.
 * check: 0 when pm->version is at least that (or none is kept), -EPERM
 * naming both versions otherwise; reads only.  record: keep pm->version
 * if it is newer (after every check passed: it is a write).
 */
KJ_MUST_CHECK int kj_product_version_check(const char *state_dir,
					   const struct kj_product *pm);
KJ_MUST_CHECK int kj_product_version_record(const char *state_dir,
					    const struct kj_product *pm);

/* The matrix entry for a hardware revision, or NULL. */
const struct kj_product_hw *kj_product_find_hw(const struct kj_product *pm,
					       const char *hwrev);

/*
 * May this job start?  Checks, in order, logging the first failure:
 * product and customer equal between work order and matrix; firmware
 * version >= min_firmware (anti-rollback); every hardware revision of the
 * work order exists in the matrix and its rule admits the firmware version.
 * Returns 0, or -EPERM (refused by policy).  Run it before decrypting.
 */
KJ_MUST_CHECK int kj_order_check(const struct kj_work_order *wo,
				 const struct kj_product *pm);

#endif
