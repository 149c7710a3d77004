// SPDX-License-Identifier: Apache-2.0
/*
 * Jobs in the journal: first start (job_start record), resume (counts,
 * serials, job_seq and used credentials continue, EVIDENCE.md §1), end
 * (job_end record, §2).
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "journal.h"
#include "journal_int.h"

static int copy_desc(struct job *jb, const struct kj_job_desc *d)
{
	const char *src[7] = { d->job, d->customer, d->product, d->batch,
			       d->operator_id, d->fw_version,
			       d->serial_prefix };
	const char **dst[7] = { &jb->d.job, &jb->d.customer, &jb->d.product,
				&jb->d.batch, &jb->d.operator_id,
				&jb->d.fw_version, &jb->d.serial_prefix };
	static const char *const names[7] = { "job", "customer", "product",
					      "batch", "operator",
					      "fw_version", "serial_prefix" };

	jb->d = *d;
	for (int i = 0; i < 7; i++) {
		if (!src[i]) {
			kj_err("journal: job description lacks %s", names[i]);
			return -EINVAL;
		}
		jb->strs[i] = strdup(src[i]);
		if (!jb->strs[i]) {
			kj_err("journal: out of memory");
			return -ENOMEM;
		}
		*dst[i] = jb->strs[i];
	}
	if (d->quantity < 1 || d->quantity > KJ_RECORD_INT_MAX ||
	    d->serial_start > KJ_RECORD_INT_MAX || (d->n_creds && !d->creds)) {
		kj_err("journal: job `%s': bad quantity, serial start or "
		       "credential list", d->job);
		return -EINVAL;
	}
	return 0;
}

static int insert_job(struct kj_journal *j, const struct kj_job_desc *d)
{
	static const char sql[] =
		"INSERT INTO jobs(job, work_order_sha256, customer, product,"
		" batch, operator, quantity, fw_version, fw_sha256,"
		" serial_prefix, serial_start, created_ms, creds_sha256, state)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
		" ?13, 'running')";
	sqlite3_stmt *st;
	int rc;

	KJ_TRY(kj_jnl_begin_write(j));
	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_write_failed(j, rc, "insert job");
	bind_text(st, 1, d->job);
	sqlite3_bind_blob(st, 2, d->work_order_sha256, 32, SQLITE_STATIC);
	bind_text(st, 3, d->customer);
	bind_text(st, 4, d->product);
	bind_text(st, 5, d->batch);
	bind_text(st, 6, d->operator_id);
	bind_u64(st, 7, d->quantity);
	bind_text(st, 8, d->fw_version);
	sqlite3_bind_blob(st, 9, d->fw_sha256, 32, SQLITE_STATIC);
	bind_text(st, 10, d->serial_prefix);
	bind_u64(st, 11, d->serial_start);
	bind_u64(st, 12, kj_record_now_ms());
	sqlite3_bind_blob(st, 13, d->creds_sha256, 32, SQLITE_STATIC);
	rc = kj_jnl_step_write(j, st, "insert job");
	sqlite3_finalize(st);
	return rc;
}

/* Append a job_start/job_end record of the current job. */
static int append_job_record(struct kj_journal *j, struct kj_record *r)
{
	int n;

	kj_jnl_fill_job_fields(&j->job, r);
	r->seq = j->next_seq;
	r->job_seq = j->job.next_job_seq;
	n = kj_jnl_serialize(j, r);
	if (n < 0)
		return n;
	KJ_TRY(kj_jnl_insert_record(j, r, n));
	j->job.next_job_seq++;
	return n;
}

static int start_new(struct kj_journal *j)
{
	struct kj_record r = { .kind = KJ_REC_JOB_START };
	struct job *jb = &j->job;

	KJ_TRY(insert_job(j, &jb->d));
	memcpy(r.work_order_sha256, jb->d.work_order_sha256, 32);
	r.quantity = jb->d.quantity;
	jb->next_serial = jb->d.serial_start;
	jb->next_job_seq = 0;
	return append_job_record(j, &r) < 0 ? -EIO : 0;
}

