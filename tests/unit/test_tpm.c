// SPDX-License-Identifier: Apache-2.0
/*
 * tpm.c against a real swtpm (with EK certificates from a local CA): AK
 * creation under the EK and reload, exported files cross-checked with
 * tpm2-tools and OpenSSL, the NV counter, PCR read/extend, quotes accepted
 * by tpm2_checkquote, the residency ceremony, and errors naming the TCTI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/x509.h>

#include "attest/attest.h"
#include "attest/tpm.h"
#include "base/util.h"
#include "swtpm_helper.h"

static struct test_swtpm sw;
static char state[96];

static int setup(void **st)
{
	(void)st;
	if (test_swtpm_start(&sw, 1) < 0) {
		fprintf(stderr, "cannot start swtpm (tests/lib/swtpm.sh)\n");
		return -1;
	}
	snprintf(state, sizeof(state), "%s/kinject-state", sw.dir);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	test_swtpm_stop(&sw);
	return 0;
}

static struct kj_tpm *open_tpm(void)
{
	struct kj_tpm *t = NULL;

	assert_int_equal(kj_tpm_open(sw.tcti, &t), 0);
	return t;
}

static void test_ak_create_and_load(void **st)
{
	uint8_t name[KJ_TPM_NAME_LEN], name2[KJ_TPM_NAME_LEN];
	char hex[2 * KJ_TPM_NAME_LEN + 2], path[160];
	const uint8_t *pub;
	uint8_t *file;
	size_t len, flen;
	struct kj_tpm *t = open_tpm();
	struct kj_ak ak;
	EVP_PKEY *pem;

	(void)st;
	assert_int_equal(kj_tpm_ak_setup(t, state), 1);
	assert_int_equal(kj_tpm_ak_public(t, &pub, &len), 0);
	assert_int_equal(kj_tpm_ak_name(t, name), 0);
	/* ak.pub: the same bytes, a strict TPM2B_PUBLIC, name and PEM agree */
	snprintf(path, sizeof(path), "%s/ak.pub", state);
	assert_int_equal(kj_read_file(path, 4096, &file, &flen), 0);
	assert_int_equal(flen, len);
	assert_memory_equal(file, pub, len);
	free(file);
	assert_int_equal(kj_ak_parse(pub, len, &ak, NULL), 0);
	assert_memory_equal(ak.name, name, KJ_TPM_NAME_LEN);
	snprintf(path, sizeof(path), "%s/ak.pem", state);
	pem = kj_pubkey_read_pem(path);
	assert_non_null(pem);
	assert_int_equal(kj_ak_check(&ak, name, sizeof(name), pem, NULL), 0);
	EVP_PKEY_free(pem);
	kj_ak_free(&ak);
	snprintf(path, sizeof(path), "%s/ak.name", state);
	assert_int_equal(kj_read_file(path, 4096, &file, &flen), 0);
	kj_hex_encode(name, KJ_TPM_NAME_LEN, hex);
	strcat(hex, "\n");
	assert_string_equal((char *)file, hex);
	free(file);
	/* tpm2-tools reads our ak.pub as a TPM2B_PUBLIC, and its name. */
	assert_int_equal(test_sh("tpm2_print -t TPM2B_PUBLIC %s/ak.pub | grep -q 'restricted'",
				 state), 0);
	kj_tpm_close(t);

	/* A new process loads the same AK from the state directory. */
	t = open_tpm();
	assert_int_equal(kj_tpm_ak_setup(t, state), 0);
	assert_int_equal(kj_tpm_ak_name(t, name2), 0);
	assert_memory_equal(name, name2, KJ_TPM_NAME_LEN);
	assert_int_equal(kj_tpm_ak_setup(t, state), -EALREADY);
	kj_tpm_close(t);
}

static void test_ak_state_incomplete(void **st)
{
	char dir[128];
	struct kj_tpm *t = open_tpm();

	(void)st;
	snprintf(dir, sizeof(dir), "%s/half", sw.dir);
	assert_int_equal(test_sh("mkdir -p %s && echo x > %s/ak.priv", dir,
				 dir), 0);
	assert_int_equal(kj_tpm_ak_setup(t, dir), -EINVAL);
	kj_tpm_close(t);
}

static void test_nv_counter(void **st)
{
	uint64_t v = 99, a, b;
	struct kj_tpm *t = open_tpm();

	(void)st;
	/* Fresh TPM: the index does not exist yet. */
	assert_int_equal(kj_tpm_nv_read(t, &v), -ENOENT);
	assert_int_equal(kj_tpm_nv_increment(t, &a), 0);
	assert_int_equal(kj_tpm_nv_increment(t, &b), 0);
	assert_int_equal(b, a + 1);
	assert_int_equal(kj_tpm_nv_read(t, &v), 0);
	assert_int_equal(v, b);
	kj_tpm_close(t);
	/* Across sessions the counter only grows. */
	t = open_tpm();
	assert_int_equal(kj_tpm_nv_increment(t, &v), 0);
	assert_int_equal(v, b + 1);
	kj_tpm_close(t);
	assert_int_equal(test_sh("tpm2_nvreadpublic -T '%s' 0x%08x | grep -q nt=0x1",
				 sw.tcti, KJ_TPM_NV_COUNTER), 0);
}

