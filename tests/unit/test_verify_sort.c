// SPDX-License-Identifier: Apache-2.0
/*
 * The verifier's external sort (evidence/verify_sort.c), which checks 6
 * and 7 of a large lot rest on: every entry comes back once, in key
 * order, whether it stayed in memory, went to runs on disk, or went
 * through merges of FANIN runs into one (entries of 128 bytes: 8,192 a
 * run, a merge every 64 runs); with tiny runs and fan-in
 * (kj_xsort_test_tune) through many levels, each entry written once a
 * level (O(n log n) bytes, where merging every FANIN runs with all that
 * came before copied O(n^2)); a full $TMPDIR is told with the bytes needed.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/log.h"
#include "base/util.h"
#include "evidence/verify_int.h"

struct ent {
	uint8_t key[8];
	uint64_t tag;
	uint8_t fill[112];
};

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void sort_n_stats(size_t n, struct kj_xsort_stats *st)
{
	struct kj_xsort *s = kj_xsort_new(sizeof(struct ent), 8);
	uint64_t x = 88172645463325252ull, sum = 0, got_sum = 0;
	uint8_t prev[8] = { 0 };
	struct ent e;
	size_t got = 0;
	int rc;

	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		memset(&e, 0, sizeof(e));
		/* few distinct keys: equal keys across runs too */
		kj_put_u64be(e.key, next_rand(&x) % (n / 3 + 1));
		e.tag = next_rand(&x);
		sum += e.tag + kj_get_u64be(e.key);
		assert_int_equal(kj_xsort_add(s, &e), 0);
	}
	assert_int_equal(kj_xsort_done(s), 0);
	while ((rc = kj_xsort_next(s, &e)) == 1) {
		assert_true(memcmp(prev, e.key, 8) <= 0);
		memcpy(prev, e.key, 8);
		got_sum += e.tag + kj_get_u64be(e.key);
		got++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(got, n);
	assert_true(got_sum == sum);
	if (st)
		kj_xsort_stats(s, st);
	kj_xsort_free(s);
}

static void sort_n(size_t n)
{
	sort_n_stats(n, NULL);
}

static void test_in_memory(void **state)
{
	(void)state;
	sort_n(0);
	sort_n(1);
	sort_n(5000);
}

static void test_runs(void **state)
{
	(void)state;
	sort_n(8192 * 10 + 17);
}

static void test_merged_runs(void **state)
{
	(void)state;
	/* 140 runs: two merges of 64 into one, then the last merge */
	sort_n(8192 * 140 + 5);
}

/* levels needed for runs runs at fan-in f: ceil(log_f(runs)) + 1 */
static unsigned levels_for(uint64_t runs, unsigned f)
{
	unsigned l = 1;

	for (uint64_t cap = f; cap < runs; cap *= f)
		l++;
	return l;
}

static void test_levels(void **state)
{
	/* 8 entries a run, 4 runs a merge: 1,000 runs, 5 levels of merges */
	size_t n = 8 * 1000 + 3, bytes = n * sizeof(struct ent);
	struct kj_xsort_stats st;
	unsigned want;

	(void)state;
	kj_xsort_test_tune(8 * sizeof(struct ent), 4);
	sort_n_stats(n, &st);
	kj_xsort_test_tune(0, 0);
	want = levels_for(st.runs, 4);
	print_message("levels: %zu entries, %llu runs, %u levels (%u at most), %llu merges, %llu bytes written, %llu read (%zu of entries)\n",
		      n, (unsigned long long)st.runs, st.levels, want,
		      (unsigned long long)st.merges,
		      (unsigned long long)st.bytes_written,
		      (unsigned long long)st.bytes_read, bytes);
	assert_int_equal(st.runs, 1001);
	assert_true(st.levels >= 5 && st.levels <= want);
	/* each entry written once a level and read back once a level:
	 * n log n, not n^2 / fanin (about 125 n here) */
	assert_true(st.bytes_written <= (uint64_t)want * bytes);
	assert_true(st.bytes_read <= (uint64_t)want * bytes);
	assert_true(st.bytes_written >= bytes);
	/* a merge of 4 runs into one every 4 runs of a level */
	assert_true(st.merges >= 1000 / 4 + 1000 / 16 + 1000 / 64 +
				   1000 / 256);
	/* the default fan-in: 140 runs, two merges, not a third level */
	sort_n_stats(8192 * 140 + 5, &st);
	assert_int_equal(st.levels, 2);
	assert_int_equal(st.merges, 2);
}

static char no_room_msg[1024];

static void on_error(void *ctx, const char *line)
{
	(void)ctx;
	if (!no_room_msg[0])
		snprintf(no_room_msg, sizeof(no_room_msg), "%s", line);
}

/* In a child: the sort's files may not grow past 64 KiB. */
static int sort_in_small_tmpdir(void)
{
	struct rlimit rl = { 64 << 10, 64 << 10 };
	struct kj_xsort *s;
	struct ent e = { 0 };
	int rc = 0;

	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		return 2;
	kj_log_observe_errors(on_error, NULL);
	kj_xsort_test_tune(16 * sizeof(e), 4);
	s = kj_xsort_new(sizeof(e), 8);
	for (uint64_t i = 0; s && !rc && i < 4096; i++) {
		kj_put_u64be(e.key, i * 7919 % 4096);
		rc = kj_xsort_add(s, &e);
	}
	if (!rc)
		rc = kj_xsort_done(s);
	kj_xsort_free(s);
	fprintf(stdout, "%d %s\n", rc, no_room_msg);
	return 0;
}

static void test_no_room(void **state)
{
	char out[1200] = "";
	int p[2], st, rc = 0;
	ssize_t got;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (dup2(p[1], 1) < 0)
			_exit(3);
		setenv("TMPDIR", "/tmp", 1);
		rc = sort_in_small_tmpdir();
		fflush(stdout);
		_exit(rc);
	}
	close(p[1]);
	got = read(p[0], out, sizeof(out) - 1);
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(got > 0);
	print_message("no room: %s", out);
	assert_int_equal(sscanf(out, "%d", &rc), 1);
	assert_true(rc < 0);
	assert_non_null(strstr(out, "/tmp: no room for the verifier's temporary files"));
	assert_non_null(strstr(out, "bytes more are needed now and"));
	assert_non_null(strstr(out, "set TMPDIR to a directory with room"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_memory),
		cmocka_unit_test(test_runs),
		cmocka_unit_test(test_merged_runs),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_no_room),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
