// SPDX-License-Identifier: Apache-2.0
/*
 * The journal, EVIDENCE.md §1-2 (schema and durability argument:
 * docs/JOURNAL.md).  One open write transaction collects reservations and
 * records; kj_journal_commit() ends it: one WAL append + fsync for many
 * devices.  Counters (next seq, job_seq, serial, attempt) live in memory
 * and are derived from the tables at open, so a write is one INSERT or
 * UPDATE; after any failed write the handle refuses further writes,
 * because those counters may then be ahead of what is on disk.
 */
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "journal.h"
#include "base/log.h"
#include "base/util.h"
#include "journal_int.h"
#include "sqlcount.h"

#define BUSY_TIMEOUT_MS 5000

static const char schema_sql[] =
	"CREATE TABLE jobs("
	" job TEXT PRIMARY KEY,"
	" work_order_sha256 BLOB NOT NULL,"
	" customer TEXT NOT NULL, product TEXT NOT NULL, batch TEXT NOT NULL,"
	" operator TEXT NOT NULL,"
	" quantity INTEGER NOT NULL,"
	" fw_version TEXT NOT NULL, fw_sha256 BLOB NOT NULL,"
	" serial_prefix TEXT NOT NULL, serial_start INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" state TEXT NOT NULL"
	"  CHECK(state IN ('running', 'completed', 'failed')));"
	"CREATE TABLE records("
	" seq INTEGER PRIMARY KEY,"
	" job TEXT NOT NULL, job_seq INTEGER NOT NULL,"
	" kind TEXT NOT NULL, result TEXT,"
	" uid BLOB, serial TEXT, cred_index INTEGER, attempt INTEGER,"
	" time_ms INTEGER NOT NULL,"
	" jcs BLOB NOT NULL,"
	" UNIQUE(job, job_seq));"
	"CREATE INDEX records_uid ON records(uid) WHERE uid IS NOT NULL;"
	"CREATE INDEX records_serial ON records(serial)"
	" WHERE serial IS NOT NULL;"
	"CREATE TABLE reservations("
	" attempt INTEGER PRIMARY KEY,"
	" job TEXT NOT NULL, cred_index INTEGER NOT NULL,"
	" cert_sha256 BLOB NOT NULL,"
	" serial_no INTEGER NOT NULL, serial TEXT NOT NULL,"
	" site TEXT NOT NULL, socket INTEGER NOT NULL, uid BLOB NOT NULL,"
	" hwrev TEXT NOT NULL, time_ms INTEGER NOT NULL,"
	" state TEXT NOT NULL CHECK(state IN ('reserved', 'done')),"
	" UNIQUE(job, cred_index), UNIQUE(job, serial_no));"
	"CREATE INDEX reservations_open ON reservations(state)"
	" WHERE state = 'reserved';"
	"CREATE TABLE event_log("
	" id INTEGER PRIMARY KEY,"
	" epoch INTEGER NOT NULL, pcr INTEGER NOT NULL, name TEXT NOT NULL,"
	" digest BLOB NOT NULL, void INTEGER NOT NULL DEFAULT 0,"
	" time_ms INTEGER NOT NULL);"
	"CREATE TABLE checkpoints("
	" id INTEGER PRIMARY KEY,"
	" tree_size INTEGER NOT NULL, root BLOB NOT NULL,"
	" nv_counter INTEGER NOT NULL UNIQUE, epoch INTEGER NOT NULL,"
	" event_log_length INTEGER NOT NULL,"
	" quote_attest BLOB NOT NULL, quote_signature BLOB NOT NULL,"
	" pcr_mask INTEGER NOT NULL, pcrs BLOB NOT NULL,"
	" time_ms INTEGER NOT NULL);"
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);";

