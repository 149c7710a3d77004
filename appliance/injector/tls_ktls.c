// SPDX-License-Identifier: Apache-2.0
/*
 * The TLS connection after kj_tls_conn_new (tls.h): the handshake steps,
 * what the site proved, and the move of the record layer into the kernel
 * (kTLS, Documentation/networking/tls.rst), so the engine's SENDMSG of
 * DATA straight from the arena mapping stays the one send path.
 *
 * The application traffic secrets come from OpenSSL's key log callback
 * (the only interface 3.0 has for them); the record keys are derived as
 * RFC 8446 §7.3 says and wiped once the kernel (or, without kTLS, the
 * user-space records of tls_rec.c) has them; the handshake's SSL is then
 * freed.  Both sequence numbers are 0: no tickets, no read-ahead, nothing
 * after Finished.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/tls.h>
#include <openssl/async.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/x509.h>

#include "tls.h"
#include "base/log.h"
#include "base/util.h"
#include "tls_int.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

void kj_tls_keylog(const SSL *ssl, const char *line)
{
	struct kj_tls_conn *c = SSL_get_ex_data(ssl, kj_tls_conn_idx);
	static const char cts[] = "CLIENT_TRAFFIC_SECRET_0 ";
	static const char sts[] = "SERVER_TRAFFIC_SECRET_0 ";
	const char *hex;
	uint8_t *dst;
	bool *have;

	if (!c)
		return;
	if (!strncmp(line, cts, sizeof(cts) - 1)) {
		dst = c->client_secret;
		have = &c->have_ctx;
	} else if (!strncmp(line, sts, sizeof(sts) - 1)) {
		dst = c->server_secret;
		have = &c->have_stx;
	} else {
		return;
	}
	/* "<label> <client random, 64 hex> <secret, 64 hex>" */
	hex = strchr(line + sizeof(cts) - 1, ' ');
	if (hex && strlen(hex + 1) == 64 && !kj_hex_decode(hex + 1, dst, 32))
		*have = true;
}

/* Why a handshake failed, from the verify result and OpenSSL's reason. */
static const char *why(struct kj_tls_conn *c)
{
	long v = SSL_get_verify_result(c->ssl);
	unsigned long e = ERR_peek_error();

	if (v != X509_V_OK)
		return X509_verify_cert_error_string(v);
	switch (ERR_GET_REASON(e)) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_WRONG_VERSION_NUMBER:
		return "the site offered no TLS 1.3 (TLS 1.3 only)";
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return "the site sent no client certificate";
	case SSL_R_NO_APPLICATION_PROTOCOL:
		return "the site did not offer ALPN " KJ_TLS_ALPN;
	case SSL_R_NO_SHARED_CIPHER:
		return "no shared cipher suite (TLS_AES_128_GCM_SHA256 only)";
	default:
		break;
	}
	if (c->failure)
		return c->failure;
	/* OpenSSL's own reason (static text), e.g. a record that is not TLS */
	return e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) :
	       "handshake failed";
}

static int peer(struct kj_tls_conn *c)
{
	const unsigned char *alpn;
	unsigned alen;
	X509 *x = SSL_get0_peer_certificate(c->ssl);
	X509_NAME *n = x ? X509_get_subject_name(x) : NULL;
	int i, len;

	SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
	if (alen != strlen(KJ_TLS_ALPN)) {
		c->failure = "the site did not offer ALPN " KJ_TLS_ALPN;
		return -EPERM;
	}
	/* Exactly one CN: the site id it must send in HELLO. */
	i = n ? X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
	if (i < 0 || X509_NAME_get_index_by_NID(n, NID_commonName, i) >= 0) {
		c->failure = "the client certificate has not exactly one "
			     "subject CN";
		return -EPERM;
	}
	len = X509_NAME_get_text_by_NID(n, NID_commonName, c->cn,
					sizeof(c->cn));
	if (len <= 0 || len > 255 || strlen(c->cn) != (size_t)len) {
		c->failure = "the client certificate's CN is not a site id";
		return -EPERM;
	}
	return 0;
}

enum kj_tls_step kj_tls_handshake(struct kj_tls_conn *c)
{
	struct kj_tls_conn *prev;
	int rc;

	if (c->want_sign && !c->signed_)
		return KJ_TLS_WANT_SIGN;
	ERR_clear_error();
	prev = kj_tls_running(c);
	rc = SSL_do_handshake(c->ssl);
	kj_tls_running(prev);
	if (rc == 1) {
		if (peer(c) < 0)
			return KJ_TLS_FAILED;
		return KJ_TLS_DONE;
	}
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return KJ_TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return KJ_TLS_WANT_WRITE;
	case SSL_ERROR_WANT_ASYNC:
		if (c->want_sign)
			return KJ_TLS_WANT_SIGN;
		c->failure = "the handshake paused without a signature to make";
		return KJ_TLS_FAILED;
	case SSL_ERROR_SYSCALL:
		if (!ERR_peek_error())
			c->failure = "the site closed the connection";
		break;
	case SSL_ERROR_ZERO_RETURN:
		c->failure = "the site closed the connection";
		break;
	case SSL_ERROR_WANT_ASYNC_JOB:
		c->failure = "OpenSSL had no ASYNC job for the handshake";
		break;
	default:
		break;
	}
	c->failure = why(c);
	ERR_clear_error();
	return KJ_TLS_FAILED;
}

const uint8_t *kj_tls_sign_input(const struct kj_tls_conn *c, size_t *len)
{
	*len = c->in_len;
	return c->in;
}

