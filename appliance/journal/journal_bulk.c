// SPDX-License-Identifier: Apache-2.0
/*
 * The lookup tables of schema version 2 that are filled in bulk rather
 * than per device (docs/JOURNAL.md "Schema"): cert_used (did another job
 * reserve this certificate) and uid_seen (which records carry this uid:
 * DUPLICATE and recall).  As indexes on reservations and records they were
 * updated at a random place (a hash, a uid) by every device, so each
 * group commit wrote about one B-tree page of each per device to the
 * WAL, most of what a commit wrote.  Instead, job begin and job end copy
 * in one sorted pass what was reserved and recorded since the last copy,
 * from the meta keys cert_used_attempt and uid_seen_seq.  What the tables
 * lack is this handle's own work since its job began (a handle runs one
 * job, holds the state dir's lock, and its job begin copied all earlier
 * work, a crashed run's included): the certificate lookup excludes the
 * current job anyway, and the ok records this handle appended are noted
 * here in memory (their uid's hash and seq) until the next copy.
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

/* Run sql with ?1 = v to completion; a SQLite result code. */
static int run_u64(struct kj_journal *j, const char *sql, uint64_t v)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	bind_u64(st, 1, v);
	rc = sqlite3_step(st);
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
	rc = run_u64(j, c->sql, from);
	if (rc == SQLITE_OK) {
		snprintf(mark, sizeof(mark), "INSERT OR REPLACE INTO meta(key,"
			 " value) VALUES('%s', ?1)", c->key);
		rc = run_u64(j, mark, next);
	}
	if (rc != SQLITE_OK)
		return kj_jnl_write_failed(j, rc, c->what);
	j->pending++;
	return 0;
}

int kj_jnl_bulk_catch_up(struct kj_journal *j)
{
	for (size_t i = 0; i < KJ_ARRAY_SIZE(copies); i++)
		KJ_TRY(copy_one(j, &copies[i]));
	j->okset.n = 0;
	if (j->okset.v)
		memset(j->okset.v, 0, j->okset.cap * sizeof(*j->okset.v));
	return 0;
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
