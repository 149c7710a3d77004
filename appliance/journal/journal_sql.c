// SPDX-License-Identifier: Apache-2.0
/*
 * The journal's SQLite plumbing: errors, prepared statements and the one
 * group-commit write transaction.  Every other journal file writes through
 * these, so they live below all of them and call none of them.
 */
#include <errno.h>
#include <sqlite3.h>

#include "base/log.h"
#include "journal.h"
#include "journal_int.h"

/* ---- errors and statements ----------------------------------------------- */

static int sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return -EACCES;
	default:
		return -EIO;
	}
}

/* Log a failed SQLite call on j, naming the step; returns the errno. */
int kj_jnl_sql_err(struct kj_journal *j, int rc, const char *what)
{
	int e = sql_errno(rc);

	kj_err("%s: %s: SQLite: %s (%s)%s", j->path, what, sqlite3_errstr(rc),
	       sqlite3_errmsg(j->db),
	       e == -ENOSPC ? "; the state dir's disk is full: stop issuing"
			    : "");
	return e;
}

/*
 * A write failed: undo the open transaction (everything since the last
 * commit, which nothing outside may rely on yet) and refuse further
 * writes.  The in-memory counters are now ahead; a rerun resumes.
 */
int kj_jnl_write_failed(struct kj_journal *j, int rc, const char *what)
{
	int e = kj_jnl_sql_err(j, rc, what);

	if (!sqlite3_get_autocommit(j->db))
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	j->in_txn = false;
	j->pending = 0;
	j->poisoned = e;
	return e;
}

int kj_jnl_check_writable(struct kj_journal *j)
{
	if (j->rdonly) {
		kj_err("%s: opened read-only", j->path);
		return -EPERM;
	}
	if (j->poisoned) {
		kj_err("%s: an earlier write failed; the journal takes no more "
		       "writes until kinject restarts", j->path);
		return j->poisoned;
	}
	return 0;
}

int kj_jnl_begin_write(struct kj_journal *j)
{
	int rc;

	KJ_TRY(kj_jnl_check_writable(j));
	if (j->in_txn)
		return 0;
	rc = sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_write_failed(j, rc, "BEGIN");
	j->in_txn = true;
	return 0;
}

sqlite3_stmt *kj_jnl_stmt(struct kj_journal *j, enum kj_jnl_stmt s)
{
	sqlite3_reset(j->stmt[s]);
	sqlite3_clear_bindings(j->stmt[s]);
	return j->stmt[s];
}

/* Run a prepared write statement to completion. */
int kj_jnl_step_write(struct kj_journal *j, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return kj_jnl_write_failed(j, rc, what);
	j->pending++;
	return 0;
}

/* Run a one-row query with an optional text and integer parameter; the
 * first column as u64 (*out untouched when the row or value is NULL).
 * Returns 1 if a non-NULL value was found, 0 if not. */
int kj_jnl_query_u64(struct kj_journal *j, const char *sql, const char *text,
		     uint64_t *out)
{
	sqlite3_stmt *st;
	int rc, found = 0;

	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, sql);
	if (text)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*out = (uint64_t)sqlite3_column_int64(st, 0);
		found = 1;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		found = kj_jnl_sql_err(j, rc, sql);
	sqlite3_finalize(st);
	return found;
}

/*
 * Run an existence query whose ?1 is a blob, ?2 the current job and ?3,
 * if it has one, seq: 1 if it finds a row, 0 if not, or a negative errno.
 */
int kj_jnl_blob_in_job(struct kj_journal *j, enum kj_jnl_stmt s,
		       const void *blob, size_t len, uint64_t seq,
		       const char *what)
{
	sqlite3_stmt *st = kj_jnl_stmt(j, s);
	int rc;

	sqlite3_bind_blob(st, 1, blob, (int)len, SQLITE_STATIC);
	bind_text(st, 2, j->job.d.job);
	if (sqlite3_bind_parameter_count(st) >= 3)
		bind_u64(st, 3, seq);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return kj_jnl_sql_err(j, rc, what);
}

/* ---- commit -------------------------------------------------------------- */

int kj_journal_commit(struct kj_journal *j)
{
	int rc;

	KJ_TRY(kj_jnl_check_writable(j));
	if (!j->in_txn)
		return 0;
	rc = sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_write_failed(j, rc, "COMMIT");
	j->in_txn = false;
	j->pending = 0;
	j->st.commits++;
	return 0;
}

size_t kj_journal_pending(const struct kj_journal *j)
{
	return j->pending;
}

/* Step a `SELECT seq, jcs' statement, handing each row to cb (0 goes on,
 * > 0 stops and is returned, < 0 fails); finalizes st. */
int kj_jnl_step_leaves(struct kj_journal *j, sqlite3_stmt *st,
		       kj_journal_record_cb cb, void *ctx, const char *what)
{
	int rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 1);
		int n = sqlite3_column_bytes(st, 1);

		ret = cb(ctx, (uint64_t)sqlite3_column_int64(st, 0),
			 p ? p : "", (size_t)n);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = kj_jnl_sql_err(j, rc, what);
	sqlite3_finalize(st);
	return ret;
}
