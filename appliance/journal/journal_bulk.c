// SPDX-License-Identifier: Apache-2.0
/*
 * What is filled in bulk rather than per device (docs/JOURNAL.md
 * "Schema"): cert_used (did another job reserve this certificate),
 * uid_seen (which records carry this uid: DUPLICATE and recall), and,
 * since schema version 3, the `done' state of the reservations the
 * records closed.  Done per device, each was a write at a random place
 * (a hash, a uid, a reservation made half a second earlier), so each
 * group commit wrote about one B-tree page of each per device to the
 * WAL, most of what a commit wrote.  Instead a flush copies in one sorted
 * pass what was reserved and recorded since the last one, from the meta
 * keys cert_used_attempt, uid_seen_seq and resv_done_seq: at open (before
 * the crash recovery reads the open reservations), at job begin and end,
 * and (all but cert_used) every KJ_JOURNAL_FLUSH_RECORDS records inside
 * the group commit that holds the record, so that what is kept in memory
 * meanwhile stays bounded.  What the tables lack is this handle's own work since the last
 * flush (a handle holds the state dir's lock): the certificate lookup
 * excludes the current job anyway, the ok records this handle appended
 * are noted here in memory (their uid's hash and seq) until the next
 * flush, and a reservation whose record exists is done whatever its row
 * says.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "journal.h"
#include "journal_int.h"

struct copy {
	const char *key;  /* meta key: the first attempt/seq not copied */
	const char *next; /* the first attempt/seq after the last row */
	const char *sql;  /* ?1 = the meta value */
	const char *what;
};

static const struct copy copies[] = {
	{ "cert_used_attempt", "SELECT max(attempt) + 1 FROM reservations",
	  "INSERT OR IGNORE INTO cert_used(cert_sha256, job)"
	  " SELECT cert_sha256, job FROM reservations WHERE attempt >= ?1"
	  " ORDER BY cert_sha256, job",
	  "copy reserved certificates to cert_used" },
	{ "uid_seen_seq", "SELECT max(seq) + 1 FROM records",
	  "INSERT OR IGNORE INTO uid_seen(uid, seq)"
	  " SELECT uid, seq FROM records WHERE seq >= ?1 AND uid IS NOT NULL"
	  " ORDER BY uid, seq",
	  "copy record uids to uid_seen" },
};

/* Run sql with ?1 = v: a write to completion (out NULL) or a one-row
 * count into *out; a SQLite result code. */
