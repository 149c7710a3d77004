/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Firmware versions and the version rules of the product matrix
 * (SPEC.md §3.4).  Accepted grammar (docs/INPUT-FORMATS.md):
 *
 *   version    := num "." num "." num          num: 0 | [1-9][0-9]*, < 2^32
 *   range      := comparator (" "+ comparator)*     at most KJ_RANGE_MAX
 *   comparator := (">=" | ">" | "<=" | "<" | "=")? version
 *
 * Pre-release and build suffixes ("-rc1", "+b7") are rejected: a line
 * programs release builds, and a signed work order naming a pre-release is
 * a mistake worth stopping on.  Comparison is numeric per component.
 */
#ifndef KINJECT_SEMVER_H
#define KINJECT_SEMVER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/kinject.h"

/* "4294967295.4294967295.4294967295" + NUL */
#define KJ_SEMVER_STR_MAX 33
#define KJ_RANGE_MAX 8

struct kj_semver {
	uint32_t major, minor, patch;
};

enum kj_semver_op { KJ_OP_EQ, KJ_OP_GE, KJ_OP_GT, KJ_OP_LE, KJ_OP_LT };

struct kj_semver_cmp {
	enum kj_semver_op op;
	struct kj_semver v;
};

/* All comparators must hold (an intersection). */
struct kj_semver_range {
	unsigned n;
	struct kj_semver_cmp c[KJ_RANGE_MAX];
};

/*
 * Parse exactly one version, the whole string.  On error logs
 * "<what>: expected MAJOR.MINOR.PATCH ..., got `<s>'" and returns -EINVAL;
 * `what` names the file and field, e.g. `WO.json: field "firmware.version"'.
 */
KJ_MUST_CHECK int kj_semver_parse(const char *s, const char *what,
				  struct kj_semver *out);

/* Parse a range expression; errors as above, naming `what'. */
KJ_MUST_CHECK int kj_semver_range_parse(const char *s, const char *what,
					struct kj_semver_range *out);

/* <0, 0, >0 like strcmp; numeric per component (10.0.0 > 9.0.0). */
int kj_semver_cmp(const struct kj_semver *a, const struct kj_semver *b);

/* True when v satisfies every comparator of r. */
bool kj_semver_range_match(const struct kj_semver_range *r,
			   const struct kj_semver *v);

/* Canonical text "M.m.p" into buf (KJ_SEMVER_STR_MAX bytes). */
void kj_semver_format(const struct kj_semver *v, char *buf);

#endif