static void test_nv_foreign_index(void **st)
{
	char tcti[160];
	struct kj_tpm *t;
	uint64_t v;

	(void)st;
	/* An ordinary index at our address belongs to someone else. */
	snprintf(tcti, sizeof(tcti), "%s", sw.tcti);
	assert_int_equal(test_sh("tpm2_nvundefine -T '%s' 0x%08x >/dev/null 2>&1; tpm2_nvdefine -T '%s' 0x%08x -s 8 -a 'ownerread|ownerwrite' >/dev/null",
				 tcti, KJ_TPM_NV_COUNTER, tcti,
				 KJ_TPM_NV_COUNTER), 0);
	t = open_tpm();
	assert_int_equal(kj_tpm_nv_increment(t, &v), -EEXIST);
	kj_tpm_close(t);
	assert_int_equal(test_sh("tpm2_nvundefine -T '%s' 0x%08x", tcti,
				 KJ_TPM_NV_COUNTER), 0);
}

static void test_pcr_extend_read(void **st)
{
	uint8_t v[KJ_TPM_PCR_COUNT][32], before[32], d[32], buf[64], want[32];
	struct kj_tpm *t = open_tpm();

	(void)st;
	assert_int_equal(kj_tpm_pcr_read(t, 0xffffff, v), 0); /* 24 PCRs */
	memcpy(before, v[16], 32);
	kj_sha256("measured bytes", 14, d);
	assert_int_equal(kj_tpm_pcr_extend(t, 16, d), 0);
	memcpy(buf, before, 32);
	memcpy(buf + 32, d, 32);
	kj_sha256(buf, 64, want);
	assert_int_equal(kj_tpm_pcr_read(t, KJ_PCR_BIT(16), v), 0);
	assert_memory_equal(v[16], want, 32);
	assert_int_equal(kj_tpm_pcr_extend(t, 24, d), -EINVAL);
	assert_int_equal(kj_tpm_pcr_read(t, 0, v), -EINVAL);
	kj_tpm_close(t);
}

static void write_bin(const char *path, const void *p, size_t n)
{
	assert_int_equal(kj_write_file_atomic(path, p, n, 0644), 0);
}

static void test_quote_checkquote(void **st)
{
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32], root[32], qd[32], *a, *s;
	char hex[65], path[160], bad[65];
	struct kj_quote_info qi;
	enum kj_quote_check fc;
	size_t alen, slen;
	const uint8_t *pub;
	size_t plen;
	struct kj_ak ak;
	struct kj_tpm *t = open_tpm();

	(void)st;
	assert_int_equal(kj_tpm_ak_setup(t, state), 0);
	kj_sha256("root", 4, root);
	kj_checkpoint_qd(1200, root, 57, qd);
	assert_int_equal(kj_tpm_quote(t, KJ_PCR_DEFAULT_MASK, qd, &a, &alen,
				      &s, &slen), 0);
	assert_int_equal(kj_tpm_pcr_read(t, KJ_PCR_DEFAULT_MASK, pcrs), 0);
	assert_int_equal(kj_tpm_ak_public(t, &pub, &plen), 0);
	assert_int_equal(kj_ak_parse(pub, plen, &ak, NULL), 0);
	assert_int_equal(kj_quote_verify(&ak, a, alen, s, slen, qd,
					 KJ_PCR_DEFAULT_MASK, pcrs, &qi, &fc),
			 0);
	assert_int_equal(fc, KJ_QC_OK);
	assert_true(qi.safe);
	kj_ak_free(&ak);

	/* tpm2-tools, as the customer's independent verifier. */
	snprintf(path, sizeof(path), "%s/q.attest", sw.dir);
	write_bin(path, a, alen);
	snprintf(path, sizeof(path), "%s/q.sig", sw.dir);
	write_bin(path, s, slen);
	kj_hex_encode(qd, 32, hex);
	assert_int_equal(test_sh("tpm2_checkquote -u %s/ak.pem -m %s/q.attest -s %s/q.sig -q %s -g sha256 >/dev/null",
				 state, sw.dir, sw.dir, hex), 0);
	memcpy(bad, hex, sizeof(bad));
	bad[0] = bad[0] == '0' ? '1' : '0';
	assert_int_not_equal(test_sh("tpm2_checkquote -u %s/ak.pem -m %s/q.attest -s %s/q.sig -q %s -g sha256 >/dev/null 2>&1",
				     state, sw.dir, sw.dir, bad), 0);
	free(a);
	free(s);
	kj_tpm_close(t);
}

