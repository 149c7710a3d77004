// SPDX-License-Identifier: Apache-2.0
/*
 * The journal's schema versions 2 and 3 (docs/JOURNAL.md "Schema"): a
 * version 1 journal written by the old code
 * (tests/unit/data/journal_v1.sql, its dump, made by
 * tests/unit/data/journal_v1.c) still opens read-only as it is, and a
 * read-write open migrates it without changing a byte of what evidence is
 * made of; a newer version is refused with a message; and the
 * certificates other jobs reserved and the records of a uid are found
 * through cert_used and uid_seen, filled in bulk at job begin and end,
 * not per device.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "journal/journal.h"
#include "journal/journal_query.h"
#include "journal/record.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/kj-jschema.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/*
 * The version 1 journal, rebuilt from its SQL dump (`sqlite3 .dump` of
 * what the old code wrote, plus its user_version): the same schema text
 * and rows, byte for byte, kept as reviewable text rather than a binary.
 */
static void copy_fixture(void)
{
	const char *src = getenv("KJ_SRCDIR") ? getenv("KJ_SRCDIR") : ".";
	char path[512];
	uint8_t *sql;
	size_t len;
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/tests/unit/data/journal_v1.sql", src);
	assert_int_equal(kj_read_file(path, 1 << 20, &sql, &len), 0);
	sql = realloc(sql, len + 1);
	assert_non_null(sql);
	sql[len] = 0;
	snprintf(path, sizeof(path), "%s/journal.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL,
				      NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, (const char *)sql, NULL, NULL,
				      NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	free(sql);
}

/* One integer from the journal file, read with SQLite directly. */
static long long sql_int(const char *sql)
{
	char path[128];
	sqlite3_stmt *st;
	sqlite3 *db;
	long long v = -1;

	snprintf(path, sizeof(path), "%s/journal.db", dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
					 NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
			 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Everything evidence is made of, as bytes: records, events, checkpoints. */
struct dump {
	char *buf;
	size_t len;
	FILE *f;
};

static int rec_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct dump *d = ctx;

	fprintf(d->f, "%llu:", (unsigned long long)seq);
	fwrite(jcs, 1, len, d->f);
	fputc('\n', d->f);
	return 0;
}

static int ev_cb(void *ctx, uint64_t index, uint32_t epoch, uint32_t pcr,
		 const char *name, const uint8_t digest[32], bool is_void)
{
	struct dump *d = ctx;

	fprintf(d->f, "ev %llu %u %u %s %d ", (unsigned long long)index,
		epoch, pcr, name, is_void);
	fwrite(digest, 1, 32, d->f);
	return 0;
}

static int ck_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	struct dump *d = ctx;

	fprintf(d->f, "ck %llu %llu %llu %u %llu %x %llu ",
		(unsigned long long)c->id, (unsigned long long)c->tree_size,
		(unsigned long long)c->nv_counter, c->epoch,
		(unsigned long long)c->event_log_length, c->pcr_mask,
		(unsigned long long)c->time_ms);
	fwrite(c->root, 1, 32, d->f);
	fwrite(c->quote_attest, 1, c->attest_len, d->f);
	fwrite(c->quote_sig, 1, c->sig_len, d->f);
	fwrite(c->pcrs, 1, sizeof(c->pcrs), d->f);
	return 0;
}

static void dump(struct kj_journal *j, struct dump *d)
{
	struct dump tmp = { 0 };

	tmp.f = open_memstream(&tmp.buf, &tmp.len);
	assert_non_null(tmp.f);
	assert_int_equal(kj_journal_foreach_record(j, 0, NULL, rec_cb, &tmp),
			 0);
	assert_int_equal(kj_journal_foreach_event(j, ev_cb, &tmp), 0);
	assert_int_equal(kj_journal_foreach_checkpoint(j, 0, ck_cb, &tmp), 0);
	fclose(tmp.f);
	*d = tmp;
}

static int first_lines(void *ctx, uint64_t seq, const uint8_t *jcs,
		       size_t len)
{
	struct dump *d = ctx;

	return seq < 6 ? rec_cb(d, seq, jcs, len) : 0;
}

static void desc(struct kj_job_desc *d, const char *job, int wo,
		 struct kj_cred_ref *creds, size_t n)
{
	memset(d, 0, sizeof(*d));
	d->job = job;
	d->customer = "acme";
	d->product = "acme-sensor";
	d->batch = "LOT-9";
	d->operator_id = "op1";
	memset(d->work_order_sha256, wo, 32);
	memset(d->creds_sha256, 0xc1, 32);
	d->quantity = 100;
	d->fw_version = "1.0.0";
	d->serial_prefix = "S";
	d->serial_start = 1;
	d->creds = creds;
	d->n_creds = n;
}

/* A new handle on dir with job `job' begun and committed. */
static struct kj_journal *begin(const char *job, int wo,
				struct kj_cred_ref *creds, size_t n)
{
	struct kj_journal *j;
	struct kj_job_desc d;

	desc(&d, job, wo, creds, n);
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	return j;
}

/* A reader opens a version 1 journal as it is and does not upgrade it. */
static void test_v1_readonly(void **state)
{
	struct kj_journal *j;
	struct dump d;

	(void)state;
	copy_fixture();
	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &j), 0);
	assert_int_equal(kj_journal_record_count(j), 6);
	dump(j, &d);
	assert_non_null(memmem(d.buf, d.len, "\"result\":\"readback\"", 19));
	assert_non_null(memmem(d.buf, d.len, "ck 0 3 7 1 1 8000 ", 18));
	free(d.buf);
	kj_journal_close(j);
	assert_int_equal(sql_int("PRAGMA user_version"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM sqlite_schema WHERE "
				 "name = 'reservations_cert'"), 1);
}

