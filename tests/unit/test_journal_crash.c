// SPDX-License-Identifier: Apache-2.0
/*
 * The journal after real crashes (EVIDENCE.md §1-2): a child killed with
 * SIGKILL mid-job, resumed, three times over, and a torture of random
 * kills; no credential index is used twice across restarts and the
 * records stay gap-free.
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

/*
 * A child runs part of a job: `done` devices finish ok, `open` more are
 * reserved and committed (their credential "left"), one more is reserved
 * but never committed; then it dies by SIGKILL, no cleanup at all.
 */
static void crash_child(unsigned base, unsigned done, unsigned open)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct kj_journal *j;
		struct kj_job_state st;
		struct kj_record r[16];
		struct kj_reservation res[16];
		unsigned k;

		j = open_job("WO-CRASH", &st);
		for (k = 0; k < done + open; k++)
			reserve(j, base + k, &r[k], &res[k]);
		if (kj_journal_commit(j))
			_exit(2);
		for (k = 0; k < done; k++)
			finish(j, &r[k], KJ_RES_OK);
		if (kj_journal_commit(j))
			_exit(2);
		reserve(j, base + 15, &r[15], &res[15]); /* never committed */
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void test_crash_resume(void **state)
{
	struct kj_journal *j;
	struct kj_job_state st;
	struct kj_record r;
	struct kj_reservation res;
	struct collect c = { 0 };

	(void)state;
	crash_child(0, 2, 3);
	/* Reopen: the 3 committed-but-open reservations become interrupted;
	 * the uncommitted one never existed. */
	j = open_job("WO-CRASH", &st);
	assert_true(st.resumed);
	assert_false(st.ended);
	assert_int_equal(st.ok_count, 2);
	assert_int_equal(st.other_count, 3);
	assert_int_equal(st.failed_after_offer, 3);
	assert_int_equal(st.next_serial, 10005);
	assert_int_equal(st.next_job_seq, 6);
	assert_int_equal(st.creds_used, 5);
	assert_int_equal(kj_journal_record_count(j), 6);
	/* The next credential is the 6th of the batch, never a burned one. */
	reserve(j, 100, &r, &res);
	assert_int_equal(res.cred_index, creds[5].index);
	assert_string_equal(res.serial, "AS10005");
	assert_int_equal(res.attempt, 6);
	assert_int_equal(kj_journal_commit(j), 0);
	finish(j, &r, KJ_RES_OK);
	assert_int_equal(kj_journal_commit(j), 0);
	assert_int_equal(kj_journal_foreach_record(j, 0, NULL, collect_cb, &c),
			 0);
	assert_int_equal(c.n, 7);
	assert_int_equal(c.ok, 3);
	assert_int_equal(c.interrupted, 3);
	kj_journal_close(j);
}

static void test_three_restarts(void **state)
{
	struct kj_journal *j;
	struct kj_job_state st;
	struct collect c = { 0 };

	(void)state;
	crash_child(0, 3, 2);
	crash_child(20, 0, 4);
	crash_child(40, 5, 1);
	j = open_job("WO-CRASH", &st);
	assert_int_equal(st.ok_count, 8);
	assert_int_equal(st.other_count, 7);
	assert_int_equal(st.creds_used, 15);
	assert_int_equal(st.creds_left, NCREDS - 15);
	assert_int_equal(st.next_serial, 10015);
	assert_int_equal(kj_journal_foreach_record(j, 0, "WO-CRASH",
						   collect_cb, &c), 0);
	assert_int_equal(c.n, 16);
	assert_int_equal(c.n_used, 15);
	assert_int_equal(c.interrupted, 7);
	/* No reservation is left open after a restart. */
	kj_journal_close(j);
	j = open_job("WO-CRASH", &st);
	assert_int_equal(st.other_count, 7);
	kj_journal_close(j);
}

/*
 * Torture: a child appends as fast as it can (random groups, results and
 * refusals) and is SIGKILLed at a random moment, five times over; then
 * the whole journal must pass `audit verify` (canonical, gap-free seq and
 * job_seq, no credential, serial or attempt twice) and every reservation
 * has exactly one record.
 */
