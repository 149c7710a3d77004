// SPDX-License-Identifier: Apache-2.0
/*
 * Records in the journal: the JCS bytes and row of one record, and the
 * device record that closes its reservation (EVIDENCE.md §2).  Job start
 * and end, device results and crash recovery all append through here.
 */
#include <errno.h>
#include <sqlite3.h>
#include <string.h>

#include "base/log.h"
#include "journal.h"
#include "journal_int.h"

/* JCS of r (seq and job_seq set) into j->jcs; stamps the time if unset. */
int kj_jnl_serialize(struct kj_journal *j, struct kj_record *r)
{
	if (!r->time_ms)
		r->time_ms = kj_record_now_ms();
	return kj_record_serialize(r, j->jcs, sizeof(j->jcs));
}

/* Insert r, whose n JCS bytes kj_jnl_serialize left in j->jcs. */
int kj_jnl_insert_record(struct kj_journal *j, const struct kj_record *r,
			 int n)
{
	bool dev = r->kind == KJ_REC_DEVICE;
	sqlite3_stmt *st;

	KJ_TRY(kj_jnl_begin_write(j));
	st = kj_jnl_stmt(j, S_INS_RECORD);
	bind_u64(st, 1, r->seq);
	bind_text(st, 2, r->job);
	bind_u64(st, 3, r->job_seq);
	bind_text(st, 4, kj_record_kind_name(r->kind));
	bind_text(st, 5, kj_result_name(r->result));
	if (dev)
		sqlite3_bind_blob(st, 6, r->uid, (int)r->uid_len,
				  SQLITE_STATIC);
	if (dev)
		bind_text(st, 7, r->serial);
	if (dev && r->has_cred)
		bind_u64(st, 8, r->cred_index);
	if (dev && r->has_attempt)
		bind_u64(st, 9, r->attempt);
	bind_u64(st, 10, r->time_ms);
	sqlite3_bind_blob(st, 11, j->jcs, n, SQLITE_STATIC);
	KJ_TRY(kj_jnl_step_write(j, st, "insert record"));
	j->st.records++;
	j->next_seq++;
	return 0;
}

/* EVIDENCE.md §2: each attempt counted once, a withdrawn one as failed. */
static void count_device(struct job *jb, const struct kj_record *r)
{
	if (r->result == KJ_RES_OK)
		jb->ok_count++;
	else
		jb->other_count++;
	if (r->result == KJ_RES_WITHDRAWN)
		jb->ok_count--;
	if (r->has_attempt && kj_result_after_offer(r->result))
		jb->failed_after_offer++;
}

void kj_jnl_fill_job_fields(const struct job *jb, struct kj_record *r)
{
	r->job = jb->d.job;
	r->customer = jb->d.customer;
	r->product = jb->d.product;
	r->batch = jb->d.batch;
	r->operator_id = jb->d.operator_id;
	r->fw_version = jb->d.fw_version;
	memcpy(r->fw_sha256, jb->d.fw_sha256, 32);
}

int kj_jnl_need_job(struct kj_journal *j)
{
	if (!j->job.active) {
		kj_err("%s: no job begun on this journal handle", j->path);
		return -EINVAL;
	}
	if (j->job.ended) {
		kj_err("%s: job `%s' has ended; it takes no more records",
		       j->path, j->job.d.job);
		return -EINVAL;
	}
	return 0;
}

int kj_jnl_check_attempt(struct kj_journal *j, const struct kj_record *r)
{
	if (!r->has_cred || !r->serial) {
		kj_err("%s: record of attempt %llu lacks its reservation's "
		       "serial or credential", j->path,
		       (unsigned long long)r->attempt);
		return -EINVAL;
	}
	return 0;
}

int kj_journal_append_record(struct kj_journal *j, struct kj_record *r,
			     const uint8_t **jcs, size_t *len)
{
	int n;

	KJ_TRY(kj_jnl_check_writable(j));
	KJ_TRY(kj_jnl_need_job(j));
	if (r->kind != KJ_REC_DEVICE) {
		kj_err("%s: append_record takes device records; job_start and "
		       "job_end come from job_begin and job_end", j->path);
		return -EINVAL;
	}
	kj_jnl_fill_job_fields(&j->job, r);
	r->seq = j->next_seq;
	r->job_seq = j->job.next_job_seq;
	/* Serialise first: a bad field must not half-write anything. */
	n = kj_jnl_serialize(j, r);
	if (n < 0)
		return n;
	/* The record closes its reservation (the next bulk flush marks it
	 * `done'); a withdrawn one repeats an attempt its ok record closed
	 * (journal_withdraw.c). */
	if (r->has_attempt && r->result != KJ_RES_WITHDRAWN) {
		KJ_TRY(kj_jnl_check_attempt(j, r));
		KJ_TRY(kj_jnl_open_take(j, r));
	}
	if (r->result == KJ_RES_OK)
		KJ_TRY(kj_jnl_note_ok(j, r));
	KJ_TRY(kj_jnl_insert_record(j, r, n));
	if (r->has_attempt && r->result != KJ_RES_WITHDRAWN)
		j->job.open_reservations--;
	j->job.next_job_seq++;
	count_device(&j->job, r);
	KJ_TRY(kj_jnl_bulk_maybe(j));
	if (jcs)
		*jcs = (const uint8_t *)j->jcs;
	if (len)
		*len = (size_t)n;
	return 0;
}
