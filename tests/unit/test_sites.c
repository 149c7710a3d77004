// SPDX-License-Identifier: Apache-2.0
/* The --sites file (sites.h): parse, lookup, malformed cases named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "inputs/sites.h"
#include "kj_capture.h"

static int parse(const char *s, struct kj_sites *st)
{
	return kj_sites_parse((const uint8_t *)s, strlen(s), "S.json", st);
}

#define ALLOWED(st, id, sock) kj_sites_allowed((st), (id), strlen(id), (sock))

static void test_example(void **state)
{
	struct kj_sites st;

	(void)state;
	assert_int_equal(parse("{\"kinject_sites\": 1, \"sites\": "
			       "{\"line1-a\": [0, 1, 2, 3]}}", &st), 0);
	assert_int_equal(st.n, 1);
	for (uint16_t s = 0; s < 4; s++)
		assert_true(ALLOWED(&st, "line1-a", s));
	assert_false(ALLOWED(&st, "line1-a", 4));
	assert_false(ALLOWED(&st, "line1-a", 65535));
	assert_false(ALLOWED(&st, "line1", 0));
	assert_false(ALLOWED(&st, "line1-ab", 0));
	assert_false(ALLOWED(&st, "LINE1-A", 0));
	assert_false(kj_sites_allowed(&st, "line1-a\0", 8, 0));
	assert_false(kj_sites_allowed(&st, "", 0, 0));
	kj_sites_free(&st);
}

static void test_many_sites(void **state)
{
	char doc[65536], *p = doc;
	struct kj_sites st;

	(void)state;
	p += sprintf(p, "{\"kinject_sites\": 1, \"sites\": {");
	for (int i = 0; i < 500; i++)
		p += sprintf(p, "%s\"s%d\": [%d, 65535, %d]", i ? ", " : "",
			     i, i * 7, i * 7 + 1);
	sprintf(p, "}}");
	assert_int_equal(parse(doc, &st), 0);
	assert_int_equal(st.n, 500);
	for (int i = 0; i < 500; i++) {
		char id[16];

		snprintf(id, sizeof(id), "s%d", i);
		assert_true(ALLOWED(&st, id, (uint16_t)(i * 7)));
		assert_true(ALLOWED(&st, id, (uint16_t)(i * 7 + 1)));
		assert_true(ALLOWED(&st, id, 65535));
		assert_false(ALLOWED(&st, id, (uint16_t)(i * 7 + 2)));
	}
	assert_false(ALLOWED(&st, "s500", 0));
	kj_sites_free(&st);
}

static void test_malformed(void **state)
{
	static const struct {
		const char *doc, *want;
	} cases[] = {
		{ "{\"kinject_sites\": 2, \"sites\": {\"a\": [0]}}",
		  "field \"kinject_sites\": expected format version 1" },
		{ "{\"sites\": {\"a\": [0]}}", "field \"kinject_sites\": missing" },
		{ "{\"kinject_sites\": 1}", "field \"sites\": missing" },
		{ "{\"kinject_sites\": 1, \"sites\": {}}",
		  "field \"sites\": expected 1..4096 sites" },
		{ "{\"kinject_sites\": 1, \"sites\": []}",
		  "field \"sites\": expected an object" },
		{ "{\"kinject_sites\": 1, \"sites\": {\"a\": [0, 65536]}}",
		  "field \"sites.a[1]\": expected an integer 0..65535" },
		{ "{\"kinject_sites\": 1, \"sites\": {\"a\": [0, -1]}}",
		  "field \"sites.a[1]\"" },
		{ "{\"kinject_sites\": 1, \"sites\": {\"a\": [0, \"1\"]}}",
		  "field \"sites.a[1]\"" },
		{ "{\"kinject_sites\": 1, \"sites\": {\"a\": [3, 1, 3]}}",
		  "field \"sites.a\": socket 3 listed twice" },
		{ "{\"kinject_sites\": 1, \"sites\": {\"a\": []}}",
		  "field \"sites.a\": expected a non-empty array" },
		{ "{\"kinject_sites\": 1, \"sites\": {\"a\": 3}}",
		  "field \"sites.a\": expected a non-empty array" },
		{ "{\"kinject_sites\": 1, \"sites\": {\"a b\": [1]}}",
		  "field \"sites\": string has a character" },
		{ "{\"kinject_sites\": 1, \"sites\": {\"a\": [1], \"a\": [2]}}",
		  "duplicate object key" },
		{ "{\"kinject_sites\": 1, \"sites\": {\"a\": [1]}, \"x\": 1}",
		  "field \"x\": unknown field" },
		{ "{\"kinject_sites\": 1, \"sites\": {\"a\": [1]}} []",
		  "invalid JSON" },
	};
	struct kj_sites st;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err;

		cap_start();
		assert_int_equal(parse(cases[i].doc, &st), -EINVAL);
		err = cap_end();
		assert_logged(err, "S.json: ");
		assert_logged(err, cases[i].want);
		assert_int_equal(st.n, 0);
		assert_null(st.sites);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_many_sites),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