static int run_u64(struct kj_journal *j, const char *sql, uint64_t v,
		   uint64_t *out)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	bind_u64(st, 1, v);
	rc = sqlite3_step(st);
	if (out && rc == SQLITE_ROW) {
		*out = (uint64_t)sqlite3_column_int64(st, 0);
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int copy_one(struct kj_journal *j, const struct copy *c)
{
	char mark[128];
	uint64_t from = 0, next = 0;
	int rc;

	snprintf(mark, sizeof(mark), "SELECT CAST(value AS INTEGER) FROM meta"
		 " WHERE key = '%s'", c->key);
	KJ_TRY(kj_jnl_query_u64(j, mark, NULL, &from));
	KJ_TRY(kj_jnl_query_u64(j, c->next, NULL, &next));
	if (from >= next)
		return 0;
	rc = run_u64(j, c->sql, from, NULL);
	if (rc == SQLITE_OK) {
		snprintf(mark, sizeof(mark), "INSERT OR REPLACE INTO meta(key,"
			 " value) VALUES('%s', ?1)", c->key);
		rc = run_u64(j, mark, next, NULL);
	}
	if (rc != SQLITE_OK)
		return kj_jnl_write_failed(j, rc, c->what);
	j->pending++;
	return 0;
}

/*
 * The reservations that the device records from the mark on closed:
 * `done', in one pass.  Every such record (an attempt, not `withdrawn',
 * which repeats an attempt its ok record closed) closes exactly one open
 * reservation whose attempt, job, credential and serial it names, so the
 * rows changed must equal the records counted: anything else is a record
 * without its reservation, a journal this code did not write.  No mark
 * yet: the journal was last written by a version that closed each
 * reservation with its record (schema 1 and 2), so every record so far
 * closed its own.
 */
#define RESV_CLOSING                                                         \
	" FROM records r WHERE r.seq >= ?1 AND r.attempt IS NOT NULL"        \
	" AND r.result != 'withdrawn'"
/* CROSS JOIN: the records from the mark first, each reservation by its
 * attempt (else SQLite walks the open ones and searches the job's
 * records for each). */
static const char *const resv_sql[] = {
	"SELECT count(*)" RESV_CLOSING,
	"SELECT count(*) FROM records r CROSS JOIN reservations v"
	" ON v.attempt = r.attempt WHERE r.seq >= ?1 AND r.attempt IS NOT NULL"
	" AND r.result != 'withdrawn' AND v.state = 'reserved'"
	" AND v.job = r.job AND v.cred_index = r.cred_index"
	" AND v.serial = r.serial",
};

static int close_range(struct kj_journal *j, uint64_t from)
{
	uint64_t want = 0, match = 0;
	int rc;

	rc = run_u64(j, resv_sql[0], from, &want);
	if (rc == SQLITE_OK)
		rc = run_u64(j, resv_sql[1], from, &match);
	if (rc == SQLITE_OK && match == want)
		rc = run_u64(j, "UPDATE reservations SET state = 'done' WHERE"
			     " attempt IN (SELECT r.attempt" RESV_CLOSING ")"
			     " AND state = 'reserved'", from, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_write_failed(j, rc, "close reservations");
	if (match != want || (uint64_t)sqlite3_changes64(j->db) != want) {
		kj_err("%s: of %llu device records from seq %llu on, %llu "
		       "name an open reservation (attempt, job, credential "
		       "and serial): a record without its reservation, or "
		       "two for one; restore the state dir from a backup",
		       j->path, (unsigned long long)want,
		       (unsigned long long)from, (unsigned long long)match);
		return kj_jnl_write_failed(j, SQLITE_CORRUPT,
					   "close reservations");
	}
	return 0;
}

/*
 * While this handle reserves: every row still `reserved' is one of its
 * own reservations (the open's flush closed or burned all others), open
 * in memory until its record came.  So the rows to close are the
 * reserved ones no longer open here, found through the partial index
 * over `reserved' rows and kj_open() (below) rather than by reading the
 * records back, and exactly as many as the records that closed one.
 */
static int close_live(struct kj_journal *j)
{
	int rc = SQLITE_OK;

	if (j->closed_n)
		rc = sqlite3_exec(j->db, "UPDATE reservations SET state = 'done'"
				  " WHERE state = 'reserved'"
				  " AND NOT kj_open(attempt)", NULL, NULL,
				  NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_write_failed(j, rc, "close reservations");
	if (j->closed_n && (uint64_t)sqlite3_changes64(j->db) != j->closed_n) {
		kj_err("%s: %llu records closed a reservation since the last "
		       "flush, %lld rows were closed: a reservation row this "
		       "handle does not know; restore the state dir from a "
		       "backup", j->path, (unsigned long long)j->closed_n,
		       (long long)sqlite3_changes64(j->db));
		return kj_jnl_write_failed(j, SQLITE_CORRUPT,
					   "close reservations");
	}
	j->closed_n = 0;
	rc = run_u64(j, "INSERT OR REPLACE INTO meta(key, value)"
		     " VALUES('resv_done_seq', ?1)", j->next_seq, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_write_failed(j, rc, "close reservations");
	j->pending++;
	return 0;
}

static int close_done(struct kj_journal *j)
{
	uint64_t from = 0, next = 0;
	int rc;

	if (j->st.reservations)
		return close_live(j);
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(seq) + 1 FROM records", NULL,
				&next));
	rc = kj_jnl_query_u64(j, "SELECT CAST(value AS INTEGER) FROM meta"
			      " WHERE key = 'resv_done_seq'", NULL, &from);
	if (rc < 0)
		return rc;
	if (rc == 1 && from >= next)
		return 0;
	if (rc == 0)
		from = next;
	if (from < next)
		KJ_TRY(close_range(j, from));
	rc = run_u64(j, "INSERT OR REPLACE INTO meta(key, value)"
		     " VALUES('resv_done_seq', ?1)", next, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_write_failed(j, rc, "close reservations");
	j->pending++;
	return 0;
}

/* from: the first of copies[] to run */
static int flush(struct kj_journal *j, size_t from)
{
	KJ_TRY(close_done(j));
	for (size_t i = from; i < KJ_ARRAY_SIZE(copies); i++)
		KJ_TRY(copy_one(j, &copies[i]));
	j->okset.n = 0;
	if (j->okset.v)
		memset(j->okset.v, 0, j->okset.cap * sizeof(*j->okset.v));
	j->flushed_seq = j->next_seq;
	j->st.flushes++;
	return 0;
}

int kj_jnl_bulk_catch_up(struct kj_journal *j)
{
	return flush(j, 0);
}

/*
 * Every KJ_JOURNAL_FLUSH_RECORDS records (kj_journal_set_flush): what
 * bounds memory (the ok uids) and the crash recovery's reading (the
 * reservations closed).  Not cert_used: nothing of it is held meanwhile,
 * and its keys are hashes, so a copy touches about one page per row
 * whatever the batch: once per job is the cheapest.
 */
int kj_jnl_bulk_maybe(struct kj_journal *j)
{
	if (j->next_seq - j->flushed_seq < j->flush_every)
		return 0;
	return flush(j, 1);
}

void kj_journal_set_flush(struct kj_journal *j, uint64_t records)
{
	j->flush_every = records ? records : KJ_JOURNAL_FLUSH_RECORDS;
}

/* ---- ok records since the last copy ---------------------------------------- */

static uint64_t uid_hash(const uint8_t *uid, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ uid[i]) * 1099511628211ull;
	return h | 1; /* 0 marks an empty slot */
}

/* Open addressing, linear probing, kept under half full. */
static void okset_put(struct kj_jnl_okset *s, uint64_t hash, uint64_t seq)
{
	size_t i = hash & (s->cap - 1);

	while (s->v[i].hash)
		i = (i + 1) & (s->cap - 1);
	s->v[i].hash = hash;
	s->v[i].seq = seq;
	s->n++;
}

int kj_jnl_note_ok(struct kj_journal *j, const struct kj_record *r)
{
	struct kj_jnl_okset *s = &j->okset;

	if (2 * (s->n + 1) > s->cap) {
		struct kj_jnl_okset g = { .cap = s->cap ? 2 * s->cap : 1024 };

		g.v = calloc(g.cap, sizeof(*g.v));
		if (!g.v) {
			kj_err("%s: out of memory for the job's uids", j->path);
			return -ENOMEM;
		}
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i].hash)
				okset_put(&g, s->v[i].hash, s->v[i].seq);
		free(s->v);
		*s = g;
	}
	okset_put(s, uid_hash(r->uid, r->uid_len), r->seq);
	return 0;
}

