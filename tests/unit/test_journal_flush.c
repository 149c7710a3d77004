// SPDX-License-Identifier: Apache-2.0
/*
 * The journal's bulk flush inside the group commit (schema version 3,
 * docs/JOURNAL.md "Schema"): every KJ_JOURNAL_FLUSH_RECORDS records the
 * reservations the records closed are marked `done' and the uids go to
 * uid_seen, so the running job's ok uids held in memory stay bounded
 * however long the job; DUPLICATE is still found across a flush and
 * after a crash between two flushes, and a crash burns exactly the
 * reservations that have no record, not those whose `done' was not
 * written yet.  A small flush interval stands in for the default.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal/journal.h"
#include "journal/record.h"

#define NCREDS 3200
#define FLUSH 64

static char dir[64];
static struct kj_cred_ref creds[NCREDS];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/kj-jflush.XXXXXX");
	for (unsigned i = 0; i < NCREDS; i++) {
		creds[i].index = i;
		memset(creds[i].cert_sha256, 0, 32);
		creds[i].cert_sha256[0] = (uint8_t)i;
		creds[i].cert_sha256[1] = (uint8_t)(i >> 8);
	}
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static long long sql_int(const char *sql)
{
	char path[128];
	sqlite3_stmt *st;
	long long v = -1;
	sqlite3 *db;

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

/* Reservations with no record: what a crash would burn. */
#define OPEN_SQL                                                            \
	"SELECT count(*) FROM reservations WHERE state = 'reserved' AND"    \
	" attempt NOT IN (SELECT attempt FROM records"                      \
	" WHERE attempt IS NOT NULL)"

static struct kj_journal *begin(void)
{
	struct kj_journal *j;
	struct kj_job_desc d = {
		.job = "F1", .customer = "acme", .product = "acme-sensor",
		.batch = "LOT-1", .operator_id = "op1", .quantity = 5000,
		.fw_version = "3.1.5", .serial_prefix = "AS",
		.serial_start = 1, .creds = creds, .n_creds = NCREDS,
	};

	memset(d.work_order_sha256, 0x11, 32);
	memset(d.fw_sha256, 0xf0, 32);
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	kj_journal_set_flush(j, FLUSH);
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	return j;
}

static void hello(struct kj_record *r, unsigned n)
{
	memset(r, 0, sizeof(*r));
	r->kind = KJ_REC_DEVICE;
	r->site = "line1";
	r->socket = (uint16_t)(n % 16);
	r->uid[0] = (uint8_t)(n >> 8);
	r->uid[1] = (uint8_t)n;
	r->uid[2] = 0x77;
	r->uid_len = 3;
	r->hwrev = "B";
}

static int done(struct kj_journal *j, unsigned n)
{
	struct kj_record r;

	hello(&r, n);
	return kj_journal_uid_done(j, r.uid, r.uid_len);
}

/*
 * Devices from..to-1 as a line runs them: `depth' reserved ahead of the
 * records (in flight across commits and flushes), one commit per 8.  A
 * device whose n is a multiple of 7 fails (timeout), the rest are ok.
 * The last `depth' stay open unless drain.  *peak: the most uids held.
 */
static void line(struct kj_journal *j, unsigned from, unsigned to,
		 unsigned depth, bool drain, struct kj_journal_stats *peak)
{
	static struct kj_record fly[16];
	static struct kj_reservation res[16];
	unsigned end = drain ? to + depth : to;

	assert_true(depth <= 16);
	for (unsigned n = from; n < end; n++) {
		struct kj_journal_stats st;

		if (n >= from + depth) {
			unsigned m = n - depth;
			struct kj_record *r = &fly[m % depth];

			kj_record_set_reservation(r, &res[m % depth]);
			r->result = m % 7 ? KJ_RES_OK : KJ_RES_TIMEOUT;
			r->has_readback = r->result == KJ_RES_OK;
			assert_int_equal(kj_journal_append_record(j, r, NULL,
								  NULL), 0);
		}
		if (n < to) {
			hello(&fly[n % depth], n);
			assert_int_equal(kj_journal_reserve(j, &fly[n % depth],
							    &res[n % depth]),
					 0);
		}
		if (n % 8 == 7)
			assert_int_equal(kj_journal_commit(j), 0);
		kj_journal_stats(j, &st);
		if (st.ok_uids_held > peak->ok_uids_held)
			peak->ok_uids_held = st.ok_uids_held;
		if (st.ok_uids_bytes > peak->ok_uids_bytes)
			peak->ok_uids_bytes = st.ok_uids_bytes;
	}
	assert_int_equal(kj_journal_commit(j), 0);
}

