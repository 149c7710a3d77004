// SPDX-License-Identifier: Apache-2.0
/*
 * Product matrix (product.h) and the job-level lock-out check: anti-rollback,
 * a revision whose rule refuses the firmware, errors naming what is at fault.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "inputs/product.h"
#include "inputs/workorder.h"
#include "kj_capture.h"

static const char pm_example[] =
	"{\"kinject_product\": 1, \"product\": \"acme-sensor\", "
	"\"customer\": \"acme\", \"version\": 7, \"min_firmware\": \"3.0.0\", "
	"\"hardware\": {\"B\": {\"firmware\": \">=3.0.0 <4.0.0\"}, "
	"\"C\": {\"firmware\": \">=3.1.0\"}}}";

static int parse_pm(const char *s, struct kj_product *pm)
{
	return kj_product_parse((const uint8_t *)s, strlen(s), "P.json", pm);
}

/* A valid work order for customer/product with this firmware and revisions. */
static void make_wo(struct kj_work_order *wo, const char *customer,
		    const char *product, const char *fw, const char *hw)
{
	char s[1024];

	snprintf(s, sizeof(s),
		 "{\"kinject_work_order\": 1, \"id\": \"WO-1\", "
		 "\"customer\": \"%s\", \"product\": \"%s\", \"batch\": \"L1\", "
		 "\"quantity\": 10, \"max_failed\": 1, "
		 "\"hardware_revisions\": %s, \"firmware\": {\"version\": "
		 "\"%s\", \"sha256\": \"%064d\"}, \"serial\": {\"prefix\": "
		 "\"AS\", \"start\": 0}}", customer, product, hw, fw, 0);
	assert_int_equal(kj_work_order_parse((const uint8_t *)s, strlen(s),
					     "WO.json", wo), 0);
}

static void test_example_parses(void **state)
{
	struct kj_product pm;
	const struct kj_product_hw *hw;

	(void)state;
	assert_int_equal(parse_pm(pm_example, &pm), 0);
	assert_string_equal(pm.product, "acme-sensor");
	assert_string_equal(pm.customer, "acme");
	assert_string_equal(pm.min_firmware_str, "3.0.0");
	assert_int_equal(pm.n_hw, 2);
	hw = kj_product_find_hw(&pm, "B");
	assert_non_null(hw);
	assert_string_equal(hw->rule, ">=3.0.0 <4.0.0");
	assert_int_equal(hw->range.n, 2);
	assert_null(kj_product_find_hw(&pm, "D"));
	assert_int_equal(pm.raw_len, strlen(pm_example));
	kj_product_free(&pm);

	assert_int_equal(kj_product_load("policy/products/acme-sensor.json",
					 &pm), 0);
	assert_int_equal(pm.n_hw, 2);
	kj_product_free(&pm);
}