void kj_jnl_bulk_free(struct kj_journal *j)
{
	free(j->okset.v);
	memset(&j->okset, 0, sizeof(j->okset));
}

int kj_journal_uid_done(struct kj_journal *j, const uint8_t *uid,
			size_t uid_len)
{
	const struct kj_jnl_okset *s = &j->okset;
	uint64_t h;
	int rc;

	KJ_TRY(kj_jnl_need_job(j));
	rc = kj_jnl_blob_in_job(j, S_UID_DONE, uid, uid_len, 0, "look up uid");
	if (rc || !s->n)
		return rc;
	/* A hash match is checked on the record itself (and whether it
	 * was withdrawn since). */
	h = uid_hash(uid, uid_len);
	for (size_t i = h & (s->cap - 1); s->v[i].hash;
	     i = (i + 1) & (s->cap - 1)) {
		if (s->v[i].hash != h)
			continue;
		rc = kj_jnl_blob_in_job(j, S_UID_DONE_AT, uid, uid_len,
					s->v[i].seq, "look up uid");
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- this handle's open reservations ------------------------------------ */

/*
 * What a closing record must match (its reservation's attempt, credential
 * and serial), now that the row is closed in bulk (above): a record of
 * an attempt not open here is refused at once, as the UPDATE that found
 * no row did.  Open addressing on the attempt (never 0),
 * linear probing with backward-shift deletion, kept under half full:
 * as many entries as devices in flight.
 */
static uint64_t serial_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	return h;
}

static size_t open_home(const struct kj_jnl_open *o, uint64_t attempt)
{
	return (size_t)((attempt * 0x9e3779b97f4a7c15ull) >> 32) &
	       (o->cap - 1);
}

static void open_put(struct kj_jnl_open *o, const struct kj_jnl_open_ent *e)
{
	size_t i = open_home(o, e->attempt);

	while (o->v[i].attempt)
		i = (i + 1) & (o->cap - 1);
	o->v[i] = *e;
	o->n++;
}

int kj_jnl_open_add(struct kj_journal *j, const struct kj_reservation *res)
{
	struct kj_jnl_open *o = &j->open;
	struct kj_jnl_open_ent e = { .attempt = res->attempt,
				     .cred_index = res->cred_index,
				     .serial = serial_hash(res->serial) };

	if (2 * (o->n + 1) > o->cap) {
		struct kj_jnl_open g = { .cap = o->cap ? 2 * o->cap : 256 };

		g.v = calloc(g.cap, sizeof(*g.v));
		if (!g.v) {
			kj_err("%s: out of memory for open reservations",
			       j->path);
			return -ENOMEM;
		}
		for (size_t i = 0; i < o->cap; i++)
			if (o->v[i].attempt)
				open_put(&g, &o->v[i]);
		free(o->v);
		*o = g;
	}
	open_put(o, &e);
	return 0;
}

/* Remove slot i, moving back the entries its probe sequence passed. */
static void open_del(struct kj_jnl_open *o, size_t i)
{
	size_t m = o->cap - 1;

	for (size_t k = (i + 1) & m; o->v[k].attempt; k = (k + 1) & m) {
		size_t h = open_home(o, o->v[k].attempt);

		/* k's entry may move to i unless its home is in (i, k] */
		if (i <= k ? (i < h && h <= k) : (i < h || h <= k))
			continue;
		o->v[i] = o->v[k];
		i = k;
	}
	o->v[i].attempt = 0;
	o->n--;
}

/* The slot of attempt a, or cap if it is not open. */
static size_t open_find(const struct kj_jnl_open *o, uint64_t a)
{
	if (!o->cap)
		return 0;
	for (size_t i = open_home(o, a); o->v[i].attempt;
	     i = (i + 1) & (o->cap - 1))
		if (o->v[i].attempt == a)
			return i;
	return o->cap;
}

int kj_jnl_open_take(struct kj_journal *j, const struct kj_record *r)
{
	struct kj_jnl_open *o = &j->open;
	size_t i = open_find(o, r->attempt);

	if (i < o->cap && o->v[i].cred_index == r->cred_index &&
	    o->v[i].serial == serial_hash(r->serial)) {
		open_del(o, i);
		j->closed_n++;
		return 0;
	}
	kj_err("%s: attempt %llu: no open reservation of job `%s' with "
	       "serial `%s' and credential %llu", j->path,
	       (unsigned long long)r->attempt, r->job, r->serial,
	       (unsigned long long)r->cred_index);
	return -EINVAL;
}

/* kj_open(attempt): 1 while that reservation is open on this handle. */
static void sql_open(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	const struct kj_jnl_open *o = sqlite3_user_data(cx);
	uint64_t a = (uint64_t)sqlite3_value_int64(argv[0]);

	(void)argc;
	sqlite3_result_int(cx, open_find(o, a) < o->cap);
}

int kj_jnl_open_register(struct kj_journal *j)
{
	int rc = sqlite3_create_function_v2(j->db, "kj_open", 1,
					    SQLITE_UTF8 | SQLITE_DIRECTONLY,
					    &j->open, sql_open, NULL, NULL,
					    NULL);

	return rc == SQLITE_OK ? 0 : kj_jnl_sql_err(j, rc, "kj_open()");
}

void kj_jnl_open_free(struct kj_journal *j)
{
	free(j->open.v);
	memset(&j->open, 0, sizeof(j->open));
}