static const char *const stmt_sql[S_COUNT_] = {
	[S_INS_RECORD] = "INSERT INTO records(seq, job, job_seq, kind, result,"
			 " uid, serial, cred_index, attempt, time_ms, jcs)"
			 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
			 " ?11)",
	[S_INS_RESV] = "INSERT INTO reservations(attempt, job, cred_index,"
		       " cert_sha256, serial_no, serial, site, socket, uid,"
		       " hwrev, time_ms, state) VALUES(?1, ?2, ?3, ?4, ?5, ?6,"
		       " ?7, ?8, ?9, ?10, ?11, 'reserved')",
	[S_RESV_DONE] = "UPDATE reservations SET state = 'done'"
			" WHERE attempt = ?1 AND job = ?2 AND cred_index = ?3"
			" AND serial = ?4 AND state = 'reserved'",
	[S_UID_DONE] = "SELECT 1 FROM records WHERE uid = ?1 AND job = ?2"
		       " AND kind = 'device' AND result = 'ok' LIMIT 1",
	[S_INS_EVENT] = "INSERT INTO event_log(id, epoch, pcr, name, digest,"
			" time_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[S_VOID_EVENT] = "UPDATE event_log SET void = 1 WHERE id = ?1",
	[S_INS_CKPT] = "INSERT INTO checkpoints(id, tree_size, root,"
		       " nv_counter, epoch, event_log_length, quote_attest,"
		       " quote_signature, pcr_mask, pcrs, time_ms)"
		       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[S_META_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
	[S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
};

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

/* ---- open ---------------------------------------------------------------- */

static int take_lock(struct kj_journal *j, const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/journal.lock", dir);
	j->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->lock_fd < 0) {
		kj_err("%s: %m", path);
		return -errno;
	}
	if (flock(j->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		if (e == EWOULDBLOCK) {
			kj_err("%s: the state dir is in use by another kinject "
			       "process", dir);
			return -EBUSY;
		}
		kj_err("%s: flock: %s", path, strerror(e));
		return -e;
	}
	return 0;
}

static int exec_sql(struct kj_journal *j, const char *sql)
{
	int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : kj_jnl_sql_err(j, rc, sql);
}

static int setup_schema(struct kj_journal *j)
{
	uint64_t v = 0;
	int rc;

	KJ_TRY(kj_jnl_query_u64(j, "PRAGMA user_version", NULL, &v));
	if (v == KJ_JOURNAL_SCHEMA)
		return 0;
	if (v > KJ_JOURNAL_SCHEMA || j->rdonly) {
		kj_err("%s: schema version %llu, this kinject reads version %d",
		       j->path, (unsigned long long)v, KJ_JOURNAL_SCHEMA);
		return -EPROTO;
	}
	KJ_TRY(exec_sql(j, "BEGIN IMMEDIATE"));
	rc = exec_sql(j, schema_sql);
	if (!rc)
		rc = exec_sql(j, "PRAGMA user_version = 1");
	if (!rc)
		rc = exec_sql(j, "COMMIT");
	if (rc)
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int open_db(struct kj_journal *j)
{
	const char *vfs = kj_sqlcount_vfs();
	int flags = SQLITE_OPEN_NOMUTEX, rc;
	uint64_t v = 0;

	if (!vfs)
		return -EIO;
	flags |= j->rdonly ? SQLITE_OPEN_READONLY
			   : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	if (!j->rdonly) {
		/* SQLite gives -wal and -shm the mode of the database. */
		int fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		if (fd < 0) {
			kj_err("%s: %m", j->path);
			return -errno;
		}
		close(fd);
	}
	rc = sqlite3_open_v2(j->path, &j->db, flags, vfs);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "open");
	sqlite3_extended_result_codes(j->db, 1);
	sqlite3_busy_timeout(j->db, BUSY_TIMEOUT_MS);
	if (!j->rdonly) {
		char mode[8] = "";
		sqlite3_stmt *st;

		rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode = WAL", -1,
					&st, NULL);
		if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			snprintf(mode, sizeof(mode), "%s",
				 sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		if (strcmp(mode, "wal")) {
			kj_err("%s: cannot switch to WAL mode (got `%s')",
			       j->path, mode);
			return -EIO;
		}
	}
	KJ_TRY(exec_sql(j, "PRAGMA synchronous = FULL"));
	KJ_TRY(kj_jnl_query_u64(j, "PRAGMA synchronous", NULL, &v));
	if (v != 2) {
		kj_err("%s: synchronous=FULL not in effect", j->path);
		return -EIO;
	}
	return setup_schema(j);
}

static int prepare_all(struct kj_journal *j)
{
	for (int i = 0; i < S_COUNT_; i++) {
		int rc = sqlite3_prepare_v3(j->db, stmt_sql[i], -1,
					    SQLITE_PREPARE_PERSISTENT,
					    &j->stmt[i], NULL);

		if (rc != SQLITE_OK)
			return kj_jnl_sql_err(j, rc, stmt_sql[i]);
	}
	return 0;
}

static int load_counters(struct kj_journal *j)
{
	uint64_t n = 0, count = 0;

	j->next_attempt = 1;
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(seq) + 1 FROM records", NULL,
			 &j->next_seq));
	/* seq is the leaf index: a gap would make the Merkle tree lie. */
	KJ_TRY(kj_jnl_query_u64(j, "SELECT count(*) FROM records", NULL, &count));
	if (count != j->next_seq) {
		kj_err("%s: records: %llu rows but the last seq is %llu: the "
		       "log has a gap", j->path, (unsigned long long)count,
		       (unsigned long long)j->next_seq);
		return -EBADMSG;
	}
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(attempt) + 1 FROM reservations", NULL,
			 &j->next_attempt));
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(id) + 1 FROM event_log", NULL,
			 &j->next_event));
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(id) + 1 FROM checkpoints", NULL,
			 &j->next_ckpt));
	n = (uint64_t)kj_jnl_query_u64(j, "SELECT nv_counter FROM checkpoints "
			     "ORDER BY id DESC LIMIT 1", NULL, &j->last_nv);
	j->have_nv = n == 1;
	return 0;
}

