// SPDX-License-Identifier: Apache-2.0
/*
 * The TLS 1.3 server of the injector (tls.h): the SSL_CTX with the site
 * policy, and the server key whose signatures come from the keeper.
 *
 * OpenSSL 3.0 has no hook for "someone else signs the CertificateVerify"
 * (BoringSSL's SSL_PRIVATE_KEY_METHOD).  The legacy EVP_PKEY_METHOD does:
 * an EC key with a non-default EC_KEY_METHOD is "foreign", OpenSSL then
 * signs with the EVP_PKEY_METHOD registered for EC, and its digestsign
 * sees the whole message (RFC 8446 §4.4.3), which is what the keeper must
 * check.  That method pauses the handshake's ASYNC job until the keeper
 * answered.  The deprecated interfaces are used here only.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <openssl/async.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "base/log.h"
#include "tls_int.h"

struct kj_tls_server {
	SSL_CTX *ctx;
};

int kj_tls_conn_idx = -1;
static EC_KEY_METHOD *remote_ec;

/* The connection whose handshake runs now (the injector is one thread). */
static struct kj_tls_conn *running;

struct kj_tls_conn *kj_tls_running(struct kj_tls_conn *c)
{
	struct kj_tls_conn *prev = running;

	running = c;
	return prev;
}

/*
 * OpenSSL prefers an application's EVP_PKEY_METHOD for every EC key of
 * the process, so a key that is not the remote one (a test's client in
 * the same process) is signed here as OpenSSL would: hash, ECDSA.
 */
static int local_digestsign(const EVP_MD *md, const EC_KEY *ec,
			    unsigned char *sig, size_t *siglen,
			    const unsigned char *tbs, size_t tbslen)
{
	unsigned char dgst[EVP_MAX_MD_SIZE];
	unsigned dlen, slen = (unsigned)*siglen;

	if (!sig) {
		*siglen = (size_t)ECDSA_size(ec);
		return 1;
	}
	if (!md || EVP_Digest(tbs, tbslen, dgst, &dlen, md, NULL) != 1 ||
	    ECDSA_sign(0, dgst, (int)dlen, sig, &slen, (EC_KEY *)ec) != 1)
		return 0;
	*siglen = slen;
	return 1;
}

static int remote_digestsign(EVP_MD_CTX *mctx, unsigned char *sig,
			     size_t *siglen, const unsigned char *tbs,
			     size_t tbslen)
{
	struct kj_tls_conn *c = running;
	const EVP_MD *md = EVP_MD_CTX_get0_md(mctx);
	EVP_PKEY *pk = EVP_PKEY_CTX_get0_pkey(EVP_MD_CTX_get_pkey_ctx(mctx));
	const EC_KEY *ec = pk ? EVP_PKEY_get0_EC_KEY(pk) : NULL;

	if (!ec)
		return 0;
	if (EC_KEY_get_method(ec) != remote_ec)
		return local_digestsign(md, ec, sig, siglen, tbs, tbslen);
	if (!sig) {
		*siglen = KJ_TLS_SIGNATURE_MAX;
		return 1;
	}
	/* Only inside a handshake job, only SHA-256 (ecdsa_secp256r1_sha256). */
	if (!c || !ASYNC_get_current_job() || !md ||
	    EVP_MD_get_type(md) != NID_sha256 || tbslen > sizeof(c->in) ||
	    *siglen < KJ_TLS_SIGNATURE_MAX)
		return 0;
	memcpy(c->in, tbs, tbslen);
	c->in_len = tbslen;
	c->want_sign = true;
	c->signed_ = false;
	if (!ASYNC_pause_job())
		return 0;
	c = running; /* resumed by kj_tls_handshake for this connection */
	c->want_sign = false;
	if (!c->signed_ || !c->sig_len)
		return 0;
	memcpy(sig, c->sig, c->sig_len);
	*siglen = c->sig_len;
	return 1;
}

static void init_once(void)
{
	const EVP_PKEY_METHOD *std = EVP_PKEY_meth_find(EVP_PKEY_EC);
	EVP_PKEY_METHOD *m = EVP_PKEY_meth_new(EVP_PKEY_EC, 0);

	remote_ec = EC_KEY_METHOD_new(EC_KEY_get_default_method());
	kj_tls_conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (!std || !m || !remote_ec || kj_tls_conn_idx < 0)
		goto fail;
	EVP_PKEY_meth_copy(m, std); /* ctrl: the digest set-up */
	EVP_PKEY_meth_set_digestsign(m, remote_digestsign);
	/* Replaces EC for foreign keys only: ours is the injector's one. */
	if (EVP_PKEY_meth_add0(m) == 1)
		return;
fail:
	EVP_PKEY_meth_free(m);
	EC_KEY_METHOD_free(remote_ec);
	remote_ec = NULL;
}

