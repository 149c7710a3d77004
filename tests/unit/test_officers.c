// SPDX-License-Identifier: Apache-2.0
/*
 * The officer set and the quorum check (ceremony/officers.h) with officer
 * keys and signatures made by openssl, exactly as officers make them:
 * threshold rules, the set saved and loaded, and every refusal of the
 * quorum check with the file it names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/util.h"
#include "ceremony/officers.h"
#include "kj_capture.h"
#include "kj_testutil.h"

static char dir[] = "/tmp/kj-officers.XXXXXX";
static uint8_t *data;
static size_t data_len;

static int sh(const char *fmt, ...)
{
	char scratch[64];
	va_list ap;
	int rc;

	snprintf(scratch, sizeof(scratch), "%s/script", dir);
	va_start(ap, fmt);
	rc = kj_test_vbash(scratch, fmt, ap);
	va_end(ap);
	return rc;
}

static const char *at(const char *name)
{
	static char buf[32][256];
	static int n;

	n = (n + 1) % 32;
	snprintf(buf[n], sizeof(buf[n]), "%s/%s", dir, name);
	return buf[n];
}

static int setup(void **state)
{
	char path[256];

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	if (sh(". %s/tests/lib/ceremony.sh && cd %s && kj_officers . 3 && "
	       "kj_officers stranger 1 && printf 'request\\n' >req && "
	       "printf 'other\\n' >other && "
	       "for i in 1 2 3; do kj_officer_sign req . $i; done && "
	       "kj_officer_sign other . 3 && cp req stranger/req && "
	       "kj_officer_sign stranger/req stranger 1",
	       getenv("KJ_SRCDIR") ? getenv("KJ_SRCDIR") : ".", dir) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/req", dir);
	return kj_read_file(path, 4096, &data, &data_len) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	free(data);
	return sh("rm -rf %s", dir) ? -1 : 0;
}

static void test_threshold(void **state)
{
	const char *three[] = { at("o1.pem"), at("o2.pem"), at("o3.pem") };
	const char *dup[] = { at("o1.pem"), at("o1.pem") };
	struct kj_officers s;

	(void)state;
	cap_start();
	assert_int_equal(kj_officers_from_files(three, 3, 1, &s), -EINVAL);
	assert_int_equal(kj_officers_from_files(three, 3, 4, &s), -EINVAL);
	assert_int_equal(kj_officers_from_files(dup, 2, 2, &s), -EINVAL);
	assert_non_null(strstr(cap_end(), "given twice"));
	assert_int_equal(kj_officers_from_files(three, 3, 2, &s), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.threshold, 2);
	assert_string_equal(s.subject[1], "/O=kinject/CN=officer 2");
	kj_officers_free(&s);
}

static void test_save_load(void **state)
{
	const char *three[] = { at("o1.pem"), at("o2.pem"), at("o3.pem") };
	struct kj_officers s, t;

	(void)state;
	assert_int_equal(kj_officers_from_files(three, 3, 3, &s), 0);
	assert_int_equal(kj_officers_save(at("st"), &s), 0);
	assert_int_equal(kj_officers_load(at("st"), &t), 0);
	assert_int_equal(t.n, 3);
	assert_int_equal(t.threshold, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_string_equal(s.fp[i], t.fp[i]);
	kj_officers_free(&s);
	kj_officers_free(&t);
	cap_start();
	assert_int_equal(kj_officers_load(at("nothing"), &t), -ENOENT);
	assert_non_null(strstr(cap_end(), "kinject ceremony init"));
}

static int quorum(unsigned m, const char *const *sigs, unsigned n,
		  const char *want, unsigned *who)
{
	const char *three[] = { at("o1.pem"), at("o2.pem"), at("o3.pem") };
	struct kj_officers s;
	int rc;

	assert_int_equal(kj_officers_from_files(three, 3, m, &s), 0);
	cap_start();
	rc = kj_officers_quorum(&s, data, data_len, "req", sigs, n, who);
	if (want)
		assert_non_null(strstr(cap_end(), want));
	else
		cap_end();
	kj_officers_free(&s);
	return rc;
}

static void test_quorum(void **state)
{
	const char *ok[] = { at("req.3.sig"), at("req.1.sig") };
	const char *few[] = { at("req.2.sig") };
	const char *twice[] = { at("req.1.sig"), at("req.1.sig") };
	const char *unknown[] = { at("req.1.sig"),
				  at("stranger/req.1.sig") };
	const char *other[] = { at("req.1.sig"), at("other.3.sig") };
	unsigned who[4];

	(void)state;
	assert_int_equal(quorum(2, ok, 2, NULL, who), 0);
	assert_int_equal(who[0], 2);
	assert_int_equal(who[1], 0);
	assert_int_equal(quorum(3, ok, 2, "too few signatures: 2 valid, the "
				"officers' threshold is 3 of 3", who), -EPERM);
	assert_int_equal(quorum(2, few, 1, "too few signatures: 1 valid",
				who), -EPERM);
	assert_int_equal(quorum(2, twice, 2, "signed twice", who), -EPERM);
	assert_int_equal(quorum(2, unknown, 2, "signed by an unknown officer "
				"(issuer /O=kinject/CN=officer 1 serial", who),
			 -EPERM);
	assert_int_equal(quorum(2, other, 2, "other.3.sig: content does not "
				"match the signed messageDigest", who),
			 -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threshold),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_quorum),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