/*
 * A read-write open migrates: version 3, cert_used holds every
 * reservation's certificate, the two indexes gone; the records, events
 * and checkpoints are the same bytes (the crash's open reservation is
 * burned after them, as before); a new job on the same batch skips the
 * five certificates the old jobs reserved.
 */
static void test_v1_migrate(void **state)
{
	struct dump before, after = { 0 };
	struct kj_reservation res;
	struct kj_journal *j;
	struct kj_cred_ref creds[8];
	struct kj_record r;

	(void)state;
	copy_fixture();
	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &j), 0);
	dump(j, &before);
	kj_journal_close(j);

	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	kj_journal_close(j);
	assert_int_equal(sql_int("PRAGMA user_version"), 3);
	assert_int_equal(sql_int("SELECT count(*) FROM cert_used"), 5);
	assert_int_equal(sql_int("SELECT count(*) FROM cert_used WHERE job = "
				 "'WO-A'"), 3);
	assert_int_equal(sql_int("SELECT CAST(value AS INTEGER) FROM meta "
				 "WHERE key = 'cert_used_attempt'"), 6);
	/* the four old records' uids, and the burned one's: the open's
	 * flush after the burn copied it (schema 3) */
	assert_int_equal(sql_int("SELECT count(*) FROM uid_seen"), 5);
	assert_int_equal(sql_int("SELECT count(*) FROM sqlite_schema WHERE "
				 "name IN ('reservations_cert', 'records_uid', "
				 "'records_serial')"), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM records WHERE result "
				 "= 'interrupted' AND seq = 6"), 1);
	/* version 3: the mark of the reservations closed in bulk, set at
	 * the migration (every old record closed its own) and moved past
	 * the burned record, which closed the last one */
	assert_int_equal(sql_int("SELECT CAST(value AS INTEGER) FROM meta "
				 "WHERE key = 'resv_done_seq'"), 7);
	assert_int_equal(sql_int("SELECT count(*) FROM reservations WHERE "
				 "state = 'reserved'"), 0);

	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &j), 0);
	{
		struct dump recs = { 0 }, rest;

		recs.f = open_memstream(&recs.buf, &recs.len);
		assert_int_equal(kj_journal_foreach_record(j, 0, NULL,
							   first_lines, &recs),
				 0);
		rest.f = recs.f;
		assert_int_equal(kj_journal_foreach_event(j, ev_cb, &rest), 0);
		assert_int_equal(kj_journal_foreach_checkpoint(j, 0, ck_cb,
							       &rest), 0);
		fclose(recs.f);
		after = recs;
	}
	kj_journal_close(j);
	assert_int_equal(after.len, before.len);
	assert_memory_equal(after.buf, before.buf, before.len);
	free(before.buf);
	free(after.buf);

	/* The fixture's batch under a third work order. */
	for (unsigned i = 0; i < 8; i++) {
		creds[i].index = 500 + i;
		memset(creds[i].cert_sha256, 0xa0 + (int)i, 32);
	}
	j = begin("WO-C", 0x33, creds, 8);
	memset(&r, 0, sizeof(r));
	r.kind = KJ_REC_DEVICE;
	r.site = "line1";
	r.uid[0] = 0x77;
	r.uid_len = 1;
	r.hwrev = "B";
	assert_int_equal(kj_journal_reserve(j, &r, &res), 0);
	assert_int_equal(res.cred_index, 505);
	assert_int_equal(kj_journal_commit(j), 0);
	kj_journal_close(j);
}

