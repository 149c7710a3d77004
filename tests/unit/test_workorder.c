// SPDX-License-Identifier: Apache-2.0
/* WO.json (workorder.h): the example parses, each malformed field is named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "base/util.h"
#include "inputs/workorder.h"
#include "kj_capture.h"

#define SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

/* The spec's example with one substitution: %s is the tail of the object. */
static const char *const wo_fmt =
	"{\"kinject_work_order\": %s, \"id\": %s, \"customer\": %s, "
	"\"product\": %s, \"batch\": %s, \"quantity\": %s, "
	"\"max_failed\": %s, \"hardware_revisions\": %s, "
	"\"firmware\": {\"version\": %s, \"sha256\": %s}, "
	"\"serial\": {\"prefix\": %s, \"start\": %s}%s}";

enum { F_VER, F_ID, F_CUST, F_PROD, F_BATCH, F_QTY, F_MAXF, F_HW, F_FWV,
       F_SHA, F_PFX, F_START, F_TAIL, F_N };

static const char *const good[F_N] = {
	"1", "\"WO-2027-0315\"", "\"acme\"", "\"acme-sensor\"",
	"\"LOT-2027-0315\"", "10000", "200", "[\"B\", \"C\"]", "\"3.1.5\"",
	"\"" SHA "\"", "\"AS\"", "10000", "",
};

static char doc[8192];

/* The example with field f replaced by v (NULL: the example itself). */
static const char *make(int f, const char *v)
{
	const char *a[F_N];

	for (int i = 0; i < F_N; i++)
		a[i] = i == f ? v : good[i];
	snprintf(doc, sizeof(doc), wo_fmt, a[0], a[1], a[2], a[3], a[4], a[5],
		 a[6], a[7], a[8], a[9], a[10], a[11], a[12]);
	return doc;
}

static int parse(const char *s, struct kj_work_order *wo)
{
	return kj_work_order_parse((const uint8_t *)s, strlen(s), "WO.json",
				   wo);
}

static void test_example_parses(void **state)
{
	struct kj_work_order wo;
	uint8_t h[32];
	const char *s = make(-1, NULL);

	(void)state;
	assert_int_equal(parse(s, &wo), 0);
	assert_string_equal(wo.id, "WO-2027-0315");
	assert_string_equal(wo.customer, "acme");
	assert_string_equal(wo.product, "acme-sensor");
	assert_string_equal(wo.batch, "LOT-2027-0315");
	assert_int_equal(wo.quantity, 10000);
	assert_int_equal(wo.max_failed, 200);
	assert_int_equal(wo.n_hwrev, 2);
	assert_string_equal(wo.hwrev[0], "B");
	assert_string_equal(wo.hwrev[1], "C");
	assert_string_equal(wo.fw_version_str, "3.1.5");
	assert_int_equal(wo.fw_version.minor, 1);
	assert_int_equal(wo.fw_sha256[0], 0x9f);
	assert_int_equal(wo.fw_sha256[31], 0x08);
	assert_string_equal(wo.serial_prefix, "AS");
	assert_int_equal(wo.serial_start, 10000);
	/* The raw bytes are kept and hashed: work_order_sha256. */
	assert_int_equal(wo.raw_len, strlen(s));
	assert_memory_equal(wo.raw, s, wo.raw_len);
	kj_sha256(s, strlen(s), h);
	assert_memory_equal(wo.sha256, h, 32);
	kj_work_order_free(&wo);
}

static void test_example_file(void **state)
{
	struct kj_work_order wo;

	(void)state;
	/* Tests run from the top of the tree (make check-unit). */
	assert_int_equal(kj_work_order_load("policy/work-orders/example.json",
					    &wo), 0);
	assert_int_equal(wo.quantity, 10000);
	kj_work_order_free(&wo);
}

struct bad_case {
	int field;
	const char *value;
	const char *want; /* substring of the message */
};

