// SPDX-License-Identifier: Apache-2.0
/*
 * The journal, EVIDENCE.md §1-2 (schema and durability argument:
 * docs/JOURNAL.md).  One open write transaction collects reservations and
 * records; kj_journal_commit() ends it: one WAL append + fsync for many
 * devices.  Counters (next seq, job_seq, serial, attempt) live in memory
 * and are derived from the tables at open, so a write is one INSERT or
 * UPDATE; after any failed write the handle refuses further writes,
 * because those counters may then be ahead of what is on disk.
 *
 * This file: the schema, open (lock, WAL, counters, crash recovery) and
 * close.  The writes are in journal_rec.c, journal_resv.c, journal_job.c
 * and journal_tpm.c, on the plumbing of journal_sql.c.
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

/*
 * Version 2 (docs/JOURNAL.md "Schema"): certificates other jobs reserved
 * and records by uid are looked up in cert_used and uid_seen, filled in
 * bulk at job begin and end (journal_bulk.c), not in indexes on
 * reservations and records that every device updated at a random place;
 * the unused index records_serial is gone (recall uses
 * records_serial_nocase).
 */
#define CERT_USED_SQL                                                        \
	"CREATE TABLE cert_used("                                            \
	" cert_sha256 BLOB NOT NULL, job TEXT NOT NULL,"                     \
	" PRIMARY KEY(cert_sha256, job)) WITHOUT ROWID;"
#define UID_SEEN_SQL                                                         \
	"CREATE TABLE uid_seen("                                             \
	" uid BLOB NOT NULL, seq INTEGER NOT NULL,"                          \
	" PRIMARY KEY(uid, seq)) WITHOUT ROWID;"
/* An ok device record r of the current job not withdrawn since. */
#define OK_NOT_WITHDRAWN                                                     \
	" AND r.job = ?2 AND r.kind = 'device' AND r.result = 'ok'"          \
	" AND NOT EXISTS (SELECT 1 FROM records w WHERE w.seq > r.seq"       \
	" AND w.attempt = r.attempt AND w.result = 'withdrawn')"

static const char schema_sql[] =
	"CREATE TABLE jobs("
	" job TEXT PRIMARY KEY,"
	" work_order_sha256 BLOB NOT NULL, creds_sha256 BLOB NOT NULL,"
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
	UID_SEEN_SQL
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
	CERT_USED_SQL
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
	/* CROSS JOIN: uid_seen first (SQLite would scan the job's
	 * records by its index and look each up in uid_seen). */
	[S_UID_DONE] = "SELECT 1 FROM uid_seen u CROSS JOIN records r"
		       " ON r.seq = u.seq WHERE u.uid = ?1" OK_NOT_WITHDRAWN
		       " LIMIT 1",
	[S_UID_DONE_AT] = "SELECT 1 FROM records r WHERE r.seq = ?3"
			  " AND r.uid = ?1" OK_NOT_WITHDRAWN,
	[S_CERT_ELSEWHERE] = "SELECT 1 FROM cert_used WHERE cert_sha256"
			     " = ?1 AND job != ?2 LIMIT 1",
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

/* Version 1 -> 2: cert_used and uid_seen replace the indexes
 * reservations_cert and records_uid. */
static const char migrate_1_sql[] =
	CERT_USED_SQL
	UID_SEEN_SQL
	"DROP INDEX IF EXISTS reservations_cert;"
	"DROP INDEX IF EXISTS records_uid;"
	"DROP INDEX IF EXISTS records_serial;";