/* A journal from a newer kinject: refused, not guessed at. */
static void test_newer_refused(void **state)
{
	struct kj_journal *j;
	char path[128];
	sqlite3 *db;

	(void)state;
	copy_fixture();
	snprintf(path, sizeof(path), "%s/journal.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 4", NULL,
				      NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(kj_journal_open(dir, 0, &j), -EPROTO);
	assert_null(j);
	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &j), -EPROTO);
	assert_int_equal(sql_int("PRAGMA user_version"), 4);
}

static uint64_t device(struct kj_journal *j, unsigned n, uint64_t *cred)
{
	struct kj_reservation res;
	struct kj_record r;

	memset(&r, 0, sizeof(r));
	r.kind = KJ_REC_DEVICE;
	r.site = "line1";
	r.uid[0] = (uint8_t)n;
	r.uid[1] = 0x42;
	r.uid_len = 2;
	r.hwrev = "B";
	assert_int_equal(kj_journal_reserve(j, &r, &res), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	kj_record_set_reservation(&r, &res);
	r.result = KJ_RES_OK;
	r.has_readback = true;
	assert_int_equal(kj_journal_append_record(j, &r, NULL, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	*cred = res.cred_index;
	return res.attempt;
}

/*
 * cert_used takes a job's certificates at its end (and, after a crash, at
 * the next job's begin), never one per reservation; another job still
 * skips them, and the job itself, resumed, goes on with its own batch.
 */
static void test_cert_used_bulk(void **state)
{
	struct kj_cred_ref creds[10];
	struct kj_journal *j;
	uint64_t cred;

	(void)state;
	for (unsigned i = 0; i < 10; i++) {
		creds[i].index = i;
		memset(creds[i].cert_sha256, 0x40 + (int)i, 32);
	}
	j = begin("J1", 1, creds, 10);
	for (unsigned i = 0; i < 3; i++)
		device(j, i, &cred);
	assert_int_equal(sql_int("SELECT count(*) FROM cert_used"), 0);
	assert_int_equal(kj_journal_job_end(j, NULL, NULL, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM cert_used WHERE job = "
				 "'J1'"), 3);
	kj_journal_close(j);

	/* J2 skips J1's three, reserves two and "crashes" (no end). */
	j = begin("J2", 2, creds, 10);
	device(j, 10, &cred);
	assert_int_equal(cred, 3);
	device(j, 11, &cred);
	assert_int_equal(cred, 4);
	assert_int_equal(sql_int("SELECT count(*) FROM cert_used"), 3);
	kj_journal_close(j);

	/* J3's begin copies J2's; J2 resumed reserves its next own. */
	j = begin("J3", 3, creds, 10);
	assert_int_equal(sql_int("SELECT count(*) FROM cert_used"), 5);
	device(j, 20, &cred);
	assert_int_equal(cred, 5);
	kj_journal_close(j);
	j = begin("J2", 2, creds, 10);
	device(j, 12, &cred);
	assert_int_equal(cred, 6);
	kj_journal_close(j);
	assert_int_equal(sql_int("SELECT count(*) FROM cert_used"), 6);
}

static int count_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	(void)seq;
	(void)jcs;
	(void)len;
	++*(int *)ctx;
	return 0;
}

/* Records with uid {n, 0x42}, read by a reader as `audit recall' does. */
static int recall(unsigned n)
{
	uint8_t uid[2] = { (uint8_t)n, 0x42 };
	struct kj_journal_filter f = { .uid = uid, .uid_len = 2 };
	struct kj_journal *r;
	int count = 0;

	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &r), 0);
	assert_int_equal(kj_journal_query(r, &f, count_cb, &count), 0);
	kj_journal_close(r);
	return count;
}

