// SPDX-License-Identifier: Apache-2.0
/*
 * hsm.c against a real SoftHSM2 token made by tests/lib/softhsm.sh: ECDH in
 * the token equals ECDH in software from the other side, a FW.cms made by
 * openssl decrypts with the HSM into the arena and the plaintext (a planted
 * marker) is nowhere else in this process's memory, key generation and
 * ECDSA signing for the ceremony, and the PKCS#11 errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/util.h"
#include "hsm/hsm.h"
#include "inputs/cms.h"
#include "secret/arena.h"
#include "kj_testutil.h"

static char dir[] = "/tmp/kj-test-hsm.XXXXXX";
static char uri[1024], pin_source[300];
static struct kj_arena arena;
static struct kj_hsm *hsm;
/*
 * The marker planted in the firmware, stored ROT13ed: the shell that makes
 * fw.bin decodes it, so the plain marker is never in this process except
 * where we decrypt it (and a stack needle we skip).
 */
static const char marker_rot13[] = "xvawrpg-cynagrq-znexre";
#define MARKER_LEN (sizeof(marker_rot13) - 1)

static void rot13(const char *in, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c >= 'a' && c <= 'z')
			c = (char)('a' + (c - 'a' + 13) % 26);
		out[i] = (uint8_t)c;
	}
}

#define sh(...) kj_test_bash(dir, __VA_ARGS__)

#define read_line(name, buf, cap) kj_test_read_line(dir, name, buf, cap)

static int setup(void **state)
{
	char conf[300];
	const char *src = getenv("KJ_SRCDIR") ? getenv("KJ_SRCDIR") : ".";

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	if (sh(". %s/tests/lib/softhsm.sh && . %s/tests/lib/inputs.sh && "
	       "cd %s && kj_softhsm_init . >/dev/null && "
	       "echo \"$KJ_HSM_URI\" >uri && echo \"$SOFTHSM2_CONF\" >conf && "
	       "echo \"$KJ_HSM_PIN_SOURCE\" >pin_source && "
	       "echo \"$KJ_HSM_MODULE\" >module && "
	       "kj_transport_cert . softhsm/transport.pub.pem && "
	       "kj_customer . release && kj_firmware . 300000 "
	       "\"$(echo %s | tr a-z n-za-m)\"",
	       src, src, dir, marker_rot13) != 0)
		return -1;
	if (read_line("uri", uri, sizeof(uri)) ||
	    read_line("conf", conf, sizeof(conf)) ||
	    read_line("pin_source", pin_source, sizeof(pin_source)))
		return -1;
	setenv("SOFTHSM2_CONF", conf, 1);
	return kj_arena_create(&arena, 4 << 20, KJ_ARENA_AUTO) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	kj_hsm_close(hsm);
	kj_arena_destroy(&arena);
	sh("rm -rf %s %s.sh", dir, dir);
	return 0;
}

/* Z from the token == Z computed in software by the other party. */
static void test_ecdh_matches_software(void **state)
{
	uint8_t point[80], *eph_pt = NULL, z_sw[32], *z;
	size_t plen, eplen, zlen = 0, swlen = sizeof(z_sw);
	EVP_PKEY *eph = EVP_EC_gen("P-256"), *peer = EVP_PKEY_new();
	EVP_PKEY_CTX *dc;

	(void)state;
	assert_int_equal(kj_hsm_public_point(hsm, point, sizeof(point), &plen),
			 0);
	assert_int_equal(plen, 65);
	assert_non_null(eph);
	assert_int_equal(EVP_PKEY_copy_parameters(peer, eph), 1);
	assert_int_equal(EVP_PKEY_set1_encoded_public_key(peer, point, plen),
			 1);
	dc = EVP_PKEY_CTX_new(eph, NULL);
	assert_int_equal(EVP_PKEY_derive_init(dc), 1);
	assert_int_equal(EVP_PKEY_derive_set_peer(dc, peer), 1);
	assert_int_equal(EVP_PKEY_derive(dc, z_sw, &swlen), 1);
	eplen = EVP_PKEY_get1_encoded_public_key(eph, &eph_pt);
	z = kj_arena_alloc(&arena, 80);
	assert_int_equal(kj_hsm_ecdh(hsm, eph_pt, eplen, z, 80, &zlen), 0);
	assert_int_equal(zlen, 32);
	assert_memory_equal(z, z_sw, 32);
	/* A point that is not on the curve is refused by the token. */
	eph_pt[10] ^= 1;
	assert_true(kj_hsm_ecdh(hsm, eph_pt, eplen, z, 80, &zlen) < 0);
	OPENSSL_free(eph_pt);
	EVP_PKEY_CTX_free(dc);
	EVP_PKEY_free(eph);
	EVP_PKEY_free(peer);
}

