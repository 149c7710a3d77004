/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside `kinject audit' (SPEC.md §6): the parsed arguments every action
 * shares and the actions' entry points, one file per action family:
 * cmd_audit.c (arguments, dispatch, verify), cmd_audit_export.c (export,
 * recall, jobs: rows), cmd_audit_report.c (the HTML page),
 * cmd_audit_archive.c (the retention package).  Not for other commands.
 */
#ifndef KINJECT_AUDIT_INT_H
#define KINJECT_AUDIT_INT_H

#include <stdbool.h>
#include <stdio.h>

#include "journal/journal.h"
#include "journal/journal_query.h"

#define KJ_AK_NAME_HEX 69 /* 34-byte TPM name in hex + NUL */

struct audit_args {
	const char *action;
	const char *state, *out_path, *ak_pub;
	const char *work_order, *work_order_sig; /* archive */
	bool json, all, counts;
	bool kinds_set;
	int n_criteria;                 /* recall criteria given */
	uint8_t uid[KJ_RECORD_UID_MAX];
	struct kj_journal_filter f;
};

/* The appliance's AK name (hex) from DIR/ak.pub, "" if there is none. */
int kj_audit_ak_name(const char *state, char out[KJ_AK_NAME_HEX]);
/* Open --out (or stdout); close it, reporting a failed write once. */
FILE *kj_audit_open_out(const char *path);
KJ_MUST_CHECK int kj_audit_close_out(FILE *f, const char *path);
/* The job of --job, checked to exist: 1, 0 (logged: unknown), < 0. */
KJ_MUST_CHECK int kj_audit_job_exists(struct kj_journal *j, const char *job);

/* cmd_audit_export.c */
int kj_audit_export(struct kj_journal *j, const struct audit_args *a);
int kj_audit_jobs(struct kj_journal *j, const struct audit_args *a);
/* The CSV of a filter (export's rows) to f; count of rows or < 0. */
KJ_MUST_CHECK int kj_audit_write_csv(struct kj_journal *j, const char *state,
				     const struct kj_journal_filter *flt,
				     FILE *f);

/* cmd_audit_report.c: the page of one job to f. */
KJ_MUST_CHECK int kj_audit_write_report(struct kj_journal *j,
					const char *state, const char *job,
					FILE *f);
int kj_audit_report(struct kj_journal *j, const struct audit_args *a);

/* cmd_audit_archive.c */
int kj_audit_archive(struct kj_journal *j, const struct audit_args *a);

#endif