static int burn_stale(struct kj_journal *j);

int kj_journal_open(const char *dir, unsigned flags, struct kj_journal **out)
{
	struct kj_journal *j;
	int rc;

	*out = NULL;
	j = calloc(1, sizeof(*j));
	if (!j || asprintf(&j->path, "%s/%s", dir, KJ_JOURNAL_FILE) < 0) {
		free(j);
		kj_err("%s: out of memory", dir);
		return -ENOMEM;
	}
	j->lock_fd = -1;
	j->rdonly = flags & KJ_JOURNAL_RDONLY;
	if (j->rdonly && access(j->path, R_OK) < 0) {
		kj_err("%s: no journal here (%m)", j->path);
		rc = -ENOENT;
		goto fail;
	}
	if (!j->rdonly) {
		KJ_TRY_GOTO(rc, kj_mkdir_p(dir, 0700), fail);
		KJ_TRY_GOTO(rc, take_lock(j, dir), fail);
	}
	j->syncs_base = kj_sqlcount_syncs();
	KJ_TRY_GOTO(rc, open_db(j), fail);
	KJ_TRY_GOTO(rc, prepare_all(j), fail);
	/* A reader keeps one snapshot for its life: records, checkpoints and
	 * counters it reads all belong to the same moment of a live job. */
	if (j->rdonly)
		KJ_TRY_GOTO(rc, exec_sql(j, "BEGIN"), fail);
	KJ_TRY_GOTO(rc, load_counters(j), fail);
	if (!j->rdonly) {
		KJ_TRY_GOTO(rc, burn_stale(j), fail);
		KJ_TRY_GOTO(rc, kj_jnl_ckpt_start(j), fail);
	}
	*out = j;
	return 0;
fail:
	kj_journal_close(j);
	return rc;
}

static void job_clear(struct job *jb)
{
	free(jb->used);
	for (size_t i = 0; i < KJ_ARRAY_SIZE(jb->strs); i++)
		free(jb->strs[i]);
	memset(jb, 0, sizeof(*jb));
}

void kj_journal_close(struct kj_journal *j)
{
	if (!j)
		return;
	kj_jnl_ckpt_stop(j);
	if (j->db) {
		if (j->in_txn || (j->rdonly && !sqlite3_get_autocommit(j->db)))
			sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
		for (int i = 0; i < S_COUNT_; i++)
			sqlite3_finalize(j->stmt[i]);
		sqlite3_close(j->db);
	}
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	job_clear(&j->job);
	free(j->path);
	free(j);
}

/* ---- commit --------------------------------------------------------------- */

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

void kj_journal_stats(const struct kj_journal *j, struct kj_journal_stats *st)
{
	*st = j->st;
	st->fsyncs = kj_sqlcount_syncs() - j->syncs_base;
}