/*
 * 1,000 devices, a flush every 64 records: the uids held in memory never
 * exceed one flush's worth and their table does not grow with the job
 * (before the flush it held all the job's ok uids: 858 here, 32 KiB); a
 * uid recorded before any of the flushes is a DUPLICATE still, and every
 * reservation whose record is older than the last flush reads `done'.
 */
static void test_flush_bounded(void **state)
{
	struct kj_journal_stats peak = { 0 }, st;
	struct kj_journal *j;

	(void)state;
	j = begin();
	line(j, 0, 1000, 5, true, &peak);
	kj_journal_stats(j, &st);
	assert_true(peak.ok_uids_held <= FLUSH);
	assert_true(peak.ok_uids_bytes <= 1024 * 16);
	assert_true(st.flushes >= 1000 / FLUSH);
	/* flushed in the transactions that held the records */
	assert_true(sql_int("SELECT count(*) FROM uid_seen") >=
		    1000 - FLUSH);
	assert_true(sql_int("SELECT count(*) FROM reservations WHERE state"
			    " = 'reserved'") <= FLUSH + 5);
	assert_int_equal(sql_int(OPEN_SQL), 0);
	/* DUPLICATE across the flushes: ok ones only */
	assert_int_equal(done(j, 1), 1);
	assert_int_equal(done(j, 7), 0);
	assert_int_equal(done(j, 500), 1);
	assert_int_equal(done(j, 999), 1);
	assert_int_equal(done(j, 1000), 0);
	/* the next 2,000 devices: the table stays the size it was */
	line(j, 1000, 3000, 5, true, &peak);
	assert_true(peak.ok_uids_held <= FLUSH);
	assert_true(peak.ok_uids_bytes <= 1024 * 16);
	assert_int_equal(done(j, 2) + done(j, 2999), 2);
	assert_int_equal(kj_journal_job_end(j, NULL, NULL, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	kj_journal_close(j);
	assert_int_equal(sql_int("SELECT count(*) FROM reservations WHERE "
				 "state = 'reserved'"), 0);
}

/*
 * A crash between two flushes: records since the last flush closed their
 * reservations in memory only.  The next open burns exactly the
 * reservations without a record (the three in flight), marks the others
 * `done' and rebuilds the DUPLICATE lookup from the journal.
 */
static void test_flush_crash(void **state)
{
	struct kj_journal_stats peak = { 0 };
	struct kj_journal *j;
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		j = begin();
		/* 300 devices: the last flush at record 256 or so, then 40
		 * more records whose reservations still read `reserved' */
		line(j, 0, 300, 3, false, &peak);
		if (sql_int("SELECT count(*) FROM reservations WHERE state ="
			    " 'reserved'") <= 3 || sql_int(OPEN_SQL) != 3)
			_exit(2);
		_exit(0); /* no close: a crash after the last commit */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	j = begin();
	assert_int_equal(sql_int("SELECT count(*) FROM records WHERE result ="
				 " 'interrupted'"), 3);
	assert_int_equal(sql_int("SELECT count(*) FROM reservations WHERE "
				 "state = 'reserved'"), 0);
	assert_int_equal(done(j, 1), 1);
	assert_int_equal(done(j, 296), 1);
	assert_int_equal(done(j, 297), 0); /* interrupted, not ok */
	assert_int_equal(done(j, 299), 0);
	/* the resumed job goes on, flushing as before */
	line(j, 300, 400, 4, false, &peak);
	assert_int_equal(sql_int(OPEN_SQL), 4);
	assert_int_equal(done(j, 395), 1);
	assert_int_equal(done(j, 398), 0); /* in flight */
	kj_journal_close(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flush_bounded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flush_crash, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