static void test_malformed(void **state)
{
	static const struct {
		const char *doc, *want;
	} cases[] = {
		{ "{\"kinject_product\": 2, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0.0\", \"hardware\": "
		  "{\"B\": {\"firmware\": \"1.0.0\"}}}",
		  "P.json: field \"kinject_product\": expected format version 1" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0\", \"hardware\": "
		  "{\"B\": {\"firmware\": \"1.0.0\"}}}",
		  "P.json: field \"min_firmware\": expected a version" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0.0\", \"hardware\": {}}",
		  "P.json: field \"hardware\": expected 1..64" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0.0\", \"hardware\": "
		  "{\"B\": \">=1.0.0\"}}",
		  "P.json: field \"hardware.B\": expected an object" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0.0\", \"hardware\": "
		  "{\"B\": {\"firmware\": \"~1.0.0\"}}}",
		  "P.json: field \"hardware.B.firmware\" (hardware revision "
		  "\"B\"): rule `~1.0.0'" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0.0\", \"hardware\": "
		  "{\"B\": {\"firmware\": \">=1.0.0\", \"max\": 3}}}",
		  "P.json: field \"hardware.B.max\": unknown field" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0.0\", \"hardware\": "
		  "{\"B\": {}}}",
		  "P.json: field \"hardware.B.firmware\": missing" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0.0\", \"hardware\": "
		  "{\"B x\": {\"firmware\": \"1.0.0\"}}}",
		  "P.json: field \"hardware\": string has a character" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0.0\", \"hardware\": "
		  "{\"B\": {\"firmware\": \"1.0.0\"}}, \"extra\": null}",
		  "P.json: field \"extra\": unknown field" },
		{ "{\"kinject_product\": 1, \"customer\": \"c\", "
		  "\"min_firmware\": \"1.0.0\", \"hardware\": "
		  "{\"B\": {\"firmware\": \"1.0.0\"}}}",
		  "P.json: field \"product\": missing" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0.0\", \"hardware\": "
		  "{\"B\": {\"firmware\": \"1.0.0\"}, \"B\": {}}}",
		  "duplicate object key" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"min_firmware\": \"1.0.0\", \"hardware\": "
		  "{\"B\": {\"firmware\": \"1.0.0\"}}}",
		  "P.json: field \"version\": missing" },
		{ "{\"kinject_product\": 1, \"product\": \"p\", \"customer\": "
		  "\"c\", \"version\": 0, \"min_firmware\": \"1.0.0\", "
		  "\"hardware\": {\"B\": {\"firmware\": \"1.0.0\"}}}",
		  "P.json: field \"version\"" },
	};
	struct kj_product pm;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err;

		cap_start();
		assert_int_equal(parse_pm(cases[i].doc, &pm), -EINVAL);
		err = cap_end();
		assert_logged(err, cases[i].want);
		assert_null(pm.raw);
	}
}

/* kj_order_check's result and message for a work order against the example. */
static void check(const char *customer, const char *product, const char *fw,
		  const char *hw, int want_rc, const char *want_msg)
{
	struct kj_work_order wo;
	struct kj_product pm;
	const char *err;
	int rc;

	assert_int_equal(parse_pm(pm_example, &pm), 0);
	make_wo(&wo, customer, product, fw, hw);
	cap_start();
	rc = kj_order_check(&wo, &pm);
	err = cap_end();
	if (rc != want_rc)
		fail_msg("fw %s on %s: rc %d, want %d", fw, hw, rc, want_rc);
	if (want_msg)
		assert_logged(err, want_msg);
	else
		assert_string_equal(err, "");
	kj_work_order_free(&wo);
	kj_product_free(&pm);
}

