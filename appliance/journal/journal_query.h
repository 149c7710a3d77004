/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Read-only questions quality and compliance ask the journal (SPEC.md §6):
 * the jobs with their counts, and the records matching a filter (export,
 * recall).  Answered in SQL on the indexed columns of `records' and
 * `jobs', so a recall by serial or uid on a journal of a million records
 * touches a handful of rows; only the matching records' JCS bytes reach
 * the caller, which parses them (the same strict parser the verifier
 * uses).  docs/JOURNAL.md lists the indexes.
 */
#ifndef KINJECT_JOURNAL_QUERY_H
#define KINJECT_JOURNAL_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "journal.h"

/* One job as the jobs table and its records tell it. */
struct kj_journal_job_info {
	const char *job, *customer, *product, *batch, *operator_id;
	const char *fw_version, *serial_prefix;
	const char *state;          /* running|completed|failed */
	uint8_t work_order_sha256[32];
	uint8_t fw_sha256[32];
	uint64_t quantity;
	uint64_t created_ms;
	uint64_t ok, failed;        /* device records: ok, every other */
	uint64_t records;           /* all its records, job rows included */
	uint64_t first_seq, last_seq;
	uint64_t first_ms, last_ms; /* time span of its records */
};

typedef int (*kj_journal_job_cb)(void *ctx,
				 const struct kj_journal_job_info *ji);

/*
 * Jobs in the order they were created (job NULL: all; else that one).
 * Pointers valid during cb.  Returns the number of jobs seen (0: none, not
 * logged: the caller says what an unknown job means), or < 0.
 */
KJ_MUST_CHECK int kj_journal_foreach_job(struct kj_journal *j,
					 const char *job,
					 kj_journal_job_cb cb, void *ctx);

/* Kinds, as a bit mask of 1u << enum kj_record_kind. */
#define KJ_KIND_BIT(k) (1u << (k))
#define KJ_KINDS_ALL (KJ_KIND_BIT(KJ_REC_JOB_START) | \
		      KJ_KIND_BIT(KJ_REC_DEVICE) | KJ_KIND_BIT(KJ_REC_JOB_END))

/*
 * What to select.  Every criterion that is set must hold (AND).  Text
 * criteria batch and serial compare ASCII case-insensitively (serials are
 * prefix + decimal; `as10499' finds `AS10499'); fw_version and job exactly.
 */
struct kj_journal_filter {
	const char *job;
	unsigned kinds;             /* 0: all kinds */
	bool ok_only;               /* device records with result ok only */
	uint64_t since_ms;          /* time_ms >= since (0: no bound) */
	uint64_t until_ms;          /* time_ms < until (0: no bound) */
	/* the job's firmware and batch (job rows match too) */
	bool has_fw_sha256;
	uint8_t fw_sha256[32];
	const char *fw_version;
	const char *batch;
	/* device fields */
	const char *serial;
	const uint8_t *uid;
	size_t uid_len;
};

/* Matching records in seq order (cb as kj_journal_foreach_record). */
KJ_MUST_CHECK int kj_journal_query(struct kj_journal *j,
				   const struct kj_journal_filter *f,
				   kj_journal_record_cb cb, void *ctx);

/* Matching records counted per job, jobs in first-seq order.  Returns the
 * number of jobs with a match, or < 0. */
typedef int (*kj_journal_count_cb)(void *ctx, const char *job,
				   uint64_t n);
KJ_MUST_CHECK int kj_journal_query_counts(struct kj_journal *j,
					  const struct kj_journal_filter *f,
					  kj_journal_count_cb cb, void *ctx);

#endif
