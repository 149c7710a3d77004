// SPDX-License-Identifier: Apache-2.0
/*
 * kinject audit recall, export and jobs on a generated journal of
 * 1,000,000 records (100,000 under ASan; KJ_RECALL_RECORDS overrides): recall
 * returns exactly the planted devices, criteria combine (AND), hex and
 * serials are case-insensitive, counts come per job, an unknown job is an
 * error, and the CSV reads back through Python's csv module with the
 * documented columns.  Times are printed; `make bench' (bench_recall)
 * reports them against the one-second bar.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal_gen.h"
#include "kj_testutil.h"

#define JOBS 10
#ifdef KJ_SANITIZED
#define RECORDS 100000  /* ASan: the queries are the same, 10x faster */
#else
#define RECORDS 1000000
#endif

static char dir[96], kinject[PATH_MAX], out[PATH_MAX + 16];
static struct kj_gen_job jobs[JOBS];

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int setup(void **state)
{
	const char *env = getenv("KJ_RECALL_RECORDS");
	uint64_t n = RECORDS;
	char self[PATH_MAX];
	ssize_t len;
	double t;

	(void)state;
	if (env && kj_parse_u64(env, 1000, 100000000, "KJ_RECALL_RECORDS",
				&n))
		return -1;
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return -1;
	self[len] = '\0';
	snprintf(kinject, sizeof(kinject), "%s/../kinject", dirname(self));
	snprintf(dir, sizeof(dir), "/tmp/kj-recall.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(out, sizeof(out), "%s/out.csv", dir);
	t = now_s();
	if (kj_gen_journal(dir, n, JOBS, jobs))
		return -1;
	printf("generated %llu records in %u jobs: %.1f s\n",
	       (unsigned long long)n, JOBS, now_s() - t);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Run `kinject audit ARGS --state dir --out out 2>dir/err'; exit code. */
static int audit(const char *args)
{
	char cmd[PATH_MAX * 2 + 512];
	double t = now_s();
	int rc;

	snprintf(cmd, sizeof(cmd), "'%s' audit %s --state '%s' --out '%s' "
		 "2>'%s/err'", kinject, args, dir, out, dir);
	rc = system(cmd);
	printf("  %-72s %.3f s\n", args, now_s() - t);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static unsigned long file_lines(const char *path)
{
	unsigned long n = 0;
	FILE *f = fopen(path, "r");
	int c;

	assert_non_null(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static bool err_has(const char *s)
{
	char path[PATH_MAX], buf[4096];

	snprintf(path, sizeof(path), "%s/err", dir);
	assert_true(kj_test_slurp(path, buf, sizeof(buf)) >= 0);
	return strstr(buf, s) != NULL;
}

/* The devices column of job's row in a --counts file (0: no row). */
static unsigned long long count_of(const char *job)
{
	char line[256], want[64];
	unsigned long long n = 0;
	FILE *f = fopen(out, "r");

	assert_non_null(f);
	snprintf(want, sizeof(want), ",%s,", job);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, want))
			n = strtoull(strstr(line, want) + strlen(want), NULL,
				     10);
	fclose(f);
	return n;
}

/* Python's csv module reads the file back: the documented header, and
 * each data row's uid and job as listed ("uid:job,uid:job"). */
static void csv_rows_are(const char *want)
{
	char cmd[PATH_MAX + 1024];

	snprintf(cmd, sizeof(cmd), "python3 -c 'import csv,sys\n"
		 "cols = \"ak_name,seq,time,kind,job,job_seq,customer,product,"
		 "batch,operator,result,site,socket,uid,hwrev,attempt,serial,"
		 "cred_index,cert_sha256,fw_version,fw_sha256,readback,"
		 "site_code,work_order_sha256,quantity,ok_count,failed_count\"\n"
		 "r = csv.reader(open(sys.argv[1], newline=\"\"))\n"
		 "h = next(r)\n"
		 "assert h == cols.split(\",\"), h\n"
		 "got = \",\".join(x[13] + \":\" + x[4] for x in r)\n"
		 "assert got == sys.argv[2], got\n' '%s' '%s'", out, want);
	assert_int_equal(system(cmd), 0);
}

static void test_recall_planted(void **state)
{
	(void)state;
	/* Upper-case hex; ok devices only by default. */
	assert_int_equal(audit("recall --uid DEADBEEF0000002A"), 0);
	csv_rows_are(KJ_GEN_UID ":JOB-1," KJ_GEN_UID ":JOB-4,"
		     KJ_GEN_UID ":JOB-7");
	assert_true(err_has("JOB-1: 1\n  JOB-4: 1\n  JOB-7: 1"));
	/* --all adds the failed attempt in job 4. */
	assert_int_equal(audit("recall --all --uid deadbeef0000002a"), 0);
	csv_rows_are(KJ_GEN_UID ":JOB-1," KJ_GEN_UID ":JOB-4,"
		     KJ_GEN_UID ":JOB-4," KJ_GEN_UID ":JOB-7");
	/* Combined with a job criterion: only job 4 has 3.1.5 of these. */
	assert_int_equal(audit("recall --uid DEADBEEF0000002A "
			       "--firmware-version 3.1.5"), 0);
	csv_rows_are(KJ_GEN_UID ":JOB-4");
	assert_int_equal(audit("recall --uid deadbeef0000002a --batch lot-2"),
			 0);
	csv_rows_are(KJ_GEN_UID ":JOB-7");
}

static void test_recall_serial(void **state)
{
	(void)state;
	/* Lower-case serial finds AS50000042 (job 4, device 42). */
	assert_int_equal(audit("recall --serial as50000042"), 0);
	csv_rows_are("000000040000002a:JOB-4");
	/* Firmware hash (upper case) AND serial: job 1 is 3.2.0 (b2…). */
	assert_int_equal(audit("recall --serial AS20000007 --firmware-sha256 "
			       "B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2"
			       "B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2"), 0);
	csv_rows_are("0000000100000007:JOB-1");
	assert_int_equal(audit("recall --serial AS20000007 --firmware-sha256 "
			       "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
			       "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"), 0);
	csv_rows_are("");
	/* Device 49 of every job failed readback: not recalled by default. */
	assert_int_equal(audit("recall --serial AS20000049"), 0);
	csv_rows_are("");
}

static void test_recall_job_criteria(void **state)
{
	(void)state;
	/* 3.2.0 and LOT-1: job 1 alone (odd jobs are 3.2.0, LOT = k % 5). */
	assert_int_equal(audit("recall --firmware-version 3.2.0 --batch lot-1"),
			 0);
	assert_int_equal(file_lines(out), 1 + jobs[1].ok);
	assert_true(err_has("JOB-1: "));
	assert_false(err_has("JOB-6"));
	/* --counts: the odd jobs have 3.2.0 (b2…), each with its ok count. */
	assert_int_equal(audit("recall --counts --firmware-sha256 "
			       "B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2"
			       "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"), 0);
	assert_int_equal(file_lines(out), 1 + JOBS / 2);
	assert_int_equal(count_of("JOB-1"), jobs[1].ok);
	assert_int_equal(count_of("JOB-9"), jobs[9].ok);
	assert_int_equal(count_of("JOB-2"), 0);
}

static void test_export_and_jobs(void **state)
{
	(void)state;
	assert_int_equal(audit("export --job NOPE"), 1);
	assert_true(err_has("--job NOPE: no such job"));
	assert_int_equal(audit("jobs"), 0);
	assert_int_equal(file_lines(out), 1 + JOBS);
	/* Device rows only by default; --kinds adds the job rows. */
	assert_int_equal(audit("export --job JOB-3"), 0);
	assert_int_equal(file_lines(out), 1 + jobs[3].devices);
	assert_int_equal(audit("export --job JOB-3 --kinds "
			       "job_start,device,job_end"), 0);
	assert_int_equal(file_lines(out), 3 + jobs[3].devices);
	/* Job 3's devices are 2 ms apart from 13:00:00Z; --until exclusive. */
	assert_int_equal(audit("export --since 2026-11-01T13:00:00Z "
			       "--until 2026-11-01T13:00:00.010Z"), 0);
	assert_int_equal(file_lines(out), 1 + 5);
	assert_int_equal(audit("export --since yesterday"), 2);
	assert_int_equal(audit("recall"), 2);
	assert_int_equal(audit("recall --serial A --serial B"), 2);
	assert_int_equal(audit("recall --uid 0x12"), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recall_planted),
		cmocka_unit_test(test_recall_serial),
		cmocka_unit_test(test_recall_job_criteria),
		cmocka_unit_test(test_export_and_jobs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
