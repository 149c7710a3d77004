// SPDX-License-Identifier: Apache-2.0
/*
 * kinject sim as a TLS 1.3 client (sim_tls.c) against the reference
 * appliance of sim_ref.h serving TLS to the sites of one CA.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/log.h"
#include "base/util.h"
#include "sim/sim.h"
#include "wire/proto.h"
#include "wire/readback.h"

#include "sim_ref.h"

/* ---- TLS (sim_tls.c): the sim as a TLS 1.3 client ---- */

static X509 *tls_cert(EVP_PKEY *k, const char *cn, X509 *ca, EVP_PKEY *cak)
{
	static long serial = 1;
	X509 *x = X509_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
				   MBSTRING_ASC, (const unsigned char *)cn,
				   -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(ca ? ca : x));
	X509_set_pubkey(x, k);
	if (!ca) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL,
			NID_basic_constraints, "critical,CA:TRUE");

		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, cak ? cak : k, EVP_sha256()) > 0);
	return x;
}

static void tls_opts(struct kj_sim_opts *o, unsigned sockets,
		     uint64_t devices, const char *cert, const char *key,
		     const char *ca)
{
	opts(o, sockets, devices);
	o->tls = true;
	o->tls_cert = cert;
	o->tls_key = key;
	o->tls_ca = ca;
}

static void tls_write(const char *path, X509 *x, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(x ? PEM_write_X509(f, x) :
			PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
	fclose(f);
}

static int ref_alpn(SSL *s, const unsigned char **out, unsigned char *olen,
		    const unsigned char *in, unsigned inlen, void *arg)
{
	unsigned char *sel;

	(void)s;
	(void)arg;
	if (SSL_select_next_proto(&sel, olen, (const unsigned char *)
				  "\x09kinject/1", 10, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* The reference appliance serves TLS 1.3 to sites of one CA; the sim
 * pins its certificate.  A site of another CA is refused and counted. */
static void test_tls(void **state)
{
	EVP_PKEY *ak = EVP_EC_gen("P-256"), *cak = EVP_EC_gen("P-256");
	EVP_PKEY *ok_ = EVP_EC_gen("P-256"), *sk = EVP_EC_gen("P-256");
	X509 *app = tls_cert(ak, "appliance", NULL, NULL);
	X509 *ca = tls_cert(cak, "site CA", NULL, NULL);
	X509 *oca = tls_cert(ok_, "other CA", NULL, NULL);
	X509 *site = tls_cert(sk, "test", ca, cak);
	X509 *other = tls_cert(sk, "test", oca, ok_);
	char d[] = "/tmp/kj-test-sim-tls.XXXXXX", cert[64], key[64], pin[64],
	     oth[64];
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	assert_non_null(mkdtemp(d));
	snprintf(cert, sizeof(cert), "%s/site.pem", d);
	snprintf(key, sizeof(key), "%s/site.key", d);
	snprintf(pin, sizeof(pin), "%s/tls.pem", d);
	snprintf(oth, sizeof(oth), "%s/other.pem", d);
	tls_write(cert, site, NULL);
	tls_write(key, NULL, sk);
	tls_write(pin, app, NULL);
	tls_write(oth, other, NULL);
	ref_reset(UINT64_MAX);
	R->tls = SSL_CTX_new(TLS_server_method());
	assert_non_null(R->tls);
	SSL_CTX_set_min_proto_version(R->tls, TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_use_certificate(R->tls, app), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(R->tls, ak), 1);
	X509_STORE_add_cert(SSL_CTX_get_cert_store(R->tls), ca);
	SSL_CTX_set_verify(R->tls, SSL_VERIFY_PEER |
			   SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_alpn_select_cb(R->tls, ref_alpn, NULL);
	SSL_CTX_set_num_tickets(R->tls, 0);

	tls_opts(&o, 8, 100, cert, key, pin);
	assert_int_equal(kj_sim_run(&o, &r), 0);
	if (r.committed != 100)
		fail_msg("committed %llu, tls %llu connect %llu closed %llu "
			 "stalled %llu failed %u ended %u ref refused %llu",
			 (unsigned long long)r.committed,
			 (unsigned long long)r.err_tls,
			 (unsigned long long)r.err_connect,
			 (unsigned long long)r.err_closed,
			 (unsigned long long)r.err_stalled, r.sockets_failed,
			 r.sockets_ended, (unsigned long long)R->tls_refused);
	assert_int_equal(r.unexpected, 0);
	assert_int_equal(r.err_tls, 0);
	assert_int_equal(R->ok, 100);
	assert_int_equal(R->tls_refused, 0);
	kj_sim_result_free(&r);

	/* a site certificate of another CA: refused, counted on both sides */
	tls_opts(&o, 2, 10, oth, key, pin);
	o.timeout_s = 5;
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 0);
	assert_int_equal(r.err_tls, 2);
	assert_int_equal(count_when(&R->tls_refused, 2), 2);
	kj_sim_result_free(&r);

	/* the wrong appliance: the sim pins tls.pem, another key fails */
	tls_opts(&o, 1, 1, cert, key, oth);
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 0);
	assert_int_equal(r.err_tls, 1);
	kj_sim_result_free(&r);

	SSL_CTX_free(R->tls);
	R->tls = NULL;
	X509_free(app);
	X509_free(ca);
	X509_free(oca);
	X509_free(site);
	X509_free(other);
	EVP_PKEY_free(ak);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(ok_);
	EVP_PKEY_free(sk);
	unlink(cert);
	unlink(key);
	unlink(pin);
	unlink(oth);
	rmdir(d);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls),
	};

	kj_log_set_level(KJ_LOG_WARN);
	return cmocka_run_group_tests(tests, ref_start, ref_stop);
}