uint64_t kj_journal_record_count(const struct kj_journal *j)
{
	return j->next_seq;
}

/* ---- records -------------------------------------------------------------- */

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

static void count_device(struct job *jb, const struct kj_record *r)
{
	if (r->result == KJ_RES_OK)
		jb->ok_count++;
	else
		jb->other_count++;
	if (r->has_attempt && kj_result_after_offer(r->result))
		jb->failed_after_offer++;
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

static int close_reservation(struct kj_journal *j, const struct kj_record *r)
{
	sqlite3_stmt *st;
	int rc;

	if (!r->has_cred || !r->serial) {
		kj_err("%s: record of attempt %llu lacks its reservation's "
		       "serial or credential", j->path,
		       (unsigned long long)r->attempt);
		return -EINVAL;
	}
	KJ_TRY(kj_jnl_begin_write(j));
	st = kj_jnl_stmt(j, S_RESV_DONE);
	bind_u64(st, 1, r->attempt);
	bind_text(st, 2, r->job);
	bind_u64(st, 3, r->cred_index);
	bind_text(st, 4, r->serial);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return kj_jnl_write_failed(j, rc, "close reservation");
	if (sqlite3_changes(j->db) != 1) {
		kj_err("%s: attempt %llu: no open reservation of job `%s' "
		       "with serial `%s' and credential %llu", j->path,
		       (unsigned long long)r->attempt, r->job, r->serial,
		       (unsigned long long)r->cred_index);
		return -EINVAL;
	}
	j->pending++;
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
	if (r->has_attempt)
		KJ_TRY(close_reservation(j, r));
	KJ_TRY(kj_jnl_insert_record(j, r, n));
	if (r->has_attempt)
		j->job.open_reservations--;
	j->job.next_job_seq++;
	count_device(&j->job, r);
	if (jcs)
		*jcs = (const uint8_t *)j->jcs;
	if (len)
		*len = (size_t)n;
	return 0;
}

/* ---- reservations --------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Used before this run: the sorted set loaded by job_begin.  Positions the
 * cursor passed in this run are used too, so no lookup is needed for them,
 * and the UNIQUE(job, cred_index) constraint backs this up on disk.
 */
static bool cred_used_before(const struct job *jb, uint64_t index)
{
	return jb->n_used && bsearch(&index, jb->used, jb->n_used,
				     sizeof(*jb->used), cmp_u64);
}

int kj_jnl_load_used(struct kj_journal *j)
{
	struct job *jb = &j->job;
	sqlite3_stmt *st;
	size_t cap = 0;
	uint64_t *nu;
	int rc;

	rc = sqlite3_prepare_v2(j->db, "SELECT cred_index FROM reservations "
				"WHERE job = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "list used credentials");
	bind_text(st, 1, jb->d.job);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (jb->n_used == cap) {
			cap = cap ? 2 * cap : 64;
			nu = realloc(jb->used, cap * sizeof(*nu));
			if (!nu) {
				rc = SQLITE_NOMEM;
				break;
			}
			jb->used = nu;
		}
		jb->used[jb->n_used++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return kj_jnl_sql_err(j, rc, "list used credentials");
	if (jb->n_used)
		qsort(jb->used, jb->n_used, sizeof(*jb->used), cmp_u64);
	return 0;
}

/* The next batch position never reserved in this job, or -ENOBUFS. */
static int next_cred(struct kj_journal *j, size_t *pos)
{
	struct job *jb = &j->job;

	while (jb->cursor < jb->d.n_creds) {
		if (!cred_used_before(jb, jb->d.creds[jb->cursor].index)) {
			*pos = jb->cursor++;
			return 0;
		}
		jb->cursor++;
	}
	kj_err("job `%s': credential batch exhausted: all %zu credentials "
	       "are used", jb->d.job, jb->d.n_creds);
	return -ENOBUFS;
}

static int check_hello(struct kj_journal *j, const struct kj_record *h)
{
	if (!h->site || !h->hwrev || h->uid_len < 1 ||
	    h->uid_len > KJ_RECORD_UID_MAX) {
		kj_err("%s: reservation without site, hwrev or a 1..64 byte "
		       "uid", j->path);
		return -EINVAL;
	}
	return 0;
}

int kj_journal_reserve(struct kj_journal *j, const struct kj_record *hello,
		       struct kj_reservation *out)
{
	struct job *jb = &j->job;
	const struct kj_cred_ref *c;
	sqlite3_stmt *st;
	size_t pos;
	int n;

	KJ_TRY(kj_jnl_check_writable(j));
	KJ_TRY(kj_jnl_need_job(j));
	KJ_TRY(check_hello(j, hello));
	KJ_TRY(next_cred(j, &pos));
	c = &jb->d.creds[pos];
	memset(out, 0, sizeof(*out));
	n = snprintf(out->serial, sizeof(out->serial), "%s%llu",
		     jb->d.serial_prefix, (unsigned long long)jb->next_serial);
	if (n < 0 || n > 255) { /* OFFER serial is a str8 */
		kj_err("job `%s': serial `%s%llu' longer than 255 bytes",
		       jb->d.job, jb->d.serial_prefix,
		       (unsigned long long)jb->next_serial);
		jb->cursor--;
		return -EINVAL;
	}
	out->attempt = j->next_attempt;
	out->cred_index = c->index;
	out->cred_pos = pos;
	memcpy(out->cert_sha256, c->cert_sha256, 32);
	out->serial_no = jb->next_serial;
	KJ_TRY(kj_jnl_begin_write(j));
	st = kj_jnl_stmt(j, S_INS_RESV);
	bind_u64(st, 1, out->attempt);
	bind_text(st, 2, jb->d.job);
	bind_u64(st, 3, out->cred_index);
	sqlite3_bind_blob(st, 4, out->cert_sha256, 32, SQLITE_STATIC);
	bind_u64(st, 5, out->serial_no);
	bind_text(st, 6, out->serial);
	bind_text(st, 7, hello->site);
	bind_u64(st, 8, hello->socket);
	sqlite3_bind_blob(st, 9, hello->uid, (int)hello->uid_len,
			  SQLITE_STATIC);
	bind_text(st, 10, hello->hwrev);
	bind_u64(st, 11, kj_record_now_ms());
	KJ_TRY(kj_jnl_step_write(j, st, "insert reservation"));
	j->next_attempt++;
	jb->next_serial++;
	jb->creds_used++;
	jb->open_reservations++;
	j->st.reservations++;
	return 0;
}

void kj_record_set_reservation(struct kj_record *r,
			       const struct kj_reservation *res)
{
	r->has_attempt = true;
	r->attempt = res->attempt;
	r->serial = res->serial;
	r->has_cred = true;
	r->cred_index = res->cred_index;
	memcpy(r->cert_sha256, res->cert_sha256, 32);
}

int kj_journal_uid_done(struct kj_journal *j, const uint8_t *uid,
			size_t uid_len)
{
	sqlite3_stmt *st;
	int rc;

	KJ_TRY(kj_jnl_need_job(j));
	st = kj_jnl_stmt(j, S_UID_DONE);
	sqlite3_bind_blob(st, 1, uid, (int)uid_len, SQLITE_STATIC);
	bind_text(st, 2, j->job.d.job);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return kj_jnl_sql_err(j, rc, "look up uid");
}

/* ---- crash recovery: reserved → interrupted -------------------------------- */

struct stale {
	uint64_t attempt, cred_index, socket, time_ms;
	uint8_t cert_sha256[32];
	uint8_t uid[KJ_RECORD_UID_MAX];
	size_t uid_len;
	char *strs[11]; /* job customer product batch operator fw_version
			   serial site hwrev (+ spare) */
	uint8_t fw_sha256[32];
};

static const char stale_sql[] =
	"SELECT r.attempt, r.cred_index, r.socket, r.cert_sha256, r.uid,"
	" r.job, j.customer, j.product, j.batch, j.operator, j.fw_version,"
	" r.serial, r.site, r.hwrev, j.fw_sha256"
	" FROM reservations r JOIN jobs j ON j.job = r.job"
	" WHERE r.state = 'reserved' ORDER BY r.attempt";

static void stale_free(struct stale *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < KJ_ARRAY_SIZE(s[i].strs); k++)
			free(s[i].strs[k]);
	free(s);
}

static int blob_col(sqlite3_stmt *st, int col, uint8_t *out, size_t min,
		    size_t max, size_t *len)
{
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	const void *p = sqlite3_column_blob(st, col);

	if (!p || n < min || n > max)
		return -EBADMSG;
	memcpy(out, p, n);
	if (len)
		*len = n;
	return 0;
}

static int stale_row(sqlite3_stmt *st, struct stale *s)
{
	s->attempt = (uint64_t)sqlite3_column_int64(st, 0);
	s->cred_index = (uint64_t)sqlite3_column_int64(st, 1);
	s->socket = (uint64_t)sqlite3_column_int64(st, 2);
	KJ_TRY(blob_col(st, 3, s->cert_sha256, 32, 32, NULL));
	KJ_TRY(blob_col(st, 4, s->uid, 1, KJ_RECORD_UID_MAX, &s->uid_len));
	for (int k = 0; k < 9; k++) {
		const unsigned char *t = sqlite3_column_text(st, 5 + k);

		if (!t || !(s->strs[k] = strdup((const char *)t)))
			return -EBADMSG;
	}
	return blob_col(st, 14, s->fw_sha256, 32, 32, NULL);
}

static int load_stale(struct kj_journal *j, struct stale **out, size_t *n)
{
	struct stale *s = NULL, *ns;
	size_t cap = 0;
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	*out = NULL;
	rc = sqlite3_prepare_v2(j->db, stale_sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "list open reservations");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			ns = realloc(s, cap * sizeof(*s));
			if (!ns) {
				rc = SQLITE_NOMEM;
				break;
			}
			s = ns;
		}
		memset(&s[*n], 0, sizeof(*s));
		if (stale_row(st, &s[(*n)++])) {
			kj_err("%s: reservation row malformed", j->path);
			rc = SQLITE_CORRUPT;
			break;
		}
	}
	sqlite3_finalize(st);
	*out = s;
	if (rc != SQLITE_DONE)
		return kj_jnl_sql_err(j, rc, "list open reservations");
	return 0;
}

