// SPDX-License-Identifier: Apache-2.0
/* array.c: kj_grow keeps what is there and fails without losing it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "base/array.h"

struct pair {
	uint32_t a, b;
};

static void test_grow_doubles_and_keeps(void **state)
{
	struct pair *v = NULL;
	size_t cap = 0, n;

	(void)state;
	for (n = 0; n < 1000; n++) {
		assert_int_equal(kj_grow(&v, &cap, n + 1, 16), 0);
		assert_true(cap >= n + 1);
		v[n].a = (uint32_t)n;
		v[n].b = (uint32_t)~n;
	}
	/* 16, 32, ... 1024: doubling from first, never one at a time. */
	assert_int_equal(cap, 1024);
	for (n = 0; n < 1000; n++) {
		assert_int_equal(v[n].a, n);
		assert_int_equal(v[n].b, (uint32_t)~n);
	}
	free(v);
}

static void test_grow_enough_is_noop(void **state)
{
	uint64_t *v = NULL, *before;
	size_t cap = 0;

	(void)state;
	assert_int_equal(kj_grow(&v, &cap, 3, 8), 0);
	assert_int_equal(cap, 8);
	before = v;
	assert_int_equal(kj_grow(&v, &cap, 8, 8), 0);
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 8);
	/* A jump past double goes straight to a large enough power. */
	assert_int_equal(kj_grow(&v, &cap, 100, 8), 0);
	assert_int_equal(cap, 128);
	free(v);
}

static void test_grow_overflow_keeps_array(void **state)
{
	uint64_t *v = NULL, *before;
	size_t cap = 0;

	(void)state;
	assert_int_equal(kj_grow(&v, &cap, 4, 4), 0);
	v[3] = 42;
	before = v;
	assert_int_equal(kj_grow(&v, &cap, SIZE_MAX / 4, 4), -ENOMEM);
	assert_int_equal(kj_grow(&v, &cap, SIZE_MAX, 4), -ENOMEM);
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 4);
	assert_int_equal(v[3], 42);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grow_doubles_and_keeps),
		cmocka_unit_test(test_grow_enough_is_noop),
		cmocka_unit_test(test_grow_overflow_keeps_array),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
