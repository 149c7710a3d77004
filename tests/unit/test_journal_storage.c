// SPDX-License-Identifier: Apache-2.0
/*
 * The journal's use of its disk: group commit (one transaction for many
 * devices, the rate printed), the WAL kept near its bound by background
 * checkpoints, and a full disk (a small tmpfs; skipped when mounting is
 * not allowed): -ENOSPC, then resumed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "evidence/audit.h"
#include "journal/journal.h"
#include "journal/record.h"

#include "journal_fx.h"

/* Group commit: many devices, one transaction; prints the rate. */
static void test_group_commit_rate(void **state)
{
	enum { N = 3000, GROUP = 100 };
	static struct kj_cred_ref many[N];
	struct kj_journal *j;
	struct kj_job_desc d;
	struct kj_record r;
	struct kj_journal_stats st;
	struct timespec t0, t1;
	double s;

	(void)state;
	for (unsigned i = 0; i < N; i++)
		many[i].index = i;
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-RATE", 0x77);
	d.creds = many;
	d.n_creds = N;
	d.quantity = N;
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < N; i += GROUP) {
		struct kj_record rs[GROUP];
		struct kj_reservation ress[GROUP];

		for (unsigned k = 0; k < GROUP; k++)
			reserve(j, i + k, &rs[k], &ress[k]);
		assert_int_equal(kj_journal_commit(j), 0);
		for (unsigned k = 0; k < GROUP; k++)
			finish(j, &rs[k], KJ_RES_OK);
		assert_int_equal(kj_journal_commit(j), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	kj_journal_stats(j, &st);
	s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("journal: %u devices (reserve + record), groups of %u: "
	       "%.0f devices/s, %llu commits, %llu fsyncs (%.0f fsyncs/s)\n",
	       N, GROUP, N / s, (unsigned long long)st.commits,
	       (unsigned long long)st.fsyncs, (double)st.fsyncs / s);
	hello(&r, 1);
	assert_int_equal(kj_journal_uid_done(j, r.uid, r.uid_len), 1);
	kj_journal_close(j);
}

/* Background WAL checkpoints keep the WAL near 1000 pages (it restarts). */
static void test_wal_bounded(void **state)
{
	enum { N = 12000, GROUP = 200 };
	static struct kj_cred_ref many[N];
	struct kj_journal *j;
	struct kj_job_desc d;
	struct kj_record rs[GROUP];
	struct kj_reservation ress[GROUP];
	char wal[128];
	struct stat sb;
	off_t max = 0;

	(void)state;
	for (unsigned i = 0; i < N; i++)
		many[i].index = i;
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-WAL", 0x88);
	d.creds = many;
	d.n_creds = N;
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	snprintf(wal, sizeof(wal), "%s/journal.db-wal", dir);
	for (unsigned i = 0; i < N; i += GROUP) {
		for (unsigned k = 0; k < GROUP; k++)
			reserve(j, i + k, &rs[k], &ress[k]);
		for (unsigned k = 0; k < GROUP; k++)
			finish(j, &rs[k], KJ_RES_OK);
		assert_int_equal(kj_journal_commit(j), 0);
		assert_int_equal(stat(wal, &sb), 0);
		if (sb.st_size > max)
			max = sb.st_size;
	}
	printf("journal: %u devices: WAL at most %lld KiB\n", N,
	       (long long)max / 1024);
	/* Never restarted it would pass 15 MiB here. */
	assert_true(max < 8 * 1024 * 1024);
	kj_journal_close(j);
}

/* A full disk: a 192 KiB tmpfs as the state dir. */
static void test_disk_full(void **state)
{
	static struct kj_cred_ref many[4000];
	char mnt[80], opts[] = "size=192k";
	struct kj_job_desc d;
	struct kj_journal *j;
	struct kj_job_state st;
	struct kj_record r;
	struct kj_reservation res;
	uint64_t committed = 1;
	int rc = 0;
	unsigned i;

	(void)state;
	snprintf(mnt, sizeof(mnt), "%s/full", dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, opts) < 0) {
		printf("journal: cannot mount a tmpfs (%s): skipping the "
		       "full-disk case\n", strerror(errno));
		skip();
	}

	for (i = 0; i < 4000; i++)
		many[i].index = i;
	assert_int_equal(kj_journal_open(mnt, 0, &j), 0);
	desc(&d, "WO-FULL", 0x66);
	d.creds = many;
	d.n_creds = 4000;
	d.quantity = 4000;
	assert_int_equal(kj_journal_job_begin(j, &d, &st), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	for (i = 0; i < 4000 && !rc; i++) {
		hello(&r, i);
		rc = kj_journal_reserve(j, &r, &res);
		if (!rc)
			rc = kj_journal_commit(j);
		if (rc)
			break;
		kj_record_set_reservation(&r, &res);
		r.result = KJ_RES_OK;
		r.has_readback = true;
		rc = kj_journal_append_record(j, &r, NULL, NULL);
		if (!rc)
			rc = kj_journal_commit(j);
		if (!rc)
			committed++;
	}
	assert_int_equal(rc, -ENOSPC);
	/* Poisoned: nothing more is accepted. */
	assert_int_equal(kj_journal_commit(j), -ENOSPC);
	hello(&r, 9999);
	assert_int_equal(kj_journal_reserve(j, &r, &res), -ENOSPC);
	kj_journal_close(j);
	/* With room again, the journal resumes from what was committed. */
	assert_int_equal(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT,
			       "size=16m"), 0);
	assert_int_equal(kj_journal_open(mnt, 0, &j), 0);
	assert_int_equal(kj_journal_job_begin(j, &d, &st), 0);
	assert_int_equal(st.ok_count, committed - 1);
	assert_true(kj_journal_record_count(j) >= committed);
	kj_journal_close(j);
	printf("journal: disk full after %llu committed records: -ENOSPC, "
	       "resumed after remount\n", (unsigned long long)committed);
	assert_int_equal(umount(mnt), 0);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_group_commit_rate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wal_bounded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
