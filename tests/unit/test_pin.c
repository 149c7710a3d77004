// SPDX-License-Identifier: Apache-2.0
/* pin.c: --pin-source file:PATH | env:NAME. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hsm/pin.h"

static char dir[] = "/tmp/kj-test-pin.XXXXXX";

static void put(const char *name, const char *content, char *src, size_t cap)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	chmod(path, 0600);
	snprintf(src, cap, "file:%s", path);
}

static void test_file(void **state)
{
	char src[300], pin[KJ_PIN_MAX];
	size_t len;

	(void)state;
	put("a", "1234\n", src, sizeof(src));
	assert_int_equal(kj_pin_read(src, pin, sizeof(pin), &len), 0);
	assert_string_equal(pin, "1234");
	assert_int_equal(len, 4);
	put("b", "pa ss\r\n", src, sizeof(src));
	assert_int_equal(kj_pin_read(src, pin, sizeof(pin), &len), 0);
	assert_string_equal(pin, "pa ss");
	put("c", "\n", src, sizeof(src));
	assert_int_equal(kj_pin_read(src, pin, sizeof(pin), &len), -EINVAL);
	put("d", "123456789", src, sizeof(src));
	assert_int_equal(kj_pin_read(src, pin, 9, &len), -EINVAL);
	assert_int_equal(kj_pin_read(src, pin, 10, &len), 0);
	assert_int_equal(kj_pin_read("file:/nonexistent/x", pin, sizeof(pin),
				     &len), -EINVAL);
	snprintf(src, sizeof(src), "file:%s", dir);
	assert_int_equal(kj_pin_read(src, pin, sizeof(pin), &len), -EINVAL);
}

static void test_env(void **state)
{
	char pin[KJ_PIN_MAX], *v;
	size_t len;

	(void)state;
	setenv("KJ_TEST_PIN", "s3cret", 1);
	v = getenv("KJ_TEST_PIN");
	assert_int_equal(kj_pin_read("env:KJ_TEST_PIN", pin, sizeof(pin),
				     &len), 0);
	assert_string_equal(pin, "s3cret");
	assert_null(getenv("KJ_TEST_PIN"));
	assert_int_equal(v[0], 0); /* wiped in place */
	assert_int_equal(kj_pin_read("env:KJ_TEST_PIN", pin, sizeof(pin),
				     &len), -EINVAL);
}

static void test_syntax(void **state)
{
	char pin[KJ_PIN_MAX];
	size_t len;

	(void)state;
	assert_int_equal(kj_pin_read("123456", pin, sizeof(pin), &len),
			 -EINVAL);
	assert_int_equal(kj_pin_read("file:", pin, sizeof(pin), &len), -EINVAL);
	assert_int_equal(kj_pin_read("env:", pin, sizeof(pin), &len), -EINVAL);
	assert_int_equal(kj_pin_read(NULL, pin, sizeof(pin), &len), -EINVAL);
	assert_int_equal(kj_pin_source_valid("file:/x"), 0);
	assert_int_equal(kj_pin_source_valid("env:X"), 0);
	assert_int_equal(kj_pin_source_valid("pin:1234"), -EINVAL);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_syntax),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