void kj_tls_signed(struct kj_tls_conn *c, const uint8_t *sig, size_t len)
{
	if (len > sizeof(c->sig)) {
		len = 0;
		c->failure = "the keeper's signature is too long";
	} else if (!len) {
		c->failure = "the keeper refused to sign the handshake";
	}
	if (len)
		memcpy(c->sig, sig, len);
	c->sig_len = len;
	c->signed_ = true;
}

const char *kj_tls_failure(const struct kj_tls_conn *c)
{
	return c->failure ? c->failure : "handshake failed";
}

const char *kj_tls_peer_cn(const struct kj_tls_conn *c)
{
	return c->cn;
}

/* RFC 8446 §7.1 HKDF-Expand-Label(secret, label, "", len), SHA-256. */
static int expand(const uint8_t secret[32], const char *label, uint8_t *out,
		  size_t len)
{
	uint8_t info[2 + 1 + 6 + 16 + 1];
	size_t ll = strlen(label), n = 0;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *k = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ok;
	OSSL_PARAM p[5];

	kj_put_u16be(info, (uint16_t)len);
	n = 2;
	info[n++] = (uint8_t)(6 + ll);
	memcpy(info + n, "tls13 ", 6);
	memcpy(info + n + 6, label, ll);
	n += 6 + ll;
	info[n++] = 0; /* empty context */
	p[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						(char *)"SHA256", 0);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)secret, 32);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
	p[4] = OSSL_PARAM_construct_end();
	ok = k && EVP_KDF_derive(k, out, len, p) == 1;
	EVP_KDF_CTX_free(k);
	EVP_KDF_free(kdf);
	return ok ? 0 : kj_err_ssl("TLS: HKDF-Expand-Label(%s)", label);
}

int kj_tls_traffic_keys(const uint8_t secret[32], struct kj_tls_dir *d)
{
	d->seq = 0;
	KJ_TRY(expand(secret, "key", d->key, sizeof(d->key)));
	return expand(secret, "iv", d->iv, sizeof(d->iv));
}

static int crypto_info(const uint8_t secret[32],
		       struct tls12_crypto_info_aes_gcm_128 *ci)
{
	struct kj_tls_dir d;
	int rc;

	memset(ci, 0, sizeof(*ci));
	ci->info.version = TLS_1_3_VERSION;
	ci->info.cipher_type = TLS_CIPHER_AES_GCM_128;
	rc = kj_tls_traffic_keys(secret, &d);
	memcpy(ci->key, d.key, sizeof(ci->key));
	memcpy(ci->salt, d.iv, 4);
	memcpy(ci->iv, d.iv + 4, 8);
	explicit_bzero(&d, sizeof(d));
	return rc;
}

/* The handshake is over: its SSL (and everything it holds) goes, only
 * the CN and, for user-space records, the keys stay. */
static void handshake_over(struct kj_tls_conn *c)
{
	explicit_bzero(c->client_secret, sizeof(c->client_secret));
	explicit_bzero(c->server_secret, sizeof(c->server_secret));
	SSL_free(c->ssl);
	c->ssl = NULL;
}

int kj_tls_ktls(struct kj_tls_conn *c)
{
	static bool said;
	struct tls12_crypto_info_aes_gcm_128 tx, rx;
	int rc = -EIO;

	if (!c->have_ctx || !c->have_stx) {
		kj_err("TLS: the handshake left no traffic secrets");
		goto out;
	}
	/* No kTLS in this kernel (module absent) or not TCP: user space. */
	if (setsockopt(c->fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")))
		return kj_tls_user_records(c);
	rc = crypto_info(c->server_secret, &tx);
	if (rc >= 0)
		rc = crypto_info(c->client_secret, &rx);
	/* The ULP alone passes records through: without TLS_TX (the kernel
	 * has no gcm(aes): its crypto modules not loaded) user space works
	 * on this socket still.  With TLS_TX but not TLS_RX it is neither
	 * kernel nor user-space TLS, so it is closed. */
	if (rc >= 0 && setsockopt(c->fd, SOL_TLS, TLS_TX, &tx, sizeof(tx))) {
		if (!said)
			kj_warn("TLS: kTLS TLS_TX: %s (the kernel's gcm, ctr "
				"and ghash crypto modules loaded?): records "
				"in user space", strerror(errno));
		said = true;
		rc = 0;
	} else if (rc >= 0 &&
		   setsockopt(c->fd, SOL_TLS, TLS_RX, &rx, sizeof(rx))) {
		rc = -errno;
		kj_err("TLS: kTLS TLS_RX: %s", strerror(-rc));
	} else if (rc >= 0) {
		rc = 1;
	}
	explicit_bzero(&tx, sizeof(tx));
	explicit_bzero(&rx, sizeof(rx));
	if (rc == 0)
		return kj_tls_user_records(c);
out:
	handshake_over(c);
	return rc;
}

int kj_tls_user_records(struct kj_tls_conn *c)
{
	int rc = -EIO;

	if (!c->have_ctx || !c->have_stx)
		kj_err("TLS: the handshake left no traffic secrets");
	else if ((rc = kj_tls_traffic_keys(c->server_secret, &c->wr)) >= 0)
		rc = kj_tls_traffic_keys(c->client_secret, &c->rd);
	handshake_over(c);
	return rc < 0 ? rc : 0;
}

bool kj_tls_ktls_available(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return false;
	/* The ULP is found (its module loaded) before the socket's state
	 * is checked: ENOTCONN means kTLS is there, ENOENT that it is not. */
	rc = setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls"));
	rc = rc < 0 ? errno : 0;
	close(fd);
	return rc == ENOTCONN || rc == 0;
}