static int setup_schema(struct kj_journal *j)
{
	uint64_t v = 0;
	int rc;

	KJ_TRY(kj_jnl_query_u64(j, "PRAGMA user_version", NULL, &v));
	j->schema = (int)v;
	if (v == KJ_JOURNAL_SCHEMA)
		return 0;
	/* A reader needs none of versions 2's and 3's changes. */
	if ((v == 1 || v == 2) && j->rdonly)
		return 0;
	if (v > KJ_JOURNAL_SCHEMA || j->rdonly) {
		kj_err("%s: schema version %llu, this kinject reads versions "
		       "1 to %d%s", j->path, (unsigned long long)v,
		       KJ_JOURNAL_SCHEMA, v > KJ_JOURNAL_SCHEMA ?
		       ": use the kinject that wrote it, or a newer one" : "");
		return -EPROTO;
	}
	KJ_TRY(exec_sql(j, "BEGIN IMMEDIATE"));
	rc = exec_sql(j, v == 1 ? migrate_1_sql : v ? "" : schema_sql);
	/* 2 -> 3 changes no table: from here on a reservation's `done' is
	 * written in bulk (journal_bulk.c), which sets its mark now, while
	 * every record still closes its own reservation.  A kinject of
	 * version 2 would burn the reservations whose records exist. */
	if (!rc && v)
		rc = kj_jnl_bulk_catch_up(j);
	if (!rc)
		rc = exec_sql(j, "PRAGMA user_version = 3");
	if (!rc)
		rc = exec_sql(j, "COMMIT");
	if (rc) {
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	if (v)
		kj_info("%s: journal schema upgraded from version %llu to 3",
			j->path, (unsigned long long)v);
	j->schema = KJ_JOURNAL_SCHEMA;
	return 0;
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
	KJ_TRY(setup_schema(j));
	return j->rdonly ? 0 : kj_jnl_query_indexes(j);
}

static int prepare_all(struct kj_journal *j)
{
	for (int i = 0; i < S_COUNT_; i++) {
		int rc;

		/* Only writers use them, and a version 1 journal (read
		 * only) has no cert_used or uid_seen. */
		if (j->rdonly && (i == S_CERT_ELSEWHERE || i == S_UID_DONE ||
				  i == S_UID_DONE_AT))
			continue;
		rc = sqlite3_prepare_v3(j->db, stmt_sql[i], -1,
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
	KJ_TRY(kj_jnl_query_u64(j, "SELECT count(*) FROM records", NULL,
				&count));
	if (count != j->next_seq) {
		kj_err("%s: records: %llu rows but the last seq is %llu: the "
		       "log has a gap", j->path, (unsigned long long)count,
		       (unsigned long long)j->next_seq);
		return -EBADMSG;
	}
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(attempt) + 1 FROM reservations",
				NULL, &j->next_attempt));
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(id) + 1 FROM event_log", NULL,
				&j->next_event));
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(id) + 1 FROM checkpoints", NULL,
				&j->next_ckpt));
	n = (uint64_t)kj_jnl_query_u64(j, "SELECT nv_counter FROM checkpoints "
				       "ORDER BY id DESC LIMIT 1", NULL,
				       &j->last_nv);
	j->have_nv = n == 1;
	return 0;
}


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
	j->flush_every = KJ_JOURNAL_FLUSH_RECORDS;
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
	if (!j->rdonly)
		KJ_TRY_GOTO(rc, kj_jnl_open_register(j), fail);
	/* A reader keeps one snapshot for its life: records, checkpoints and
	 * counters it reads all belong to the same moment of a live job. */
	if (j->rdonly)
		KJ_TRY_GOTO(rc, exec_sql(j, "BEGIN"), fail);
	KJ_TRY_GOTO(rc, load_counters(j), fail);
	if (!j->rdonly) {
		KJ_TRY_GOTO(rc, kj_jnl_burn_stale(j), fail);
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
	kj_jnl_bulk_free(j);
	kj_jnl_open_free(j);
	free(j->path);
	free(j);
}

void kj_journal_stats(const struct kj_journal *j, struct kj_journal_stats *st)
{
	*st = j->st;
	st->fsyncs = kj_sqlcount_syncs() - j->syncs_base;
	st->ok_uids_held = j->okset.n;
	st->ok_uids_bytes = j->okset.cap * sizeof(*j->okset.v);
}

uint64_t kj_journal_record_count(const struct kj_journal *j)
{
	return j->next_seq;
}
