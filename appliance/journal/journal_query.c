// SPDX-License-Identifier: Apache-2.0
/*
 * The journal's read-only queries (journal_query.h): jobs with their
 * counts, and records by filter for `kinject audit export|recall'.  The
 * WHERE clause is built from the criteria that are set only, never as
 * `?1 IS NULL OR ...', because SQLite cannot use an index through such an
 * OR: a recall by serial must stay an index lookup on a million records.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "journal_query.h"
#include "base/log.h"
#include "journal_int.h"

/*
 * Indexes the queries need beyond the writer's own (docs/JOURNAL.md).
 * IF NOT EXISTS: a journal made by an older kinject gets them at its next
 * read-write open; readers do without (correct, only slower).
 */
int kj_jnl_query_indexes(struct kj_journal *j)
{
	static const char sql[] =
		"CREATE INDEX IF NOT EXISTS records_serial_nocase"
		" ON records(serial COLLATE NOCASE) WHERE serial IS NOT NULL;";
	int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : kj_jnl_sql_err(j, rc, "create indexes");
}

/* ---- jobs ------------------------------------------------------------------ */

/* One pass over the records (or over one job's, by its index) for all
 * the counts, rather than a subquery per count and job. */
static const char jobs_sql[] =
	"SELECT j.job, j.customer, j.product, j.batch, j.operator,"
	" j.fw_version, j.serial_prefix, j.state, j.work_order_sha256,"
	" j.fw_sha256, j.quantity, j.created_ms,"
	" a.ok, a.failed, a.n, a.fs, a.ls, a.ft, a.lt"
	" FROM jobs j LEFT JOIN (SELECT job,"
	"  sum(kind = 'device' AND result = 'ok') AS ok,"
	"  sum(kind = 'device' AND result != 'ok') AS failed,"
	"  count(*) AS n, min(seq) AS fs, max(seq) AS ls,"
	"  min(time_ms) AS ft, max(time_ms) AS lt"
	"  FROM records%s GROUP BY job) a ON a.job = j.job%s"
	" ORDER BY j.created_ms, j.rowid";

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

static void col_hash(sqlite3_stmt *st, int i, uint8_t out[32])
{
	memset(out, 0, 32);
	if (sqlite3_column_bytes(st, i) == 32)
		memcpy(out, sqlite3_column_blob(st, i), 32);
}

static void job_row(sqlite3_stmt *st, struct kj_journal_job_info *ji)
{
	memset(ji, 0, sizeof(*ji));
	ji->job = col_text(st, 0);
	ji->customer = col_text(st, 1);
	ji->product = col_text(st, 2);
	ji->batch = col_text(st, 3);
	ji->operator_id = col_text(st, 4);
	ji->fw_version = col_text(st, 5);
	ji->serial_prefix = col_text(st, 6);
	ji->state = col_text(st, 7);
	col_hash(st, 8, ji->work_order_sha256);
	col_hash(st, 9, ji->fw_sha256);
	ji->quantity = (uint64_t)sqlite3_column_int64(st, 10);
	ji->created_ms = (uint64_t)sqlite3_column_int64(st, 11);
	ji->ok = (uint64_t)sqlite3_column_int64(st, 12);
	ji->failed = (uint64_t)sqlite3_column_int64(st, 13);
	ji->records = (uint64_t)sqlite3_column_int64(st, 14);
	ji->first_seq = (uint64_t)sqlite3_column_int64(st, 15);
	ji->last_seq = (uint64_t)sqlite3_column_int64(st, 16);
	ji->first_ms = (uint64_t)sqlite3_column_int64(st, 17);
	ji->last_ms = (uint64_t)sqlite3_column_int64(st, 18);
}

int kj_journal_foreach_job(struct kj_journal *j, const char *job,
			   kj_journal_job_cb cb, void *ctx)
{
	struct kj_journal_job_info ji;
	sqlite3_stmt *st;
	char *sql;
	int rc, ret = 0, n = 0;

	sql = sqlite3_mprintf(jobs_sql, job ? " WHERE job = ?1" : "",
			      job ? " WHERE j.job = ?1" : "");
	if (!sql) {
		kj_err("%s: out of memory", j->path);
		return -ENOMEM;
	}
	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	sqlite3_free(sql);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "list jobs");
	if (job)
		bind_text(st, 1, job);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		job_row(st, &ji);
		n++;
		ret = cb(ctx, &ji);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = kj_jnl_sql_err(j, rc, "list jobs");
	sqlite3_finalize(st);
	return ret < 0 ? ret : n;
}

/* ---- records by filter ------------------------------------------------------ */

static void append_kinds(sqlite3_str *s, unsigned kinds)
{
	const char *sep = "";

	sqlite3_str_appendall(s, " AND kind IN (");
	for (int k = KJ_REC_JOB_START; k <= KJ_REC_JOB_END; k++) {
		if (!(kinds & KJ_KIND_BIT(k)))
			continue;
		sqlite3_str_appendf(s, "%s'%s'", sep, kj_record_kind_name(k));
		sep = ", ";
	}
	sqlite3_str_appendall(s, ")");
}