static const struct bad_case bad[] = {
	{ F_TAIL, ", \"color\": 1", "field \"color\": unknown field" },
	{ F_VER, "2",
	  "field \"kinject_work_order\": expected format version 1, got `2'" },
	{ F_VER, "\"1\"", "field \"kinject_work_order\"" },
	{ F_VER, "1.0", "field \"kinject_work_order\"" },
	{ F_VER, "true", "field \"kinject_work_order\"" },
	{ F_QTY, "\"ten\"",
	  "field \"quantity\": expected an integer 1..10000000, got `\"ten\"'" },
	{ F_QTY, "0", "field \"quantity\": expected an integer 1..10000000" },
	{ F_QTY, "10000001", "field \"quantity\"" },
	{ F_QTY, "-1", "field \"quantity\"" },
	{ F_QTY, "1.5", "field \"quantity\"" },
	{ F_QTY, "1e3", "field \"quantity\"" },
	{ F_QTY, "null", "field \"quantity\"" },
	{ F_QTY, "99999999999999999999999", "invalid JSON" },
	{ F_MAXF, "-1", "field \"max_failed\": expected an integer 0..10000000" },
	{ F_MAXF, "[]", "field \"max_failed\"" },
	{ F_ID, "\"\"", "field \"id\": string is empty" },
	{ F_ID, "\" WO\"", "field \"id\": string has leading" },
	{ F_ID, "\"WO\\u0001\"", "field \"id\": string has a character" },
	{ F_ID, "\"W\\u00d6\"", "field \"id\": string has a character" },
	{ F_ID, "5", "field \"id\": expected a string" },
	{ F_CUST, "\"ac me\"", "field \"customer\": string has a character" },
	{ F_CUST, "\"-acme\"", "field \"customer\"" },
	{ F_PROD, "\"../etc\"", "field \"product\"" },
	{ F_PROD, "\"acme/sensor\"", "field \"product\"" },
	{ F_BATCH, "\"LOT\\n1\"", "field \"batch\"" },
	{ F_BATCH, "{}", "field \"batch\": expected a string" },
	{ F_HW, "[]", "field \"hardware_revisions\": expected 1..64" },
	{ F_HW, "[\"B\", \"B\"]",
	  "field \"hardware_revisions[1]\": revision \"B\" listed twice" },
	{ F_HW, "[\"B\", 3]", "field \"hardware_revisions[1]\"" },
	{ F_HW, "[\"B\", \"\"]", "field \"hardware_revisions[1]\"" },
	{ F_HW, "\"B\"", "field \"hardware_revisions\": expected an array" },
	{ F_FWV, "\"3.1\"", "field \"firmware.version\": expected a version" },
	{ F_FWV, "\"3.1.5-rc1\"", "field \"firmware.version\"" },
	{ F_FWV, "315", "field \"firmware.version\": expected a string" },
	{ F_SHA, "\"abc\"", "field \"firmware.sha256\": expected 64 hex digits" },
	{ F_SHA, "\"" SHA "00\"", "field \"firmware.sha256\": expected 64 hex" },
	{ F_SHA, "\"zz6d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
	  "field \"firmware.sha256\": expected 64 hex digits" },
	{ F_PFX, "\"\"", "field \"serial.prefix\": string is empty" },
	{ F_PFX, "\"A B\"", "field \"serial.prefix\"" },
	{ F_PFX, "\"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG\"",
	  "field \"serial.prefix\": string is too long" },
	{ F_START, "-5", "field \"serial.start\": expected an integer 0.." },
	{ F_START, "1000000000000000", "field \"serial.start\"" },
	/* Whole-document problems. */
	{ F_TAIL, ", \"id\": \"again\"", "duplicate" },
	{ F_TAIL, "} {", "invalid JSON" },
};

static void test_malformed(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kj_work_order wo;
		const char *err;
		int rc;

		cap_start();
		rc = parse(make(bad[i].field, bad[i].value), &wo);
		err = cap_end();
		if (rc != -EINVAL)
			fail_msg("case %zu (%s) accepted", i, bad[i].value);
		assert_logged(err, "WO.json: ");
		assert_logged(err, bad[i].want);
		assert_null(wo.raw); /* nothing half-applied */
	}
}