/* "device_ca": base64 DER certificates, 1..16, each exactly one. */
static void test_device_ca(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	unsigned char *der = NULL, b64[2048];
	char doc[4400];
	const char *err;
	struct kj_product pm;
	int n;

	(void)state;
	assert_non_null(k);
	assert_true(X509_set_pubkey(x, k));
	assert_true(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_true(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	n = i2d_X509(x, &der);
	assert_true(n > 0);
	EVP_EncodeBlock(b64, der, n);
#define PM(ca) "{\"kinject_product\": 1, \"product\": \"p\", "	\
	"\"customer\": \"c\", \"version\": 1, "			\
	"\"min_firmware\": \"1.0.0\", "				\
	"\"hardware\": {\"B\": {\"firmware\": \">=1.0.0\"}}, "	\
	"\"device_ca\": " ca "}"
	snprintf(doc, sizeof(doc), PM("[\"%s\", \"%s\"]"), b64, b64);
	assert_int_equal(parse_pm(doc, &pm), 0);
	assert_int_equal(pm.n_device_ca, 2);
	assert_int_equal(X509_cmp(pm.device_ca[0], x), 0);
	kj_product_free(&pm);
	assert_int_equal(parse_pm(pm_example, &pm), 0);
	assert_int_equal(pm.n_device_ca, 0);
	kj_product_free(&pm);
	cap_start();
	assert_int_equal(parse_pm(PM("[]"), &pm), -EINVAL);
	err = cap_end();
	assert_non_null(strstr(err, "field \"device_ca\": expected an array"));
	cap_start();
	assert_int_equal(parse_pm(PM("[\"AAAA\"]"), &pm), -EINVAL);
	err = cap_end();
	assert_non_null(strstr(err, "\"device_ca[0]\": not the base64 of one"));
	/* trailing bytes after the certificate */
	b64[strlen((char *)b64) - 4] = 0;
	snprintf(doc, sizeof(doc), PM("[\"%s\", 3]"), b64);
	cap_start();
	assert_int_equal(parse_pm(doc, &pm), -EINVAL);
	cap_end();
#undef PM
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_order_allowed(void **state)
{
	(void)state;
	check("acme", "acme-sensor", "3.1.5", "[\"B\", \"C\"]", 0, NULL);
	check("acme", "acme-sensor", "3.1.0", "[\"B\", \"C\"]", 0, NULL);
	check("acme", "acme-sensor", "3.0.0", "[\"B\"]", 0, NULL);
	check("acme", "acme-sensor", "3.99.99", "[\"C\", \"B\"]", 0, NULL);
	check("acme", "acme-sensor", "10.0.0", "[\"C\"]", 0, NULL);
}

static void test_anti_rollback(void **state)
{
	(void)state;
	check("acme", "acme-sensor", "2.9.9", "[\"C\"]", -EPERM,
	      "firmware 2.9.9 is below min_firmware 3.0.0");
}

static void test_lockout_names_revision_and_rule(void **state)
{
	(void)state;
	check("acme", "acme-sensor", "4.0.1", "[\"B\", \"C\"]", -EPERM,
	      "hardware revision \"B\": firmware 4.0.1 not allowed by rule "
	      "\">=3.0.0 <4.0.0\"");
	/* Upper edge: <4.0.0 excludes 4.0.0 itself. */
	check("acme", "acme-sensor", "4.0.0", "[\"C\", \"B\"]", -EPERM,
	      "hardware revision \"B\": firmware 4.0.0 not allowed");
	/* 3.0.0 is fine for B (lower edge) but not for C. */
	check("acme", "acme-sensor", "3.0.0", "[\"B\", \"C\"]", -EPERM,
	      "hardware revision \"C\": firmware 3.0.0 not allowed by rule "
	      "\">=3.1.0\"");
	check("acme", "acme-sensor", "3.1.5", "[\"B\", \"D\"]", -EPERM,
	      "hardware revision \"D\" is not in the product matrix");
}

static void test_identity_must_match(void **state)
{
	(void)state;
	check("acme", "acme-other", "3.1.5", "[\"B\"]", -EPERM,
	      "product \"acme-other\" does not match");
	check("evil", "acme-sensor", "3.1.5", "[\"B\"]", -EPERM,
	      "customer \"evil\" does not match");
}

/*
 * Issue 11 item 5: the matrix's version only grows.  Nothing kept: any
 * version passes; once 7 is recorded, 6 is refused naming both, 7 and 8
 * pass; recording an older one never lowers what is kept.
 */
static void test_matrix_version_lock(void **state)
{
	char dir[] = "/tmp/kj-product-XXXXXX", cmd[64];
	struct kj_product pm;
	const char *err;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(parse_pm(pm_example, &pm), 0);
	assert_int_equal(pm.version, 7);
	pm.version = 1;
	assert_int_equal(kj_product_version_check(dir, &pm), 0);
	pm.version = 7;
	assert_int_equal(kj_product_version_record(dir, &pm), 0);
	pm.version = 6;
	cap_start();
	assert_int_equal(kj_product_version_check(dir, &pm), -EPERM);
	err = cap_end();
	assert_logged(err, "product matrix of `acme-sensor': version 6 is "
		      "older than version 7");
	assert_int_equal(kj_product_version_record(dir, &pm), 0);
	assert_int_equal(kj_product_version_check(dir, &pm), -EPERM);
	pm.version = 7;
	assert_int_equal(kj_product_version_check(dir, &pm), 0);
	pm.version = 8;
	assert_int_equal(kj_product_version_check(dir, &pm), 0);
	kj_product_free(&pm);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_parses),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_device_ca),
		cmocka_unit_test(test_order_allowed),
		cmocka_unit_test(test_anti_rollback),
		cmocka_unit_test(test_lockout_names_revision_and_rule),
		cmocka_unit_test(test_identity_must_match),
		cmocka_unit_test(test_matrix_version_lock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
