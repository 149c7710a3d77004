/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the journal: the handle and the helpers its files share, each
 * under the file that defines it.  Calls go one way only, downwards:
 *   journal.c      -> journal_stale.c, journal_ckpt.c, journal_bulk.c
 *   journal_job.c, journal_rec.c, journal_resv.c -> journal_bulk.c
 *   journal_job.c  -> journal_resv.c -> journal_rec.c
 *   journal_stale.c -> journal_rec.c
 *   journal_query.c (read-only: audit) -> nothing but journal_sql.c
 * and all of them -> journal_sql.c, which calls none.  Not for other
 * modules.
 */
#ifndef KINJECT_JOURNAL_INT_H
#define KINJECT_JOURNAL_INT_H

#include <sqlite3.h>

#include "journal.h"

struct kj_jnl_ckpt;

enum kj_jnl_stmt {
	S_INS_RECORD,
	S_INS_RESV,
	S_RESV_DONE,
	S_UID_DONE,
	S_UID_DONE_AT,
	S_CERT_ELSEWHERE,
	S_INS_EVENT,
	S_VOID_EVENT,
	S_INS_CKPT,
	S_META_SET,
	S_META_GET,
	S_COUNT_
};

/* The handle's current job (kj_journal_job_begin). */
struct job {
	bool active;
	bool ended;
	enum kj_result end_result;
	struct kj_job_desc d; /* its strings point into strs[] */
	char *strs[7];
	size_t cursor;        /* next batch position to try */
	uint64_t *used;       /* indexes used before this run, sorted */
	size_t n_used;
	size_t skipped;       /* batch entries other jobs reserved */
	uint64_t next_serial;
	uint64_t next_job_seq;
	uint64_t ok_count, other_count, failed_after_offer;
	uint64_t creds_used;
	uint64_t open_reservations;
};

struct kj_journal {
	sqlite3 *db;
	char *path;
	int lock_fd;
	bool rdonly;
	bool in_txn;
	int schema;           /* PRAGMA user_version as opened */
	int poisoned;         /* sticky errno of the first failed write */
	size_t pending;
	uint64_t syncs_base;
	struct kj_journal_stats st;
	uint64_t next_seq, next_attempt, next_event, next_ckpt;
	bool have_nv;
	uint64_t last_nv;
	sqlite3_stmt *stmt[S_COUNT_];
	struct kj_jnl_ckpt *ckpt; /* background WAL checkpoints (rw only) */
	struct kj_jnl_okset {     /* ok records not yet in uid_seen */
		struct kj_jnl_ok { uint64_t hash, seq; } *v;
		size_t cap, n;    /* cap: 0 or a power of two */
	} okset;
	struct kj_jnl_open {      /* reservations open on this handle */
		struct kj_jnl_open_ent {
			uint64_t attempt, cred_index, serial; /* its hash */
		} *v;
		size_t cap, n;    /* cap: 0 or a power of two */
	} open;
	uint64_t closed_n;        /* records that closed one since the flush */
	uint64_t flushed_seq;     /* next_seq at the last bulk flush */
	uint64_t flush_every;     /* records between flushes */
	struct job job;
	char jcs[KJ_RECORD_MAX];
};

/* journal_sql.c: errors, statements and the write transaction; calls no
 * other journal file. */
/* Log a failed SQLite call naming the step; returns a negative errno
 * (SQLITE_FULL: -ENOSPC). */
int kj_jnl_sql_err(struct kj_journal *j, int rc, const char *what);
/* Same, then roll back the open transaction and poison the handle. */
int kj_jnl_write_failed(struct kj_journal *j, int rc, const char *what);
int kj_jnl_check_writable(struct kj_journal *j);
/* Join (or open) the group-commit transaction. */
int kj_jnl_begin_write(struct kj_journal *j);
/* A reset prepared statement with no bindings. */
sqlite3_stmt *kj_jnl_stmt(struct kj_journal *j, enum kj_jnl_stmt s);
/* Step a write to SQLITE_DONE; counts it as pending. */
int kj_jnl_step_write(struct kj_journal *j, sqlite3_stmt *st,
		      const char *what);
/* First column of a one-row query (one optional text parameter): 1 and
 * *out set if non-NULL, 0 if NULL or no row, < 0 on error. */
int kj_jnl_query_u64(struct kj_journal *j, const char *sql, const char *text,
		     uint64_t *out);

/* An existence query of statement s, ?1 a blob, ?2 the current job, ?3
 * (if s has it) seq: 1 if it finds a row, 0 if not, or a negative errno
 * (logged, naming what). */
int kj_jnl_blob_in_job(struct kj_journal *j, enum kj_jnl_stmt s,
		       const void *blob, size_t len, uint64_t seq,
		       const char *what);

/* Step a `SELECT seq, jcs' to cb (kj_journal_foreach_record's contract);
 * finalizes st. */
int kj_jnl_step_leaves(struct kj_journal *j, sqlite3_stmt *st,
		       kj_journal_record_cb cb, void *ctx, const char *what);

/* journal_rec.c: one record's JCS bytes and row, on journal_sql.c. */
int kj_jnl_need_job(struct kj_journal *j);
/* A record's job fields (job, customer, …, firmware) from the current job. */
void kj_jnl_fill_job_fields(const struct job *jb, struct kj_record *r);
int kj_jnl_serialize(struct kj_journal *j, struct kj_record *r);
int kj_jnl_insert_record(struct kj_journal *j, const struct kj_record *r,
			 int n);
/* A device record of an attempt must name its reservation's credential
 * and serial (the bulk flush closes the reservation by them). */
int kj_jnl_check_attempt(struct kj_journal *j, const struct kj_record *r);

/* journal_resv.c: load the job's used credential indexes (resume). */
int kj_jnl_load_used(struct kj_journal *j);

/* journal_bulk.c: what is written in bulk (schema versions 2 and 3).
 * Close the reservations that records closed, copy into cert_used and
 * uid_seen what was reserved and recorded since the last flush; the
 * caller holds the write transaction.  Logs; a negative errno. */
int kj_jnl_bulk_catch_up(struct kj_journal *j);
/* The same once flush_every records were appended since the last one. */
int kj_jnl_bulk_maybe(struct kj_journal *j);
/* Note the ok record r (appended, not yet copied) for uid_done. */
int kj_jnl_note_ok(struct kj_journal *j, const struct kj_record *r);
void kj_jnl_bulk_free(struct kj_journal *j);
/* The reservation res is open on this handle (kj_journal_reserve). */
int kj_jnl_open_add(struct kj_journal *j, const struct kj_reservation *res);
/* Device record r closes its reservation: it must be open on this handle
 * with r's credential and serial (-EINVAL, logged, if not). */
int kj_jnl_open_take(struct kj_journal *j, const struct kj_record *r);
void kj_jnl_open_free(struct kj_journal *j);
/* SQL function kj_open(attempt) on the handle's connection (read-write). */
int kj_jnl_open_register(struct kj_journal *j);

/* journal_stale.c: burn the reservations a crash left open, then commit. */
int kj_jnl_burn_stale(struct kj_journal *j);

/* journal_query.c: the indexes audit queries need (read-write opens). */
int kj_jnl_query_indexes(struct kj_journal *j);

/* journal_ckpt.c: WAL checkpoints on a thread of their own. */
int kj_jnl_ckpt_start(struct kj_journal *j);
void kj_jnl_ckpt_stop(struct kj_journal *j);

static inline void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Records cap integers at 2^53; SQLite holds signed 64-bit. */
static inline void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

#endif
