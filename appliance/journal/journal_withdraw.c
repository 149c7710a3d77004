// SPDX-License-Identifier: Apache-2.0
/*
 * `withdrawn` records (EVIDENCE.md §2): an `ok` record is durable before
 * the checkpoint that releases its COMMIT; when the TPM is lost or the
 * keeper dies first, that COMMIT never leaves, and the journal must say
 * so, or its `ok` records would count devices no site saw COMMITted.  The
 * withdrawn record is rebuilt from the ok record's own bytes, so the two
 * cannot disagree on a field.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "base/array.h"
#include "base/log.h"
#include "journal.h"
#include "journal_int.h"

static const char ok_sql[] =
	"SELECT r.jcs, EXISTS(SELECT 1 FROM records w WHERE w.seq > r.seq"
	" AND w.attempt = r.attempt AND w.result = 'withdrawn')"
	" FROM records r WHERE r.job = ?1 AND r.attempt = ?2"
	" AND r.kind = 'device' AND r.result = 'ok'";

/* The ok record of attempt, parsed into r (kj_record_release it). */
static int load_ok(struct kj_journal *j, uint64_t attempt, struct kj_record *r)
{
	sqlite3_stmt *st;
	int rc, done = 0;

	rc = sqlite3_prepare_v2(j->db, ok_sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "find the ok record to withdraw");
	bind_text(st, 1, j->job.d.job);
	bind_u64(st, 2, attempt);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		done = sqlite3_column_int(st, 1);
		rc = done ? -EALREADY :
			    kj_record_parse(sqlite3_column_blob(st, 0),
					    (size_t)sqlite3_column_bytes(st, 0),
					    r);
	} else if (rc == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = kj_jnl_sql_err(j, rc, "find the ok record to withdraw");
	}
	sqlite3_finalize(st);
	if (rc == -ENOENT || rc == -EALREADY)
		kj_err("%s: attempt %llu of job `%s' %s: nothing to withdraw",
		       j->path, (unsigned long long)attempt, j->job.d.job,
		       rc == -ENOENT ? "has no ok record" :
				       "is withdrawn already");
	return rc;
}

int kj_journal_withdraw(struct kj_journal *j, uint64_t attempt,
			uint64_t *seq, const uint8_t **jcs, size_t *len)
{
	struct kj_record r;
	int rc;

	KJ_TRY(kj_jnl_need_job(j));
	KJ_TRY(load_ok(j, attempt, &r));
	r.result = KJ_RES_WITHDRAWN;
	r.time_ms = 0;
	rc = kj_journal_append_record(j, &r, jcs, len);
	if (!rc && seq)
		*seq = r.seq;
	kj_record_release(&r);
	return rc;
}

static const char beyond_sql[] =
	"SELECT r.attempt FROM records r WHERE r.job = ?1 AND r.seq >= ?2"
	" AND r.kind = 'device' AND r.result = 'ok' AND NOT EXISTS"
	" (SELECT 1 FROM records w WHERE w.seq > r.seq"
	" AND w.attempt = r.attempt AND w.result = 'withdrawn')"
	" ORDER BY r.seq";

/* The attempts to withdraw, read before any write. */
static int load_beyond(struct kj_journal *j, uint64_t tree_size,
		       uint64_t **v, size_t *n)
{
	size_t cap = 0;
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(j->db, beyond_sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "list ok records to withdraw");
	bind_text(st, 1, j->job.d.job);
	bind_u64(st, 2, tree_size);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (kj_grow(v, &cap, *n + 1, 64)) {
			rc = SQLITE_NOMEM;
			break;
		}
		(*v)[(*n)++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return kj_jnl_sql_err(j, rc, "list ok records to withdraw");
	return 0;
}

int kj_journal_withdraw_beyond(struct kj_journal *j, uint64_t tree_size,
			       uint64_t *n)
{
	uint64_t *v = NULL;
	size_t count = 0;
	int rc;

	*n = 0;
	if (!j->job.active || j->job.ended)
		return 0; /* no job of this handle to resume */
	rc = load_beyond(j, tree_size, &v, &count);
	for (size_t i = 0; !rc && i < count; i++)
		rc = kj_journal_withdraw(j, v[i], NULL, NULL, NULL);
	free(v);
	if (!rc && count) {
		kj_warn("%s: job `%s': %zu ok record(s) beyond the last durable "
			"checkpoint (tree size %llu) never had their COMMIT "
			"sent: recorded as withdrawn", j->path, j->job.d.job,
			count, (unsigned long long)tree_size);
		rc = kj_journal_commit(j);
	}
	if (!rc)
		*n = count;
	return rc;
}