/* " WHERE ..." of f; parameters are named so binding needs no count. */
static void append_where(sqlite3_str *s, const struct kj_journal_filter *f,
			 int schema)
{
	bool by_job = f->has_fw_sha256 || f->fw_version || f->batch;

	sqlite3_str_appendall(s, " WHERE 1");
	if (f->job)
		sqlite3_str_appendall(s, " AND job = :job");
	if (f->kinds && f->kinds != KJ_KINDS_ALL)
		append_kinds(s, f->kinds);
	if (f->ok_only)
		sqlite3_str_appendall(s, " AND kind = 'device' AND"
				      " result = 'ok'");
	if (f->since_ms)
		sqlite3_str_appendall(s, " AND time_ms >= :since");
	if (f->until_ms)
		sqlite3_str_appendall(s, " AND time_ms < :until");
	if (f->serial)
		sqlite3_str_appendall(s, " AND serial = :serial"
				      " COLLATE NOCASE");
	/* Version 2: uid_seen up to meta uid_seen_seq, the rest (the
	 * running job's records, journal_bulk.c) by scanning them. */
	if (f->uid && schema >= 2)
		sqlite3_str_appendall(s, " AND seq IN (SELECT seq FROM uid_seen"
				      " WHERE uid = :uid UNION ALL SELECT seq"
				      " FROM records WHERE seq >= :uidtail"
				      " AND uid = :uid)");
	else if (f->uid)
		sqlite3_str_appendall(s, " AND uid = :uid");
	if (!by_job)
		return;
	sqlite3_str_appendall(s, " AND job IN (SELECT job FROM jobs WHERE 1");
	if (f->has_fw_sha256)
		sqlite3_str_appendall(s, " AND fw_sha256 = :fwsha");
	if (f->fw_version)
		sqlite3_str_appendall(s, " AND fw_version = :fwver");
	if (f->batch)
		sqlite3_str_appendall(s, " AND batch = :batch COLLATE NOCASE");
	sqlite3_str_appendall(s, ")");
}

static void bind_named_text(sqlite3_stmt *st, const char *name, const char *v)
{
	int i = sqlite3_bind_parameter_index(st, name);

	if (i)
		bind_text(st, i, v);
}

static void bind_filter(sqlite3_stmt *st, const struct kj_journal_filter *f,
			uint64_t uidtail)
{
	int i;

	bind_named_text(st, ":job", f->job);
	bind_named_text(st, ":serial", f->serial);
	bind_named_text(st, ":fwver", f->fw_version);
	bind_named_text(st, ":batch", f->batch);
	if ((i = sqlite3_bind_parameter_index(st, ":since")))
		bind_u64(st, i, f->since_ms);
	if ((i = sqlite3_bind_parameter_index(st, ":until")))
		bind_u64(st, i, f->until_ms);
	if ((i = sqlite3_bind_parameter_index(st, ":uid")))
		sqlite3_bind_blob(st, i, f->uid, (int)f->uid_len,
				  SQLITE_STATIC);
	if ((i = sqlite3_bind_parameter_index(st, ":uidtail")))
		bind_u64(st, i, uidtail);
	if ((i = sqlite3_bind_parameter_index(st, ":fwsha")))
		sqlite3_bind_blob(st, i, f->fw_sha256, 32, SQLITE_STATIC);
}

static int prepare_filter(struct kj_journal *j, const char *head,
			  const struct kj_journal_filter *f, const char *tail,
			  sqlite3_stmt **st)
{
	sqlite3_str *s = sqlite3_str_new(j->db);
	uint64_t uidtail = 0;
	char *sql;
	int rc;

	if (f->uid && j->schema >= 2)
		KJ_TRY(kj_jnl_query_u64(j, "SELECT CAST(value AS INTEGER) FROM"
					" meta WHERE key = 'uid_seen_seq'", NULL,
					&uidtail));
	sqlite3_str_appendall(s, head);
	append_where(s, f, j->schema);
	sqlite3_str_appendall(s, tail);
	sql = sqlite3_str_finish(s);
	if (!sql) {
		kj_err("%s: out of memory", j->path);
		return -ENOMEM;
	}
	rc = sqlite3_prepare_v2(j->db, sql, -1, st, NULL);
	sqlite3_free(sql);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "query records");
	bind_filter(*st, f, uidtail);
	return 0;
}

int kj_journal_query(struct kj_journal *j, const struct kj_journal_filter *f,
		     kj_journal_record_cb cb, void *ctx)
{
	sqlite3_stmt *st;

	KJ_TRY(prepare_filter(j, "SELECT seq, jcs FROM records", f,
			      " ORDER BY seq", &st));
	return kj_jnl_step_leaves(j, st, cb, ctx, "query records");
}

int kj_journal_query_counts(struct kj_journal *j,
			    const struct kj_journal_filter *f,
			    kj_journal_count_cb cb, void *ctx)
{
	sqlite3_stmt *st;
	int rc, ret = 0, n = 0;

	KJ_TRY(prepare_filter(j, "SELECT job, count(*), min(seq)"
			      " FROM records", f,
			      " GROUP BY job ORDER BY 3", &st));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		ret = cb(ctx, col_text(st, 0),
			 (uint64_t)sqlite3_column_int64(st, 1));
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = kj_jnl_sql_err(j, rc, "count records");
	sqlite3_finalize(st);
	return ret < 0 ? ret : n;
}
