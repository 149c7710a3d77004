/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Journal records (EVIDENCE.md §2) and their RFC 8785 (JCS) bytes: the
 * bytes that are the transparency log's leaves, so they are a contract.
 *
 * Serialisation: the 27 keys of §2 always present, sorted (all ASCII, so
 * UTF-16 order = byte order), no whitespace, integers in decimal (at most
 * 2^53 - 1, the I-JSON range RFC 8785 §3.2.2.3 can express exactly),
 * strings escaped per RFC 8785 §3.2.2.2 (\" \\ \b \f \n \r \t, other
 * controls as \u00xx lowercase, everything else verbatim UTF-8), `null`
 * for every field that does not apply to the kind, whatever the struct
 * holds there.  Hashes, uid and readback are lowercase hex.
 *
 * The parser accepts exactly the bytes the serialiser produces for some
 * record: it parses, checks the kind's rules, re-serialises and compares.
 */
#ifndef KINJECT_RECORD_H
#define KINJECT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"

/* Upper bound of one record's JCS bytes (strings come from str8 fields
 * and the work order, escaping at most sextuples them). */
#define KJ_RECORD_MAX 65536
/* Largest integer a record may carry (RFC 8785 / I-JSON exact range). */
#define KJ_RECORD_INT_MAX ((1ull << 53) - 1)
#define KJ_RECORD_UID_MAX 64     /* PROTOCOL.md HELLO: bytes16 uid 1..64 */
#define KJ_RECORD_VERSION 1      /* "v" */
/* The last device result (device results are KJ_RES_OK..this). */
#define KJ_RES_DEVICE_LAST KJ_RES_WITHDRAWN

enum kj_record_kind {
	KJ_REC_JOB_START = 0,
	KJ_REC_DEVICE,
	KJ_REC_JOB_END,
};

/* "result": device results, then job_end results. */
enum kj_result {
	KJ_RES_NONE = 0,  /* job_start: null */
	KJ_RES_OK,
	KJ_RES_LOCKED_OUT,
	KJ_RES_QUOTA,
	KJ_RES_DUPLICATE,
	KJ_RES_READBACK,
	KJ_RES_TIMEOUT,
	KJ_RES_INTERNAL,
	KJ_RES_STOPPED,
	KJ_RES_UNAUTHORIZED,
	KJ_RES_PROTOCOL,
	KJ_RES_DISCONNECTED,
	KJ_RES_SITE_ABORT,
	KJ_RES_INTERRUPTED,
	KJ_RES_COUNTERFEIT, /* refused before OFFER: no factory key proven */
	KJ_RES_WITHDRAWN,  /* repeats an ok attempt: COMMIT never sent */
	KJ_RES_COMPLETED, /* job_end: quantity reached */
	KJ_RES_FAILED,    /* job_end: max_failed exceeded */
	KJ_RES_COUNT_,
};

/*
 * One record.  Strings are NUL-terminated UTF-8 (checked on serialising);
 * a NULL string is JSON null (only where the field may be null).  Which
 * members are used depends on kind (EVIDENCE.md §2):
 *   all:        seq, time_ms, job, customer, product, batch, operator_id,
 *               job_seq
 *   job_start:  work_order_sha256, quantity, fw_version, fw_sha256
 *   device:     site, socket, uid, hwrev, fw_version, fw_sha256, result,
 *               attempt (has_attempt), serial (NULL = null),
 *               cred_index + cert_sha256 (has_cred), readback
 *               (has_readback), site_code (iff result == site_abort)
 *   job_end:    result (completed|failed), ok_count, failed_count
 */
struct kj_record {
	enum kj_record_kind kind;
	uint64_t seq;     /* leaf index, filled by the journal */
	uint64_t job_seq; /* filled by the journal */
	uint64_t time_ms; /* Unix epoch ms, UTC; 0: the journal stamps now */

	const char *job;
	const char *customer;
	const char *product;
	const char *batch;
	const char *operator_id; /* "operator" */

	uint8_t work_order_sha256[32];
	uint64_t quantity;

	const char *fw_version;
	uint8_t fw_sha256[32];

	const char *site;
	uint16_t socket;
	uint8_t uid[KJ_RECORD_UID_MAX];
	size_t uid_len; /* 1..64 */
	const char *hwrev;

	bool has_attempt;
	uint64_t attempt;
	const char *serial;
	bool has_cred;
	uint64_t cred_index;
	uint8_t cert_sha256[32];
	bool has_readback;
	uint8_t readback[32];

	enum kj_result result;
	uint16_t site_code;

	uint64_t ok_count;
	uint64_t failed_count;

	char *owned_; /* strings of a parsed record; kj_record_release */
};

/* "job_start", "device", "job_end"; NULL for a bad value. */
const char *kj_record_kind_name(enum kj_record_kind k);
/* "ok", "locked_out", …, "completed", "failed"; NULL for none/bad. */
const char *kj_result_name(enum kj_result r);
/* The enum of a name, or -EINVAL (silent). */
KJ_MUST_CHECK int kj_result_from_name(const char *s, enum kj_result *out);

/* True for the device results that count against max_failed (PROTOCOL.md:
 * the attempt failed after OFFER, bytes left the appliance). */
bool kj_result_after_offer(enum kj_result r);

/* Wall clock now, Unix epoch milliseconds. */
uint64_t kj_record_now_ms(void);

/* "2026-11-24T10:00:00.123Z"; out must hold KJ_RECORD_TIME_LEN + 1. */
#define KJ_RECORD_TIME_LEN 24
KJ_MUST_CHECK int kj_record_format_time(uint64_t ms, char *out);
/* The exact inverse; -EINVAL (silent) on anything else. */
KJ_MUST_CHECK int kj_record_parse_time(const char *s, size_t len,
				       uint64_t *ms);

/*
 * JCS bytes of r into buf (cap bytes; KJ_RECORD_MAX always suffices).
 * Returns the length (no NUL written), or -EINVAL (a field breaks the
 * rules above: logged, naming it) or -EMSGSIZE.
 */
KJ_MUST_CHECK int kj_record_serialize(const struct kj_record *r, char *buf,
				      size_t cap);

/*
 * Parse JCS bytes strictly into out: exactly the 27 keys in order, the
 * kind's nulls, canonical escapes and numbers, valid UTF-8, and the bytes
 * must equal the re-serialisation.  Strings point into out->owned_
 * (kj_record_release frees it).  -EBADMSG (logged, naming the field and
 * the byte offset) or -ENOMEM.  out is released on failure.
 */
KJ_MUST_CHECK int kj_record_parse(const void *jcs, size_t len,
				  struct kj_record *out);
void kj_record_release(struct kj_record *r);

#endif