static int done(struct kj_journal *j, unsigned n)
{
	uint8_t uid[2] = { (uint8_t)n, 0x42 };

	return kj_journal_uid_done(j, uid, 2);
}

/*
 * DUPLICATE and recall by uid, whether the record is in uid_seen (an
 * earlier run's, copied at job begin) or only noted in memory (this
 * run's), withdrawn or not; and recall during the job and after its end.
 */
static void test_uid_seen(void **state)
{
	struct kj_cred_ref creds[10];
	struct kj_journal *j;
	uint64_t cred, a1, a3;

	(void)state;
	for (unsigned i = 0; i < 10; i++) {
		creds[i].index = i;
		memset(creds[i].cert_sha256, 0x60 + (int)i, 32);
	}
	j = begin("U1", 1, creds, 10);
	a1 = device(j, 1, &cred);
	device(j, 2, &cred);
	assert_int_equal(done(j, 1), 1);
	assert_int_equal(done(j, 2), 1);
	assert_int_equal(done(j, 3), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM uid_seen"), 0);
	assert_int_equal(recall(1), 1);
	kj_journal_close(j);

	/* Resumed: 1 and 2 are in uid_seen now. */
	j = begin("U1", 1, creds, 10);
	assert_int_equal(sql_int("SELECT count(*) FROM uid_seen"), 2);
	assert_int_equal(done(j, 1), 1);
	assert_int_equal(kj_journal_withdraw(j, a1, NULL, NULL, NULL), 0);
	assert_int_equal(done(j, 1), 0);
	assert_int_equal(done(j, 2), 1);
	a3 = device(j, 3, &cred);
	device(j, 4, &cred);
	assert_int_equal(done(j, 3), 1);
	assert_int_equal(kj_journal_withdraw(j, a3, NULL, NULL, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	assert_int_equal(done(j, 3), 0);
	assert_int_equal(done(j, 4), 1);
	/* The uid of a withdrawn attempt may come again. */
	device(j, 1, &cred);
	assert_int_equal(done(j, 1), 1);
	assert_int_equal(recall(1), 3); /* ok, withdrawn, ok */
	assert_int_equal(recall(2), 1);
	assert_int_equal(recall(3), 2);
	assert_int_equal(recall(4), 1);
	assert_int_equal(recall(5), 0);
	assert_int_equal(kj_journal_job_end(j, NULL, NULL, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	kj_journal_close(j);
	assert_int_equal(sql_int("SELECT count(*) FROM uid_seen"), 7);
	assert_int_equal(recall(1), 3);
	assert_int_equal(recall(3), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_v1_readonly, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_v1_migrate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_newer_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cert_used_bulk, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_uid_seen, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
