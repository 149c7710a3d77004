// SPDX-License-Identifier: Apache-2.0
/*
 * Crash recovery at a read-write open, docs/JOURNAL.md "Crash = burned":
 * every reservation still open becomes an interrupted device record.  A
 * bulk flush first marks `done' the reservations whose records exist
 * (journal_bulk.c), so a row still `reserved' after it has none.  It
 * reads the rows back into memory of its own, so it stands apart from
 * the live job's writes.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "base/array.h"
#include "base/log.h"
#include "journal.h"
#include "journal_int.h"

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
	struct stale *s = NULL;
	size_t cap = 0;
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	*out = NULL;
	rc = sqlite3_prepare_v2(j->db, stale_sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "list open reservations");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (kj_grow(&s, &cap, *n + 1, 16)) {
			rc = SQLITE_NOMEM;
			break;
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
	KJ_TRY(kj_jnl_query_u64(j, "SELECT max(job_seq) FROM records "
				"WHERE job = ?", r.job, &last));
	r.job_seq = last + 1;
	n = kj_jnl_serialize(j, &r);
	if (n < 0)
		return n;
	KJ_TRY(kj_jnl_insert_record(j, &r, n));
	kj_warn("%s: attempt %llu of job `%s' (serial %s, credential %llu) "
		"was in flight at a crash: recorded as interrupted, its "
		"credential burned", j->path, (unsigned long long)s->attempt,
		r.job, r.serial, (unsigned long long)s->cred_index);
	return 0;
}

/* EVIDENCE.md §1: a reserved-but-unfinished index is burned, never reused. */
int kj_jnl_burn_stale(struct kj_journal *j)
{
	struct stale *s = NULL;
	size_t n = 0;
	int rc;

	KJ_TRY(kj_jnl_begin_write(j));
	KJ_TRY(kj_jnl_bulk_catch_up(j));
	rc = load_stale(j, &s, &n);
	for (size_t i = 0; !rc && i < n; i++)
		rc = burn_one(j, &s[i]);
	stale_free(s, n);
	/* the interrupted records close their reservations */
	if (!rc && n)
		rc = kj_jnl_bulk_catch_up(j);
	if (!rc)
		rc = kj_journal_commit(j);
	return rc;
}