static int burn_one(struct kj_journal *j, const struct stale *s)
{
	struct kj_record r = { .kind = KJ_REC_DEVICE };
	uint64_t last = 0;
	int n;

	r.job = s->strs[0];
	r.customer = s->strs[1];
	r.product = s->strs[2];
	r.batch = s->strs[3];
	r.operator_id = s->strs[4];
	r.fw_version = s->strs[5];
	r.serial = s->strs[6];
	r.site = s->strs[7];
	r.hwrev = s->strs[8];
	memcpy(r.fw_sha256, s->fw_sha256, 32);
	r.socket = (uint16_t)s->socket;
	memcpy(r.uid, s->uid, s->uid_len);
	r.uid_len = s->uid_len;
	r.has_attempt = true;
	r.attempt = s->attempt;
	r.has_cred = true;
	r.cred_index = s->cred_index;
	memcpy(r.cert_sha256, s->cert_sha256, 32);
	r.result = KJ_RES_INTERRUPTED;
	r.seq = j->next_seq;
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(job_seq) FROM records WHERE job = ?",
			 r.job, &last));
	r.job_seq = last + 1;
	n = kj_jnl_serialize(j, &r);
	if (n < 0)
		return n;
	KJ_TRY(close_reservation(j, &r));
	KJ_TRY(kj_jnl_insert_record(j, &r, n));
	kj_warn("%s: attempt %llu of job `%s' (serial %s, credential %llu) "
		"was in flight at a crash: recorded as interrupted, its "
		"credential burned", j->path, (unsigned long long)s->attempt,
		r.job, r.serial, (unsigned long long)s->cred_index);
	return 0;
}

/* EVIDENCE.md §1: a reserved-but-unfinished index is burned, never reused. */
static int burn_stale(struct kj_journal *j)
{
	struct stale *s = NULL;
	size_t n = 0;
	int rc;

	rc = load_stale(j, &s, &n);
	for (size_t i = 0; !rc && i < n; i++)
		rc = burn_one(j, &s[i]);
	stale_free(s, n);
	if (!rc)
		rc = kj_journal_commit(j);
	return rc;
}