/* The server key: tls.pem's public point, signing by remote_digestsign. */
static EVP_PKEY *remote_key(X509 *cert)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	EVP_PKEY *pub = X509_get0_pubkey(cert), *pk = NULL;
	uint8_t pt[65];
	size_t n = 0;
	EC_KEY *ec;

	pthread_once(&once, init_once);
	if (!remote_ec || !pub || !EVP_PKEY_is_a(pub, "EC") ||
	    !EVP_PKEY_get_octet_string_param(pub,
					     OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
					     pt, sizeof(pt), &n) || n != 65)
		return NULL;
	ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	if (ec && EC_KEY_oct2key(ec, pt, n, NULL) == 1 &&
	    EC_KEY_set_method(ec, remote_ec) == 1 && (pk = EVP_PKEY_new()) &&
	    EVP_PKEY_assign_EC_KEY(pk, ec) == 1)
		return pk;
	EVP_PKEY_free(pk);
	EC_KEY_free(ec);
	return NULL;
}

static int alpn_select(SSL *ssl, const unsigned char **out,
		       unsigned char *outlen, const unsigned char *in,
		       unsigned inlen, void *arg)
{
	static const unsigned char want[] = "\x09" KJ_TLS_ALPN;
	unsigned char *sel;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, want, sizeof(want) - 1, in,
				  inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static int add_cas(SSL_CTX *ctx, const char *cas_pem)
{
	BIO *b = BIO_new_mem_buf(cas_pem, -1);
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
	unsigned n = 0;
	X509 *x;

	while (b && names && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		if (X509_STORE_add_cert(st, x) != 1 ||
		    !sk_X509_NAME_push(names,
				       X509_NAME_dup(X509_get_subject_name(x))))
			n = 0, x = (X509_free(x), NULL);
		if (!x)
			break;
		X509_free(x);
		n++;
	}
	ERR_clear_error(); /* the end of the PEM text */
	BIO_free(b);
	if (!n) {
		sk_X509_NAME_pop_free(names, X509_NAME_free);
		return kj_err_ssl("TLS: no site CA certificate could be "
				  "loaded");
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	return 0;
}

static int configure(SSL_CTX *ctx, X509 *cert, EVP_PKEY *key)
{
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") ||
	    !SSL_CTX_set1_sigalgs_list(ctx, "ECDSA+SHA256") ||
	    !SSL_CTX_set_num_tickets(ctx, 0) ||
	    !SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) ||
	    SSL_CTX_use_certificate(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1)
		return kj_err_ssl("TLS: setting up the server (tls.pem, "
				  "TLS 1.3 policy)");
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* ASYNC: the keeper signs; partial writes: the engine's sends
	 * resume from the bytes a write took (kj_tls_write). */
	SSL_CTX_set_mode(ctx, SSL_MODE_ASYNC | SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			 SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
			   SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	SSL_CTX_set_keylog_callback(ctx, kj_tls_keylog);
	return 0;
}

int kj_tls_server_new(const char *cert_pem, const char *cas_pem,
		      struct kj_tls_server **out)
{
	struct kj_tls_server *s = calloc(1, sizeof(*s));
	BIO *b = BIO_new_mem_buf(cert_pem, -1);
	X509 *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	EVP_PKEY *key = cert ? remote_key(cert) : NULL;
	int rc = -EIO;

	BIO_free(b);
	*out = NULL;
	if (!s || !key) {
		rc = kj_err_ssl("TLS: tls.pem: not an EC P-256 certificate");
		goto out;
	}
	s->ctx = SSL_CTX_new(TLS_server_method());
	if (!s->ctx) {
		rc = kj_err_ssl("TLS: SSL_CTX_new");
		goto out;
	}
	KJ_TRY_GOTO(rc, configure(s->ctx, cert, key), out);
	KJ_TRY_GOTO(rc, add_cas(s->ctx, cas_pem), out);
	*out = s;
	s = NULL;
	rc = 0;
out:
	kj_tls_server_free(s);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

void kj_tls_server_free(struct kj_tls_server *s)
{
	if (!s)
		return;
	SSL_CTX_free(s->ctx);
	free(s);
}

int kj_tls_conn_new(struct kj_tls_server *s, int fd, struct kj_tls_conn **out)
{
	struct kj_tls_conn *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->ssl = SSL_new(s->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1 ||
	    SSL_set_ex_data(c->ssl, kj_tls_conn_idx, c) != 1) {
		kj_tls_conn_free(c);
		return kj_err_ssl("TLS: a connection");
	}
	SSL_set_accept_state(c->ssl);
	*out = c;
	return 0;
}

void kj_tls_conn_free(struct kj_tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl);
	kj_tls_rec_free(c);
	explicit_bzero(c, sizeof(*c));
	free(c);
}
