/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the records: what the serialiser (record.c) shares with the
 * strict parser (record_parse.c), so that both walk one table of keys and
 * accept the same strings.  Not for other modules.
 */
#ifndef KINJECT_RECORD_INT_H
#define KINJECT_RECORD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

/*
 * The keys of EVIDENCE.md §2 in RFC 8785 §3.2.3 order (UTF-16 code units;
 * all ASCII, so plain byte order).  Serialiser and parser walk this table.
 */
enum field {
	F_ATTEMPT, F_BATCH, F_CERT_SHA256, F_CRED_INDEX, F_CUSTOMER,
	F_FAILED_COUNT, F_FW_SHA256, F_FW_VERSION, F_HWREV, F_JOB, F_JOB_SEQ,
	F_KIND, F_OK_COUNT, F_OPERATOR, F_PRODUCT, F_QUANTITY, F_READBACK,
	F_RESULT, F_SEQ, F_SERIAL, F_SITE, F_SITE_CODE, F_SOCKET, F_TIME,
	F_UID, F_V, F_WORK_ORDER_SHA256, F_COUNT_
};

extern const char *const kj_rec_field_names[F_COUNT_];
extern const char *const kj_rec_kind_names[KJ_REC_JOB_END + 1];

/* Whether result r may stand in a record of kind k (EVIDENCE.md §2). */
bool kj_rec_result_fits_kind(enum kj_record_kind k, enum kj_result r);
/* Length of the valid UTF-8 sequence at s (RFC 3629), or 0. */
size_t kj_rec_utf8_seq(const uint8_t *s, size_t n);

#endif