/* The stored work order and batch hashes of job; 0 if the job is unknown. */
static int stored_hash(struct kj_journal *j, const char *job,
		       uint8_t out[32], uint8_t creds[32])
{
	sqlite3_stmt *st;
	int rc, found = 0;

	rc = sqlite3_prepare_v2(j->db, "SELECT work_order_sha256, creds_sha256"
				" FROM jobs WHERE job = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "look up job");
	bind_text(st, 1, job);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32 &&
	    sqlite3_column_bytes(st, 1) == 32) {
		memcpy(out, sqlite3_column_blob(st, 0), 32);
		memcpy(creds, sqlite3_column_blob(st, 1), 32);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		found = rc == SQLITE_ROW ? -EBADMSG
					 : kj_jnl_sql_err(j, rc, "look up job");
	}
	sqlite3_finalize(st);
	return found;
}

static int load_counts(struct kj_journal *j)
{
	static const char sql[] =
		"SELECT result, attempt IS NOT NULL, kind, count(*)"
		" FROM records WHERE job = ?1 AND kind != 'job_start'"
		" GROUP BY 1, 2, 3";
	struct job *jb = &j->job;
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "count records");
	bind_text(st, 1, jb->d.job);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *res = (const char *)sqlite3_column_text(st, 0);
		const char *kind = (const char *)sqlite3_column_text(st, 2);
		uint64_t n = (uint64_t)sqlite3_column_int64(st, 3);
		enum kj_result r;

		if (!res || !kind || kj_result_from_name(res, &r)) {
			rc = SQLITE_CORRUPT;
			break;
		}
		if (!strcmp(kind, "job_end")) {
			jb->ended = true;
			jb->end_result = r;
			continue;
		}
		/* §2: a withdrawn attempt is failed, not ok (mod 2^64: the
		 * ok rows may come after the withdrawn ones) */
		if (r == KJ_RES_OK)
			jb->ok_count += n;
		else
			jb->other_count += n;
		if (r == KJ_RES_WITHDRAWN)
			jb->ok_count -= n;
		if (sqlite3_column_int(st, 1) && kj_result_after_offer(r))
			jb->failed_after_offer += n;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return kj_jnl_sql_err(j, rc, "count records");
	return 0;
}

static int resume(struct kj_journal *j)
{
	struct job *jb = &j->job;
	uint64_t v;
	int rc;

	KJ_TRY(load_counts(j));
	v = 0;
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(job_seq) + 1 FROM records "
				"WHERE job = ?", jb->d.job, &v));
	jb->next_job_seq = v;
	jb->next_serial = jb->d.serial_start;
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(serial_no) + 1 FROM "
				"reservations WHERE job = ?", jb->d.job,
				&jb->next_serial));
	KJ_TRY(kj_jnl_load_used(j));
	jb->creds_used = jb->n_used;
	if (jb->ended)
		return 0;
	/* This run's operator signs the records it writes (and, after a
	 * crash, the interrupted ones of its reservations). */
	KJ_TRY(kj_jnl_begin_write(j));
	{
		sqlite3_stmt *st;

		rc = sqlite3_prepare_v2(j->db, "UPDATE jobs SET operator = ?1 "
					"WHERE job = ?2", -1, &st, NULL);
		if (rc != SQLITE_OK)
			return kj_jnl_write_failed(j, rc, "update job");
		bind_text(st, 1, jb->d.operator_id);
		bind_text(st, 2, jb->d.job);
		rc = kj_jnl_step_write(j, st, "update job");
		sqlite3_finalize(st);
	}
	return rc;
}

int kj_journal_job_begin(struct kj_journal *j, const struct kj_job_desc *d,
			 struct kj_job_state *st)
{
	uint8_t have[32], have_creds[32];
	char a[65], b[65];
	bool resumed = false;
	int rc;