enum { TORTURE_CREDS = 20000 };
static struct kj_cred_ref torture_creds[TORTURE_CREDS];

static void torture_child(unsigned seed)
{
	struct kj_journal *j;
	struct kj_job_desc d;
	struct kj_record r[32];
	struct kj_reservation res[32];
	unsigned n = seed * 100000;

	srand(seed);
	if (kj_journal_open(dir, 0, &j))
		_exit(2);
	desc(&d, "WO-TORTURE", 0x99);
	d.creds = torture_creds;
	d.n_creds = TORTURE_CREDS;
	if (kj_journal_job_begin(j, &d, NULL) || kj_journal_commit(j))
		_exit(2);
	for (;;) {
		unsigned g = 1 + (unsigned)rand() % 32;

		for (unsigned k = 0; k < g; k++) {
			hello(&r[k], n++);
			if (kj_journal_reserve(j, &r[k], &res[k]))
				_exit(0); /* batch exhausted */
			kj_record_set_reservation(&r[k], &res[k]);
		}
		if (kj_journal_commit(j))
			_exit(2);
		for (unsigned k = 0; k < g; k++) {
			r[k].result = rand() % 4 ? KJ_RES_OK : KJ_RES_TIMEOUT;
			r[k].has_readback = r[k].result == KJ_RES_OK;
			if (kj_journal_append_record(j, &r[k], NULL, NULL))
				_exit(2);
			if (rand() % 8 == 0 && kj_journal_commit(j))
				_exit(2);
		}
		hello(&r[0], n++);
		r[0].result = KJ_RES_QUOTA;
		if (kj_journal_append_record(j, &r[0], NULL, NULL) ||
		    kj_journal_commit(j))
			_exit(2);
	}
}

static int count_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	uint64_t *with_cred = ctx;
	struct kj_record r;

	(void)seq;
	assert_int_equal(kj_record_parse(jcs, len, &r), 0);
	*with_cred += r.kind == KJ_REC_DEVICE && r.has_cred;
	kj_record_release(&r);
	return 0;
}

/* Every audit verify line passes but the checkpoint coverage one. */
static void fail_if_more_than_coverage(const char *report)
{
	const char *p = report;
	unsigned fails = 0;

	while ((p = strstr(p, "FAIL "))) {
		fails++;
		p++;
	}
	assert_int_equal(fails, 1);
	assert_non_null(strstr(report, "FAIL records covered by a checkpoint"));
}

static void test_crash_torture(void **state)
{
	struct kj_journal *j;
	struct kj_job_state st;
	struct kj_job_desc d;
	uint64_t with_cred = 0;
	char report[4096];
	FILE *f;

	(void)state;
	for (unsigned i = 0; i < TORTURE_CREDS; i++)
		torture_creds[i].index = i;
	for (unsigned round = 1; round <= 5; round++) {
		pid_t pid = fork();
		int status;

		assert_true(pid >= 0);
		if (pid == 0)
			torture_child(round);
		usleep(20000 + (useconds_t)(rand() % 100000));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status))
			assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-TORTURE", 0x99);
	d.creds = torture_creds;
	d.n_creds = TORTURE_CREDS;
	assert_int_equal(kj_journal_job_begin(j, &d, &st), 0);
	assert_int_equal(kj_journal_foreach_record(j, 0, NULL, count_cb,
						   &with_cred), 0);
	/* Every reservation ever made has exactly one record. */
	assert_int_equal(with_cred, st.creds_used);
	f = fmemopen(report, sizeof(report), "w");
	assert_non_null(f);
	/* No checkpoints in this journal: only the coverage check fails
	 * (SPEC.md §4: a record no quote covers is a failure). */
	assert_int_equal(kj_audit_verify(j, NULL, 0, f), -EBADMSG);
	fclose(f);
	fail_if_more_than_coverage(report);
	printf("journal torture: 5 SIGKILLs, %llu records, %llu "
	       "reservations, %llu ok: audit verify passes but for coverage\n",
	       (unsigned long long)kj_journal_record_count(j),
	       (unsigned long long)st.creds_used,
	       (unsigned long long)st.ok_count);
	kj_journal_close(j);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_resume, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_three_restarts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_crash_torture, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