static void test_ek_cert_and_activation(void **st)
{
	const unsigned char *p;
	uint8_t *der;
	char *pem;
	size_t len;
	X509 *x;
	struct kj_tpm *t = open_tpm();

	(void)st;
	assert_int_equal(kj_tpm_ak_setup(t, state), 0);
	/* swtpm_setup certified the RSA EK, so the AK sits under it. */
	assert_int_equal(kj_tpm_ek_cert(t, &der, &len), 0);
	p = der;
	x = d2i_X509(NULL, &p, (long)len);
	assert_non_null(x);
	assert_ptr_equal(p, der + len);
	X509_free(x);
	free(der);
	assert_int_equal(kj_tpm_ek_cert_pem(t, &pem), 0);
	assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE-----\n"));
	free(pem);
	assert_int_equal(kj_tpm_ak_activate_check(t), 0);
	kj_tpm_close(t);
}

static void test_flushes_handles(void **st)
{
	struct kj_tpm *t;
	uint64_t v;

	(void)st;
	/* swtpm has 3 transient slots and no resource manager here: leaking
	 * one per call would exhaust them within this loop. */
	for (int i = 0; i < 6; i++) {
		uint8_t qd[32] = { (uint8_t)i }, *a, *s;
		size_t alen, slen;

		t = open_tpm();
		assert_int_equal(kj_tpm_ak_setup(t, state), 0);
		assert_int_equal(kj_tpm_quote(t, KJ_PCR_DEFAULT_MASK, qd, &a,
					      &alen, &s, &slen), 0);
		assert_int_equal(kj_tpm_nv_increment(t, &v), 0);
		free(a);
		free(s);
		kj_tpm_close(t);
	}
	assert_int_equal(test_sh("test -z \"$(tpm2_getcap -T '%s' handles-transient)\"",
				 sw.tcti), 0);
	assert_int_equal(test_sh("test -z \"$(tpm2_getcap -T '%s' handles-loaded-session)\"",
				 sw.tcti), 0);
}

/* What a checkpoint costs on swtpm (reported, not asserted). */
static void test_checkpoint_cost(void **st)
{
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32], qd[32] = { 0 }, *a, *s;
	size_t alen, slen;
	uint64_t v, t0, t1, n = 20;
	struct kj_tpm *t = open_tpm();

	(void)st;
	assert_int_equal(kj_tpm_ak_setup(t, state), 0);
	t0 = kj_now_ms();
	for (uint64_t i = 0; i < n; i++) {
		assert_int_equal(kj_tpm_nv_increment(t, &v), 0);
		qd[0] = (uint8_t)i;
		assert_int_equal(kj_tpm_quote(t, KJ_PCR_DEFAULT_MASK, qd, &a,
					      &alen, &s, &slen), 0);
		assert_int_equal(kj_tpm_pcr_read(t, KJ_PCR_DEFAULT_MASK, pcrs),
				 0);
		free(a);
		free(s);
	}
	t1 = kj_now_ms();
	printf("tpm: checkpoint (NV_Increment + Quote + PCR_Read) on swtpm: %.1f ms each over %llu\n",
	       (double)(t1 - t0) / (double)n, (unsigned long long)n);
	t0 = kj_now_ms();
	kj_tpm_close(t);
	t = open_tpm();
	assert_int_equal(kj_tpm_ak_setup(t, state), 0);
	t1 = kj_now_ms();
	printf("tpm: open + AK reload (EK CreatePrimary, policy session, Load): %llu ms\n",
	       (unsigned long long)(t1 - t0));
	kj_tpm_close(t);
}

static void test_errors_name_tcti(void **st)
{
	struct kj_tpm *t = NULL;

	(void)st;
	/* Port 1 on loopback: nothing listens. */
	assert_int_equal(kj_tpm_open("swtpm:host=127.0.0.1,port=1", &t),
			 -EIO);
	assert_null(t);
	assert_int_equal(kj_tpm_open("nosuchtcti:x", &t), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ak_create_and_load),
		cmocka_unit_test(test_ak_state_incomplete),
		cmocka_unit_test(test_nv_counter),
		cmocka_unit_test(test_nv_foreign_index),
		cmocka_unit_test(test_pcr_extend_read),
		cmocka_unit_test(test_quote_checkquote),
		cmocka_unit_test(test_ek_cert_and_activation),
		cmocka_unit_test(test_flushes_handles),
		cmocka_unit_test(test_checkpoint_cost),
		cmocka_unit_test(test_errors_name_tcti),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
