// SPDX-License-Identifier: Apache-2.0
/*
 * The verifier's external sort (evidence/verify_sort.c), which checks 6
 * and 7 of a large lot rest on: every entry comes back once, in key
 * order, whether it stayed in memory, went to runs on disk, or went
 * through a merge of FANIN runs into one (entries of 128 bytes: 8,192 a
 * run, a merge every 64 runs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

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

static void sort_n(size_t n)
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
	kj_xsort_free(s);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_memory),
		cmocka_unit_test(test_runs),
		cmocka_unit_test(test_merged_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
