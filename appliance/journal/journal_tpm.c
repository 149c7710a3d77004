// SPDX-License-Identifier: Apache-2.0
/*
 * The journal's tables for attestation (EVIDENCE.md §4): the PCR event log
 * and TPM checkpoints; record iteration for the Merkle tree and evidence;
 * a small key/value table.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "journal.h"
#include "journal_int.h"

/* ---- records ------------------------------------------------------------- */

int kj_journal_foreach_record(struct kj_journal *j, uint64_t from_seq,
			      const char *job, kj_journal_record_cb cb,
			      void *ctx)
{
	/* Per job, job_seq order is seq order and uses UNIQUE(job, job_seq). */
	static const char all_sql[] =
		"SELECT seq, jcs FROM records WHERE seq >= ?1 ORDER BY seq";
	static const char job_sql[] =
		"SELECT seq, jcs FROM records WHERE job = ?2 AND seq >= ?1"
		" ORDER BY job_seq";
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(j->db, job ? job_sql : all_sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "read records");
	bind_u64(st, 1, from_seq);
	if (job)
		bind_text(st, 2, job);
	return kj_jnl_step_leaves(j, st, cb, ctx, "read records");
}

/* ---- event log ----------------------------------------------------------- */

int kj_journal_add_event(struct kj_journal *j, uint32_t epoch, uint32_t pcr,
			 const char *name, const uint8_t digest[32],
			 uint64_t *index)
{
	sqlite3_stmt *st;

	KJ_TRY(kj_jnl_check_writable(j));
	if (pcr >= KJ_JOURNAL_PCR_COUNT || !name) {
		kj_err("%s: event log entry with PCR %u or no name", j->path,
		       pcr);
		return -EINVAL;
	}
	KJ_TRY(kj_jnl_begin_write(j));
	st = kj_jnl_stmt(j, S_INS_EVENT);
	bind_u64(st, 1, j->next_event);
	bind_u64(st, 2, epoch);
	bind_u64(st, 3, pcr);
	bind_text(st, 4, name);
	sqlite3_bind_blob(st, 5, digest, 32, SQLITE_STATIC);
	bind_u64(st, 6, kj_record_now_ms());
	KJ_TRY(kj_jnl_step_write(j, st, "insert event"));
	if (index)
		*index = j->next_event;
	j->next_event++;
	return 0;
}

int kj_journal_void_event(struct kj_journal *j, uint64_t index)
{
	sqlite3_stmt *st;
	int rc;

	KJ_TRY(kj_jnl_check_writable(j));
	KJ_TRY(kj_jnl_begin_write(j));
	st = kj_jnl_stmt(j, S_VOID_EVENT);
	bind_u64(st, 1, index);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return kj_jnl_write_failed(j, rc, "void event");
	if (sqlite3_changes(j->db) != 1) {
		kj_err("%s: no event log entry %llu to void", j->path,
		       (unsigned long long)index);
		return -ENOENT;
	}
	j->pending++;
	return 0;
}

uint64_t kj_journal_event_count(const struct kj_journal *j)
{
	return j->next_event;
}

int kj_journal_foreach_event(struct kj_journal *j, kj_journal_event_cb cb,
			     void *ctx)
{
	sqlite3_stmt *st;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(j->db, "SELECT id, epoch, pcr, name, digest, "
				"void FROM event_log ORDER BY id", -1, &st,
				NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "read event log");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 3);

		if (!name || sqlite3_column_bytes(st, 4) != 32) {
			kj_err("%s: event log entry %lld malformed", j->path,
			       (long long)sqlite3_column_int64(st, 0));
			ret = -EBADMSG;
			break;
		}
		ret = cb(ctx, (uint64_t)sqlite3_column_int64(st, 0),
			 (uint32_t)sqlite3_column_int64(st, 1),
			 (uint32_t)sqlite3_column_int64(st, 2), name,
			 sqlite3_column_blob(st, 4),
			 sqlite3_column_int(st, 5) != 0);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = kj_jnl_sql_err(j, rc, "read event log");
	sqlite3_finalize(st);
	return ret;
}

/* ---- checkpoints --------------------------------------------------------- */

/* The PCR values in mask, ascending, 32 bytes each: the pcrs column. */
static size_t pack_pcrs(const struct kj_journal_checkpoint *c, uint8_t *out)
{
	size_t n = 0;

	for (unsigned i = 0; i < KJ_JOURNAL_PCR_COUNT; i++)
		if (c->pcr_mask & (1u << i))
			memcpy(out + 32 * n++, c->pcrs[i], 32);
	return 32 * n;
}

static int unpack_pcrs(struct kj_journal_checkpoint *c, const uint8_t *p,
		       size_t len)
{
	size_t n = 0;

	if (c->pcr_mask >> KJ_JOURNAL_PCR_COUNT)
		return -EBADMSG;
	for (unsigned i = 0; i < KJ_JOURNAL_PCR_COUNT; i++) {
		if (!(c->pcr_mask & (1u << i)))
			continue;
		if (32 * (n + 1) > len)
			return -EBADMSG;
		memcpy(c->pcrs[i], p + 32 * n++, 32);
	}
	return 32 * n == len ? 0 : -EBADMSG;
}

int kj_journal_add_checkpoint(struct kj_journal *j,
			      struct kj_journal_checkpoint *c)
{
	uint8_t pcrs[KJ_JOURNAL_PCR_COUNT * 32];
	sqlite3_stmt *st;
	size_t n;

