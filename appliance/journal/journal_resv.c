// SPDX-License-Identifier: Apache-2.0
/*
 * Reservations, docs/JOURNAL.md "Reservation before bytes": the next
 * credential never reserved in the job, nor (by its certificate's hash) in
 * any other job of this journal, and the next serial, as a row the keeper
 * commits before it sends OFFER.  Apart from the records because they own
 * the used-credential set and the batch cursor.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/array.h"
#include "base/log.h"
#include "journal.h"
#include "journal_int.h"

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
	int rc;

	rc = sqlite3_prepare_v2(j->db, "SELECT cred_index FROM reservations "
				"WHERE job = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return kj_jnl_sql_err(j, rc, "list used credentials");
	bind_text(st, 1, jb->d.job);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (kj_grow(&jb->used, &cap, jb->n_used + 1, 64)) {
			rc = SQLITE_NOMEM;
			break;
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

/*
 * Reserved by another job of this journal: an indexed lookup per
 * candidate rather than a set loaded at job start, since the appliance
 * keeps every job of its ten years and that set would grow without bound.
 * 1 if reserved elsewhere, 0 if not, or a negative errno.
 */
static int cert_used_elsewhere(struct kj_journal *j, const uint8_t h[32])
{
	return kj_jnl_blob_in_job(j, S_CERT_ELSEWHERE, h, 32, 0,
				  "look up other jobs' credentials");
}

/*
 * The next batch position never reserved in this job and whose
 * certificate no other job reserved, or -ENOBUFS.
 */
static int next_cred(struct kj_journal *j, size_t *pos)
{
	struct job *jb = &j->job;

	while (jb->cursor < jb->d.n_creds) {
		const struct kj_cred_ref *c = &jb->d.creds[jb->cursor];
		int rc;

		if (cred_used_before(jb, c->index)) {
			jb->cursor++;
			continue;
		}
		rc = cert_used_elsewhere(j, c->cert_sha256);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			*pos = jb->cursor++;
			return 0;
		}
		jb->skipped++;
		jb->cursor++;
	}
	kj_err("job `%s': credential batch exhausted: all %zu credentials "
	       "are used (%zu of them by other jobs of this appliance: a "
	       "credential is used once, ever)", jb->d.job, jb->d.n_creds,
	       jb->skipped);
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
	/* Open in memory first: every `reserved' row written by this
	 * handle is in its table (journal_bulk.c closes the others). */
	KJ_TRY(kj_jnl_open_add(j, out));
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
