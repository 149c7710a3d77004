// SPDX-License-Identifier: Apache-2.0
/*
 * base/log: the JSON line form (`kinject run --log-format json'): one
 * object per line whatever the message holds, the keys the plant's log
 * collector reads, the format passed on through the environment; and the
 * error observer the operator's screen uses for its "last error".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

/* Everything kj_log writes to stderr while fn runs, into buf. */
static void capture(void (*fn)(void), char *buf, size_t cap)
{
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	assert_non_null(tmp);
	assert_true(saved >= 0);
	fflush(stderr);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	fn();
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, cap - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
}

static void log_awkward(void)
{
	kj_err("%s: bad \"quote\" \\ back\tslash\nnew line \x01", "WO.json");
	kj_info("second");
}

static void test_json_lines(void **state)
{
	char buf[8192], *nl;
	json_error_t e;
	json_t *o;

	(void)state;
	kj_log_set_json(true);
	assert_string_equal(getenv(KJ_LOG_FORMAT_ENV), "json");
	capture(log_awkward, buf, sizeof(buf));
	kj_log_set_json(false);
	assert_string_equal(getenv(KJ_LOG_FORMAT_ENV), "text");
	/* Two lines, each one object. */
	nl = strchr(buf, '\n');
	assert_non_null(nl);
	*nl = '\0';
	o = json_loads(buf, 0, &e);
	assert_non_null(o);
	assert_int_equal(json_object_size(o), 4);
	assert_string_equal(json_string_value(json_object_get(o, "event")),
			    "log");
	assert_string_equal(json_string_value(json_object_get(o, "level")),
			    "error");
	assert_string_equal(json_string_value(json_object_get(o, "message")),
			    "WO.json: bad \"quote\" \\ back\tslash\nnew line \x01");
	assert_int_equal(strlen(json_string_value(json_object_get(o, "ts"))),
			 24);
	json_decref(o);
	o = json_loads(nl + 1, 0, &e);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "level")),
			    "info");
	json_decref(o);
}

static char seen[256];
static int n_seen;

static void observer(void *ctx, const char *line)
{
	assert_ptr_equal(ctx, seen);
	snprintf(seen, sizeof(seen), "%s", line);
	n_seen++;
}

static void log_mixed(void)
{
	kj_info("an info line");
	kj_warn("a warning");
	kj_err("injector %d died by signal %d", 0, 9);
}

static void test_error_observer(void **state)
{
	char buf[4096];

	(void)state;
	kj_log_observe_errors(observer, seen);
	capture(log_mixed, buf, sizeof(buf));
	assert_int_equal(n_seen, 1);
	assert_string_equal(seen, "injector 0 died by signal 9");
	/* The text form is unchanged. */
	assert_non_null(strstr(buf, "kinject: injector 0 died by signal 9\n"));
	kj_log_observe_errors(NULL, NULL);
	capture(log_mixed, buf, sizeof(buf));
	assert_int_equal(n_seen, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_lines),
		cmocka_unit_test(test_error_observer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