	KJ_TRY(kj_jnl_check_writable(j));
	if (j->have_nv && c->nv_counter <= j->last_nv) {
		kj_err("%s: checkpoint nv_counter %llu does not exceed the "
		       "last one (%llu)", j->path,
		       (unsigned long long)c->nv_counter,
		       (unsigned long long)j->last_nv);
		return -EINVAL;
	}
	if ((c->pcr_mask >> KJ_JOURNAL_PCR_COUNT) || !c->quote_attest ||
	    !c->quote_sig || c->attest_len > INT32_MAX ||
	    c->sig_len > INT32_MAX) {
		kj_err("%s: checkpoint without quote or with a bad PCR mask",
		       j->path);
		return -EINVAL;
	}
	if (!c->time_ms)
		c->time_ms = kj_record_now_ms();
	n = pack_pcrs(c, pcrs);
	KJ_TRY(kj_jnl_begin_write(j));
	st = kj_jnl_stmt(j, S_INS_CKPT);
	bind_u64(st, 1, j->next_ckpt);
	bind_u64(st, 2, c->tree_size);
	sqlite3_bind_blob(st, 3, c->root, 32, SQLITE_STATIC);
	bind_u64(st, 4, c->nv_counter);
	bind_u64(st, 5, c->epoch);
	bind_u64(st, 6, c->event_log_length);
	sqlite3_bind_blob(st, 7, c->quote_attest, (int)c->attest_len,
			  SQLITE_STATIC);
	sqlite3_bind_blob(st, 8, c->quote_sig, (int)c->sig_len,
			  SQLITE_STATIC);
	bind_u64(st, 9, c->pcr_mask);
	sqlite3_bind_blob(st, 10, pcrs, (int)n, SQLITE_STATIC);
	bind_u64(st, 11, c->time_ms);
	KJ_TRY(kj_jnl_step_write(j, st, "insert checkpoint"));
	c->id = j->next_ckpt++;
	j->have_nv = true;
	j->last_nv = c->nv_counter;
	return 0;
}

uint64_t kj_journal_checkpoint_count(const struct kj_journal *j)
{
	return j->next_ckpt;
}

static int ckpt_row(sqlite3_stmt *st, struct kj_journal_checkpoint *c)
{
	memset(c, 0, sizeof(*c));
	c->id = (uint64_t)sqlite3_column_int64(st, 0);
	c->tree_size = (uint64_t)sqlite3_column_int64(st, 1);
	if (sqlite3_column_bytes(st, 2) != 32)
		return -EBADMSG;
	memcpy(c->root, sqlite3_column_blob(st, 2), 32);
	c->nv_counter = (uint64_t)sqlite3_column_int64(st, 3);
	c->epoch = (uint32_t)sqlite3_column_int64(st, 4);
	c->event_log_length = (uint64_t)sqlite3_column_int64(st, 5);
	c->quote_attest = sqlite3_column_blob(st, 6);
	c->attest_len = (size_t)sqlite3_column_bytes(st, 6);
	c->quote_sig = sqlite3_column_blob(st, 7);
	c->sig_len = (size_t)sqlite3_column_bytes(st, 7);
	c->pcr_mask = (uint32_t)sqlite3_column_int64(st, 8);
	c->time_ms = (uint64_t)sqlite3_column_int64(st, 10);
	if (!c->quote_attest || !c->quote_sig)
		return -EBADMSG;
	return unpack_pcrs(c, sqlite3_column_blob(st, 9),
			   (size_t)sqlite3_column_bytes(st, 9));
}

int kj_journal_foreach_checkpoint(struct kj_journal *j, uint64_t from_id,
				  kj_journal_checkpoint_cb cb, void *ctx)
{
	struct kj_journal_checkpoint c;
	sqlite3_stmt *st;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(j->db, "SELECT id, tree_size, root, "
				"nv_counter, epoch, event_log_length, "
				"quote_attest, quote_signature, pcr_mask, "
				"pcrs, time_ms FROM checkpoints WHERE id >= ?1 "
				"ORDER BY id", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "read checkpoints");
	bind_u64(st, 1, from_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (ckpt_row(st, &c)) {
			kj_err("%s: checkpoint %lld malformed", j->path,
			       (long long)sqlite3_column_int64(st, 0));
			ret = -EBADMSG;
			break;
		}
		ret = cb(ctx, &c);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = kj_jnl_sql_err(j, rc, "read checkpoints");
	sqlite3_finalize(st);
	return ret;
}

/* ---- meta ---------------------------------------------------------------- */

int kj_journal_meta_set(struct kj_journal *j, const char *key,
			const void *val, size_t len)
{
	sqlite3_stmt *st;

	KJ_TRY(kj_jnl_check_writable(j));
	if (len > INT32_MAX)
		return -EINVAL;
	KJ_TRY(kj_jnl_begin_write(j));
	st = kj_jnl_stmt(j, S_META_SET);
	bind_text(st, 1, key);
	sqlite3_bind_blob(st, 2, len ? val : "", (int)len, SQLITE_STATIC);
	return kj_jnl_step_write(j, st, "set meta");
}

int kj_journal_meta_get(struct kj_journal *j, const char *key, uint8_t **val,
			size_t *len)
{
	sqlite3_stmt *st = kj_jnl_stmt(j, S_META_GET);
	int rc, ret = 0;

	*val = NULL;
	*len = 0;
	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);

		*val = malloc(n + 1);
		if (!*val) {
			ret = -ENOMEM;
		} else {
			if (n)
				memcpy(*val, sqlite3_column_blob(st, 0), n);
			(*val)[n] = 0;
			*len = n;
		}
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = kj_jnl_sql_err(j, rc, "get meta");
	}
	sqlite3_reset(st);
	return ret;
}