static void test_missing_and_nested_fields(void **state)
{
	static const struct {
		const char *doc, *want;
	} cases[] = {
		{ "{\"kinject_work_order\": 1}", "field \"id\": missing" },
		{ "[1]", "expected a JSON object" },
		{ "", "invalid JSON" },
		{ "{\"kinject_work_order\": 1} trailing", "invalid JSON" },
		{ "{\"a\":1,\"a\":2}", "duplicate" },
	};
	struct kj_work_order wo;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err;

		cap_start();
		assert_int_equal(parse(cases[i].doc, &wo), -EINVAL);
		err = cap_end();
		assert_logged(err, cases[i].want);
	}
	/* Nested objects: unknown and missing members name their path. */
	const char *s = make(F_SHA, "\"" SHA "\", \"size\": 5");
	const char *err;

	cap_start();
	assert_int_equal(parse(s, &wo), -EINVAL);
	err = cap_end();
	assert_logged(err, "WO.json: field \"firmware.size\": unknown field");

	make(-1, NULL);
	char *p = strstr(doc, "\"start\": 10000");
	memcpy(p, "\"begin\"", 7);
	cap_start();
	assert_int_equal(parse(doc, &wo), -EINVAL);
	err = cap_end();
	assert_logged(err, "field \"serial.begin\": unknown field");

	/* Bad UTF-8 is refused by the JSON layer. */
	make(F_BATCH, "\"L\xff\"");
	cap_start();
	assert_int_equal(parse(doc, &wo), -EINVAL);
	err = cap_end();
	assert_logged(err, "WO.json");
}

static void test_limits_accepted(void **state)
{
	struct kj_work_order wo;

	(void)state;
	assert_int_equal(parse(make(F_QTY, "1"), &wo), 0);
	kj_work_order_free(&wo);
	assert_int_equal(parse(make(F_QTY, "10000000"), &wo), 0);
	kj_work_order_free(&wo);
	assert_int_equal(parse(make(F_MAXF, "0"), &wo), 0);
	kj_work_order_free(&wo);
	assert_int_equal(parse(make(F_START, "0"), &wo), 0);
	kj_work_order_free(&wo);
	assert_int_equal(parse(make(F_START, "999999999999999"), &wo), 0);
	kj_work_order_free(&wo);
	assert_int_equal(parse(make(F_SHA, "\"9F86D081884C7D659A2FEAA0C55AD015"
					   "A3BF4F1B2B0B822CD15D6C15B0F00A08\""),
			       &wo), 0);
	assert_int_equal(wo.fw_sha256[0], 0x9f);
	kj_work_order_free(&wo);
}

/* "credential_mode": plain (default), inject, issue; nothing else. */
static void test_cred_mode(void **state)
{
	static const struct {
		const char *tail;
		int rc;
		enum kj_cred_mode mode;
	} t[] = {
		{ "", 0, KJ_CRED_PLAIN },
		{ ", \"credential_mode\": \"plain\"", 0, KJ_CRED_PLAIN },
		{ ", \"credential_mode\": \"inject\"", 0, KJ_CRED_INJECT },
		{ ", \"credential_mode\": \"issue\"", 0, KJ_CRED_ISSUE },
		{ ", \"credential_mode\": \"Inject\"", -EINVAL, 0 },
		{ ", \"credential_mode\": 1", -EINVAL, 0 },
	};
	struct kj_work_order wo;
	const char *err;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		cap_start();
		assert_int_equal(parse(make(F_TAIL, t[i].tail), &wo), t[i].rc);
		err = cap_end();
		if (t[i].rc == 0) {
			assert_int_equal(wo.cred_mode, t[i].mode);
			kj_work_order_free(&wo);
		} else {
			assert_non_null(strstr(err, "field \"credential_mode\""));
		}
	}
	assert_string_equal(kj_cred_mode_name(KJ_CRED_ISSUE), "issue");
}

static void test_hwrev_allowed(void **state)
{
	struct kj_work_order wo;

	(void)state;
	assert_int_equal(parse(make(-1, NULL), &wo), 0);
	assert_true(kj_order_hwrev_allowed(&wo, "B", 1));
	assert_true(kj_order_hwrev_allowed(&wo, "Cxyz", 1)); /* str8: len */
	assert_false(kj_order_hwrev_allowed(&wo, "A", 1));
	assert_false(kj_order_hwrev_allowed(&wo, "b", 1));
	assert_false(kj_order_hwrev_allowed(&wo, "BB", 2));
	assert_false(kj_order_hwrev_allowed(&wo, "B\0", 2));
	assert_false(kj_order_hwrev_allowed(&wo, "", 0));
	kj_work_order_free(&wo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_parses),
		cmocka_unit_test(test_cred_mode),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_missing_and_nested_fields),
		cmocka_unit_test(test_limits_accepted),
		cmocka_unit_test(test_hwrev_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