/* Is the needle in any readable mapping of this process but the arena? */
static size_t scan_self(const uint8_t *needle, size_t n)
{
	char line[512];
	FILE *maps = fopen("/proc/self/maps", "r");
	int mem = open("/proc/self/mem", O_RDONLY);
	static uint8_t buf[1 << 16];
	size_t hits = 0;

	assert_non_null(maps);
	assert_true(mem >= 0);
	while (fgets(line, sizeof(line), maps)) {
		unsigned long lo, hi;
		char perm[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perm) != 3 ||
		    perm[0] != 'r' || strstr(line, "[vvar]"))
			continue;
		/* ASan's shadow: terabytes of zeros, never our data. */
		if (hi - lo > (1UL << 30))
			continue;
		if (lo < (uintptr_t)arena.base + arena.size &&
		    hi > (uintptr_t)arena.base)
			continue;
		for (unsigned long a = lo; a < hi; a += sizeof(buf) - n) {
			size_t want = hi - a < sizeof(buf) ? hi - a : sizeof(buf);
			ssize_t got = pread(mem, buf, want, (off_t)a);

			if (got <= 0)
				break;
			for (ssize_t i = 0; i + (ssize_t)n <= got; i++)
				if (buf[i] == needle[0] &&
				    !memcmp(buf + i, needle, n) &&
				    a + (unsigned long)i != (uintptr_t)needle) {
					print_message("marker at 0x%lx in %s",
						      a + (unsigned long)i,
						      line);
					hits++;
				}
			if ((size_t)got < want)
				break;
		}
	}
	explicit_bzero(buf, sizeof(buf));
	fclose(maps);
	close(mem);
	return hits;
}

static void test_decrypt_only_in_arena(void **state)
{
	char path[256];
	uint8_t *der, needle[MARKER_LEN];
	const uint8_t *plain, *fw;
	size_t len, plen, flen;
	struct kj_ecdh_key key;
	X509 *tcert, *rcert;
	bool found = false;

	(void)state;
	snprintf(path, sizeof(path), "%s/transport.pem", dir);
	assert_int_equal(kj_cert_load(path, &tcert), 0);
	snprintf(path, sizeof(path), "%s/release.pem", dir);
	assert_int_equal(kj_cert_load(path, &rcert), 0);
	snprintf(path, sizeof(path), "%s/FW.cms", dir);
	assert_int_equal(kj_read_file(path, 1 << 24, &der, &len), 0);
	kj_hsm_ecdh_key(hsm, tcert, &key);
	assert_int_equal(kj_cms_open_envelope(&key, der, len, "FW.cms", &arena,
					      &plain, &plen), 0);
	free(der);
	assert_int_equal(kj_cms_verify_signed(plain, plen, rcert, "FW.cms",
					      &fw, &flen), 0);
	assert_int_equal(flen, 300000);
	rot13(marker_rot13, needle, MARKER_LEN);
	for (size_t i = 0; i + MARKER_LEN <= flen && !found; i++)
		found = !memcmp(fw + i, needle, MARKER_LEN);
	assert_true(found); /* the marker is in the arena ... */
	assert_int_equal(scan_self(needle, MARKER_LEN), 0); /* ... only */
	explicit_bzero(needle, sizeof(needle));
	X509_free(tcert);
	X509_free(rcert);
}

