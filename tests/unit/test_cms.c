// SPDX-License-Identifier: Apache-2.0
/*
 * cms.c/der.c against inputs made by the openssl command line (SPEC.md §3),
 * with a software transport key: our decryption must give the same bytes as
 * `openssl cms -decrypt`, land in the arena, and refuse tampering with the
 * right error.  The HSM path is the same code with kj_hsm_ecdh_key()
 * (tests/unit/test_hsm.c, tests/integration/inputs_*.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base/util.h"
#include "inputs/cms.h"
#include "secret/arena.h"
#include "kj_testutil.h"

static char dir[] = "/tmp/kj-test-cms.XXXXXX";
static struct kj_arena arena;
static EVP_PKEY *tkey;
static X509 *tcert, *rcert, *ocert;

#define sh(...) kj_test_bash(dir, __VA_ARGS__)

static uint8_t *slurp(const char *name, size_t *len)
{
	char path[256];
	uint8_t *buf;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (kj_read_file(path, 64 << 20, &buf, len) < 0)
		return NULL;
	return buf;
}

static int setup(void **state)
{
	char path[256];
	FILE *f;

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	/* Transport key in software, release and "other" customer keys. */
	if (sh(". %s/tests/lib/inputs.sh && cd %s && "
	       "openssl req -x509 -new -newkey ec -pkeyopt "
	       "ec_paramgen_curve:P-256 -nodes -keyout transport.key -subj "
	       "/CN=t -days 9 -out transport.pem 2>/dev/null && "
	       "kj_customer . release && kj_customer . other && "
	       "openssl req -x509 -new -key transport.key -subj /CN=renewed "
	       "-days 9 -out renewed.pem 2>/dev/null && "
	       "kj_firmware . 100000 && printf 'hello\\n' >small && "
	       "kj_envelope small SMALL.cms transport.pem release.pem "
	       "release.key && "
	       "openssl cms -encrypt -binary -aes-256-gcm -recip transport.pem "
	       "-keyopt ecdh_kdf_md:sha256 -keyid -in fw.bin -outform DER "
	       "-out raw-keyid.cms 2>/dev/null && "
	       "openssl cms -encrypt -binary -aes-256-gcm -recip other.pem "
	       "-keyopt ecdh_kdf_md:sha256 -in fw.bin -outform DER "
	       "-out other.cms 2>/dev/null && "
	       "openssl cms -encrypt -binary -aes-256-gcm -recip transport.pem "
	       "-in fw.bin -outform DER -out sha1.cms 2>/dev/null && "
	       "openssl cms -encrypt -stream -binary -aes-256-gcm -recip "
	       "transport.pem -keyopt ecdh_kdf_md:sha256 -in small -outform "
	       "DER -out stream.cms 2>/dev/null && "
	       "openssl cms -sign -binary -nodetach -in fw.bin -signer "
	       "other.pem -inkey other.key -outform DER -out other.signed && "
	       "openssl cms -sign -binary -nodetach -noattr -in fw.bin "
	       "-signer release.pem -inkey release.key -outform DER "
	       "-out noattr.signed && "
	       "cp fw.bin wo && kj_sign_detached wo release.pem release.key",
	       getenv("KJ_SRCDIR") ? getenv("KJ_SRCDIR") : ".", dir) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/transport.key", dir);
	f = fopen(path, "r");
	tkey = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "%s/transport.pem", dir);
	if (!tkey || kj_cert_load(path, &tcert) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/release.pem", dir);
	if (kj_cert_load(path, &rcert) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/other.pem", dir);
	if (kj_cert_load(path, &ocert) < 0)
		return -1;
	return kj_arena_create(&arena, 8 << 20, KJ_ARENA_AUTO) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	kj_arena_destroy(&arena);
	EVP_PKEY_free(tkey);
	X509_free(tcert);
	X509_free(rcert);
	X509_free(ocert);
	sh("rm -rf %s %s.sh", dir, dir);
	return 0;
}

static int open_file(const char *name, X509 *cert, const uint8_t **plain,
		     size_t *plen)
{
	struct kj_ecdh_key key;
	uint8_t *der;
	size_t len;
	int rc;

	kj_cms_sw_ecdh_key(tkey, cert, &key);
	der = slurp(name, &len);
	assert_non_null(der);
	rc = kj_cms_open_envelope(&key, der, len, name, &arena, plain, plen);
	free(der);
	return rc;
}

/* Same plaintext as openssl cms -decrypt, inside the arena. */
static void test_round_trip(void **state)
{
	const uint8_t *plain, *content;
	size_t plen, clen, flen, olen;
	uint8_t *fw, *ossl;

	(void)state;
	assert_int_equal(sh("cd %s && openssl cms -decrypt -inform DER -in "
			    "FW.cms -recip transport.pem -inkey transport.key "
			    "-out fw.signed.ossl", dir), 0);
	assert_int_equal(open_file("FW.cms", tcert, &plain, &plen), 0);
	assert_true(plain >= arena.base && plain + plen <= arena.base +
		    arena.size);
	ossl = slurp("fw.signed.ossl", &olen);
	assert_int_equal(plen, olen);
	assert_memory_equal(plain, ossl, olen);
	free(ossl);
	assert_int_equal(kj_cms_verify_signed(plain, plen, rcert, "FW.cms",
					      &content, &clen), 0);
	fw = slurp("fw.bin", &flen);
	assert_int_equal(clen, flen);
	assert_memory_equal(content, fw, flen);
	assert_true(content > plain && content + clen <= plain + plen);
	free(fw);
	/* Without a certificate every recipient is tried. */
	assert_int_equal(open_file("SMALL.cms", NULL, &plain, &plen), 0);
	/* A renewed certificate for the same key: no rid names it. */
	{
		char path[256];
		X509 *renewed;

		snprintf(path, sizeof(path), "%s/renewed.pem", dir);
		assert_int_equal(kj_cert_load(path, &renewed), 0);
		assert_int_equal(open_file("SMALL.cms", renewed, &plain, &plen),
				 0);
		assert_int_equal(plen > 0, 1);
		X509_free(renewed);
	}
}

/* rKeyId recipient identifier (-keyid); content not signed at all. */
static void test_keyid_unsigned(void **state)
{
	const uint8_t *plain, *content;
	size_t plen, clen;

	(void)state;
	assert_int_equal(open_file("raw-keyid.cms", tcert, &plain, &plen), 0);
	assert_int_equal(plen, 100000);
	assert_int_equal(kj_cms_verify_signed(plain, plen, rcert, "raw",
					      &content, &clen), -EBADMSG);
	assert_null(content);
}

static void test_flipped_byte(void **state)
{
	struct kj_ecdh_key key;
	const uint8_t *plain;
	size_t len, plen, used;
	uint8_t *der;

	(void)state;
	kj_cms_sw_ecdh_key(tkey, tcert, &key);
	der = slurp("FW.cms", &len);
	der[len - 40000] ^= 1; /* inside the ciphertext */
	used = arena.used;
	assert_int_equal(kj_cms_open_envelope(&key, der, len, "FW.cms",
					      &arena, &plain, &plen),
			 -EBADMSG);
	assert_null(plain);
	/* Nothing half-applied: what was written to the arena is wiped. */
	for (size_t i = used; i < arena.used; i++)
		if (arena.base[i])
			fail_msg("arena byte %zu not wiped", i);
	/* Every truncation is refused without a crash. */
	for (size_t cut = 0; cut < 400; cut += 7)
		assert_true(kj_cms_open_envelope(&key, der, cut, "cut", &arena,
						 &plain, &plen) < 0);
	free(der);
}

static void test_wrong_recipient_and_kdf(void **state)
{
	const uint8_t *plain;
	size_t plen;

	(void)state;
	assert_int_equal(open_file("other.cms", tcert, &plain, &plen),
			 -ENOKEY);
	assert_int_equal(open_file("other.cms", NULL, &plain, &plen),
			 -ENOKEY);
	assert_int_equal(open_file("sha1.cms", tcert, &plain, &plen), -EINVAL);
	/* BER indefinite lengths (-stream) are refused, not misread. */
	assert_int_equal(open_file("stream.cms", tcert, &plain, &plen),
			 -EBADMSG);
}

static void test_signers(void **state)
{
	const uint8_t *content;
	size_t len, clen, wlen;
	uint8_t *der, *wo, *sig;

	(void)state;
	der = slurp("other.signed", &len);
	assert_int_equal(kj_cms_verify_signed(der, len, rcert, "other",
					      &content, &clen), -EBADMSG);
	assert_int_equal(kj_cms_verify_signed(der, len, ocert, "other",
					      &content, &clen), 0);
	free(der);
	der = slurp("noattr.signed", &len);
	assert_int_equal(kj_cms_verify_signed(der, len, rcert, "noattr",
					      &content, &clen), -EBADMSG);
	free(der);
	wo = slurp("wo", &wlen);
	sig = slurp("wo.sig", &len);
	assert_int_equal(kj_cms_verify_detached(wo, wlen, sig, len, rcert,
						"wo.sig"), 0);
	assert_int_equal(kj_cms_verify_detached(wo, wlen, sig, len, ocert,
						"wo.sig"), -EBADMSG);
	wo[10] ^= 1;
	assert_int_equal(kj_cms_verify_detached(wo, wlen, sig, len, rcert,
						"wo.sig"), -EBADMSG);
	free(wo);
	free(sig);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_keyid_unsigned),
		cmocka_unit_test(test_flipped_byte),
		cmocka_unit_test(test_wrong_recipient_and_kdf),
		cmocka_unit_test(test_signers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
