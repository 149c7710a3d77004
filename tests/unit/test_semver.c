// SPDX-License-Identifier: Apache-2.0
/* Versions and version rules (semver.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "inputs/semver.h"
#include "kj_capture.h"

static struct kj_semver V(const char *s)
{
	struct kj_semver v;

	assert_int_equal(kj_semver_parse(s, "test", &v), 0);
	return v;
}

static bool admits(const char *rule, const char *ver)
{
	struct kj_semver_range r;
	struct kj_semver v = V(ver);

	assert_int_equal(kj_semver_range_parse(rule, "test", &r), 0);
	return kj_semver_range_match(&r, &v);
}

static void test_parse_valid(void **state)
{
	struct kj_semver v;
	char buf[KJ_SEMVER_STR_MAX];

	(void)state;
	v = V("3.1.5");
	assert_int_equal(v.major, 3);
	assert_int_equal(v.minor, 1);
	assert_int_equal(v.patch, 5);
	v = V("0.0.0");
	assert_int_equal(v.major + v.minor + v.patch, 0);
	v = V("4294967295.4294967295.4294967295");
	kj_semver_format(&v, buf);
	assert_string_equal(buf, "4294967295.4294967295.4294967295");
	v = V("10.20.30");
	kj_semver_format(&v, buf);
	assert_string_equal(buf, "10.20.30");
}

static void test_parse_invalid(void **state)
{
	static const char *const bad[] = {
		"", "3", "3.1", "3.1.5.1", "03.1.5", "3.01.5", "3.1.05",
		"3.1.5-rc1", "3.1.5+build7", "v3.1.5", " 3.1.5", "3.1.5 ",
		"4294967296.0.0", "3..5", "-1.0.0", "3.1.x", "3,1,5", ".1.5",
		"3.1.", "+3.1.5", "3.1.5\n",
	};
	struct kj_semver v;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *err;
		int rc;

		cap_start();
		rc = kj_semver_parse(bad[i], "WO.json: field \"firmware.version\"",
				     &v);
		err = cap_end();
		if (rc != -EINVAL)
			fail_msg("`%s' accepted", bad[i]);
		assert_logged(err, "WO.json: field \"firmware.version\"");
		assert_logged(err, "MAJOR.MINOR.PATCH");
	}
}

static void test_compare(void **state)
{
	struct kj_semver a, b;

	(void)state;
	a = V("10.0.0"), b = V("9.0.0");
	assert_true(kj_semver_cmp(&a, &b) > 0);	/* numeric, not lexical */
	a = V("3.10.0"), b = V("3.9.0");
	assert_true(kj_semver_cmp(&a, &b) > 0);
	a = V("3.0.10"), b = V("3.0.9");
	assert_true(kj_semver_cmp(&a, &b) > 0);
	a = V("3.1.5"), b = V("3.1.5");
	assert_int_equal(kj_semver_cmp(&a, &b), 0);
	a = V("2.99.99"), b = V("3.0.0");
	assert_true(kj_semver_cmp(&a, &b) < 0);
}

static void test_range_semantics(void **state)
{
	(void)state;
	/* The spec's rules, edges included. */
	assert_true(admits(">=3.0.0 <4.0.0", "3.0.0"));
	assert_true(admits(">=3.0.0 <4.0.0", "3.99.99"));
	assert_false(admits(">=3.0.0 <4.0.0", "4.0.0"));
	assert_false(admits(">=3.0.0 <4.0.0", "4.0.1"));
	assert_false(admits(">=3.0.0 <4.0.0", "2.9.9"));
	assert_true(admits(">=3.1.0", "3.1.0"));
	assert_true(admits(">=3.1.0", "10.0.0"));
	assert_false(admits(">=3.1.0", "3.0.99"));
	assert_false(admits(">=9.0.0", "1.0.0"));
	assert_true(admits(">=9.0.0", "10.0.0"));
	/* Every operator. */
	assert_true(admits("=3.1.5", "3.1.5"));
	assert_false(admits("=3.1.5", "3.1.6"));
	assert_true(admits("3.1.5", "3.1.5"));	/* bare means "=" */
	assert_false(admits("3.1.5", "3.1.4"));
	assert_false(admits(">3.0.0", "3.0.0"));
	assert_true(admits(">3.0.0", "3.0.1"));
	assert_true(admits("<=4.0.0", "4.0.0"));
	assert_false(admits("<=4.0.0", "4.0.1"));
	assert_true(admits("<4.0.0", "3.99.99"));
	/* All comparators must hold; several spaces separate as one. */
	assert_false(admits(">=3.0.0 <4.0.0 >3.5.0", "3.5.0"));
	assert_true(admits(">=3.0.0  <4.0.0", "3.5.0"));
	assert_false(admits(">=4.0.0 <3.0.0", "3.5.0"));
}

static void test_range_malformed(void **state)
{
	static const char *const bad[] = {
		"", " ", " >=3.0.0", ">=3.0.0 ", ">= 3.0.0", "=>3.0.0",
		">=3.0", "~3.0.0", "^3.0.0", "3.0.0 || 4.0.0", "*",
		">=3.0.0,<4.0.0", ">=3.0.0\t<4.0.0", "3.0.0 - 4.0.0", "x",
		">=3.0.0-rc1", "==3.0.0", "<>3.0.0", ">=v3.0.0",
		"1.0.0 1.0.0 1.0.0 1.0.0 1.0.0 1.0.0 1.0.0 1.0.0 1.0.0",
	};
	struct kj_semver_range r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *what = "P.json: field \"hardware.B.firmware\" "
				   "(hardware revision \"B\")";
		const char *err;
		int rc;

		cap_start();
		rc = kj_semver_range_parse(bad[i], what, &r);
		err = cap_end();
		if (rc != -EINVAL)
			fail_msg("rule `%s' accepted", bad[i]);
		assert_logged(err, "hardware revision \"B\"");
	}
	/* Eight comparators are fine. */
	assert_int_equal(kj_semver_range_parse(
		"1.0.0 1.0.0 1.0.0 1.0.0 1.0.0 1.0.0 1.0.0 1.0.0", "t", &r), 0);
	assert_int_equal(r.n, 8);
}

static void test_unparsed_range_admits_nothing(void **state)
{
	struct kj_semver_range r = { 0 };
	struct kj_semver v = V("1.0.0");

	(void)state;
	assert_false(kj_semver_range_match(&r, &v));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_compare),
		cmocka_unit_test(test_range_semantics),
		cmocka_unit_test(test_range_malformed),
		cmocka_unit_test(test_unparsed_range_admits_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