	KJ_TRY(kj_jnl_check_writable(j));
	if (j->job.active) {
		kj_err("%s: job `%s' already begun on this handle", j->path,
		       j->job.d.job);
		return -EINVAL;
	}
	/* Before this job reserves anything (journal_bulk.c). */
	KJ_TRY(kj_jnl_begin_write(j));
	KJ_TRY(kj_jnl_bulk_catch_up(j));
	KJ_TRY_GOTO(rc, copy_desc(&j->job, d), fail);
	KJ_TRY_GOTO(rc, stored_hash(j, d->job, have, have_creds), fail);
	if (rc == 0) {
		KJ_TRY_GOTO(rc, start_new(j), fail);
	} else if (memcmp(have, d->work_order_sha256, 32)) {
		kj_hex_encode(have, 32, a);
		kj_hex_encode(d->work_order_sha256, 32, b);
		kj_err("job `%s': the journal holds it with work order sha256 "
		       "%s, this work order is %s: a job id cannot be reused "
		       "for another work order", d->job, a, b);
		rc = -EEXIST;
		goto fail;
	} else if (memcmp(have_creds, d->creds_sha256, 32)) {
		kj_hex_encode(have_creds, 32, a);
		kj_hex_encode(d->creds_sha256, 32, b);
		kj_err("job `%s': it was started with the credential batch of "
		       "sha256 %s, --credentials has sha256 %s: a job resumes "
		       "only with its own batch", d->job, a, b);
		rc = -EEXIST;
		goto fail;
	} else {
		KJ_TRY_GOTO(rc, resume(j), fail);
		resumed = true;
		j->job.end_result = j->job.ended ? j->job.end_result
						 : KJ_RES_NONE;
	}
	j->job.active = true;
	if (st) {
		kj_journal_job_state(j, st);
		st->resumed = resumed;
	}
	return 0;
fail:
	for (size_t i = 0; i < KJ_ARRAY_SIZE(j->job.strs); i++)
		free(j->job.strs[i]);
	free(j->job.used);
	memset(&j->job, 0, sizeof(j->job));
	return rc;
}

void kj_journal_job_state(const struct kj_journal *j, struct kj_job_state *st)
{
	const struct job *jb = &j->job;

	memset(st, 0, sizeof(*st));
	st->resumed = jb->active; /* overwritten by job_begin */
	st->ended = jb->ended;
	st->end_result = jb->end_result;
	st->ok_count = jb->ok_count;
	st->other_count = jb->other_count;
	st->failed_after_offer = jb->failed_after_offer;
	st->next_serial = jb->next_serial;
	st->next_job_seq = jb->next_job_seq;
	st->creds_used = jb->creds_used;
	st->open_reservations = jb->open_reservations;
	st->creds_left = jb->d.n_creds > jb->creds_used
				 ? jb->d.n_creds - jb->creds_used
				 : 0;
}

int kj_journal_job_end(struct kj_journal *j, struct kj_record *out_rec,
		       const uint8_t **jcs, size_t *len)
{
	struct kj_record r = { .kind = KJ_REC_JOB_END };
	struct job *jb = &j->job;
	sqlite3_stmt *st;
	int n, rc;

	KJ_TRY(kj_jnl_check_writable(j));
	KJ_TRY(kj_jnl_need_job(j));
	/* The job's certificates and uids, sorted, in one pass
	 * (journal_bulk.c). */
	KJ_TRY(kj_jnl_begin_write(j));
	KJ_TRY(kj_jnl_bulk_catch_up(j));
	/* EVIDENCE.md §2: completed when ok_count equals the quantity. */
	r.result = jb->ok_count >= jb->d.quantity ? KJ_RES_COMPLETED
						  : KJ_RES_FAILED;
	r.ok_count = jb->ok_count;
	r.failed_count = jb->other_count;
	n = append_job_record(j, &r);
	if (n < 0)
		return n;
	rc = sqlite3_prepare_v2(j->db, "UPDATE jobs SET state = ?1 "
				"WHERE job = ?2", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_write_failed(j, rc, "update job");
	bind_text(st, 1, kj_result_name(r.result));
	bind_text(st, 2, jb->d.job);
	rc = kj_jnl_step_write(j, st, "update job");
	sqlite3_finalize(st);
	if (rc)
		return rc;
	jb->ended = true;
	jb->end_result = r.result;
	if (out_rec)
		*out_rec = r;
	if (jcs)
		*jcs = (const uint8_t *)j->jcs;
	if (len)
		*len = (size_t)n;
	return 0;
}