static void test_generate_and_sign(void **state)
{
	char u[1200];
	struct kj_hsm *h;
	uint8_t dgst[32] = { 1, 2, 3 }, sig[64], point[80];
	size_t plen;

	(void)state;
	/* Same token, another label: the ceremony's key generation. */
	snprintf(u, sizeof(u), "%s", uri);
	memcpy(strstr(u, "object=transport;id=%01"),
	       "object=cerem0ny;id=%02", 23);
	assert_int_equal(kj_hsm_open(&h, u, pin_source), 0);
	assert_int_equal(kj_hsm_check_key(h), -ENOKEY);
	assert_int_equal(kj_hsm_generate_ec_p256(h, false), 0);
	assert_int_equal(kj_hsm_generate_ec_p256(h, false), -EEXIST);
	assert_int_equal(kj_hsm_sign_ecdsa(h, dgst, sig), 0);
	assert_int_equal(kj_hsm_public_point(h, point, sizeof(point), &plen),
			 0);
	{
		EVP_PKEY *pk = EVP_EC_gen("P-256"), *pub = EVP_PKEY_new();
		ECDSA_SIG *es = ECDSA_SIG_new();
		uint8_t *der = NULL;
		int dl;
		EVP_PKEY_CTX *vc;

		assert_int_equal(EVP_PKEY_copy_parameters(pub, pk), 1);
		assert_int_equal(EVP_PKEY_set1_encoded_public_key(pub, point,
								  plen), 1);
		ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL),
			       BN_bin2bn(sig + 32, 32, NULL));
		dl = i2d_ECDSA_SIG(es, &der);
		vc = EVP_PKEY_CTX_new(pub, NULL);
		assert_int_equal(EVP_PKEY_verify_init(vc), 1);
		assert_int_equal(EVP_PKEY_verify(vc, der, (size_t)dl, dgst, 32),
				 1);
		OPENSSL_free(der);
		ECDSA_SIG_free(es);
		EVP_PKEY_CTX_free(vc);
		EVP_PKEY_free(pk);
		EVP_PKEY_free(pub);
	}
	kj_hsm_close(h);
}

/* The ceremony's self-signed transport.pem: openssl encrypts to it. */
static void test_transport_cert(void **state)
{
	char path[256];
	const uint8_t *plain;
	size_t len, plen;
	struct kj_ecdh_key key;
	uint8_t *der;
	X509 *x;
	FILE *f;

	(void)state;
	assert_int_equal(kj_hsm_transport_cert(hsm, "kinject transport", 3650,
					       &x), 0);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x),
				       X509_get_issuer_name(x)), 0);
	snprintf(path, sizeof(path), "%s/self.pem", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	assert_int_equal(sh("cd %s && printf secret >s && openssl cms "
			    "-encrypt -binary -aes-256-gcm -recip self.pem "
			    "-keyopt ecdh_kdf_md:sha256 -in s -outform DER "
			    "-out s.cms", dir), 0);
	snprintf(path, sizeof(path), "%s/s.cms", dir);
	assert_int_equal(kj_read_file(path, 1 << 20, &der, &len), 0);
	kj_hsm_ecdh_key(hsm, x, &key);
	assert_int_equal(kj_cms_open_envelope(&key, der, len, "s.cms", &arena,
					      &plain, &plen), 0);
	assert_int_equal(plen, 6);
	assert_memory_equal(plain, "secret", 6);
	free(der);
	X509_free(x);
}

/* Runs first: a wrong PIN is only refused while nobody is logged in. */
static void test_errors(void **state)
{
	char u[1200], bad[300];
	struct kj_hsm *h;

	(void)state;
	snprintf(bad, sizeof(bad), "%s/badpin", dir);
	assert_int_equal(sh("echo 000000 >%s && chmod 600 %s", bad, bad), 0);
	snprintf(bad, sizeof(bad), "file:%s/badpin", dir);
	assert_int_equal(kj_hsm_open(&h, uri, bad), -EACCES);
	assert_null(h);
	snprintf(u, sizeof(u), "pkcs11:token=absent;object=x?%s",
		 strchr(uri, '?') + 1);
	assert_int_equal(kj_hsm_open(&h, u, pin_source), -ENODEV);
	assert_int_equal(kj_hsm_open(&h, "https://x", pin_source), -EINVAL);
	assert_int_equal(kj_hsm_open(&h, "pkcs11:token=kinject?pin-value=1",
				     pin_source), -EINVAL);
	assert_int_equal(kj_hsm_open(&h, "pkcs11:token=k?module-path=/nope.so",
				     pin_source), -EIO);
	assert_int_equal(kj_hsm_open(&h, uri, "env:KJ_NO_SUCH_VAR"), -EINVAL);
	assert_string_equal(kj_ck_rv_name(0xa0), "CKR_PIN_INCORRECT");
	assert_string_equal(kj_ck_rv_name(0x12345), "CKR_0x12345");
	/* The handle the other tests use. */
	assert_int_equal(kj_hsm_open(&hsm, uri, pin_source), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_ecdh_matches_software),
		cmocka_unit_test(test_decrypt_only_in_arena),
		cmocka_unit_test(test_generate_and_sign),
		cmocka_unit_test(test_transport_cert),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
