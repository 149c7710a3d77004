// SPDX-License-Identifier: Apache-2.0
/*
 * The simulated site's TLS client (sim_tls.h).  The appliance is
 * authenticated by its pinned certificate: the handshake fails unless its
 * CertificateVerify verifies with tls.pem's key, which only the
 * appliance's HSM holds.  In `kinject sim' the handshake and the records
 * run in the epoll loop (kj_sim_tls_step, kj_sim_recv, kj_sim_send).
 */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sim_tls.h"
#include "base/clock.h"
#include "base/log.h"
#include "sim_int.h"

int kj_sim_tls_ctx(const struct kj_sim_tls_opts *o, SSL_CTX **out)
{
	static const unsigned char alpn[] = "\x09kinject/1";
	int v = o->tls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	*out = NULL;
	if (!c)
		return kj_err_ssl("sim: SSL_CTX_new");
	if (!SSL_CTX_set_min_proto_version(c, v) ||
	    !SSL_CTX_set_max_proto_version(c, v) ||
	    (!o->no_alpn && SSL_CTX_set_alpn_protos(c, alpn,
						    sizeof(alpn) - 1))) {
		SSL_CTX_free(c);
		return kj_err_ssl("sim: TLS settings");
	}
	if (SSL_CTX_use_certificate_chain_file(c, o->cert) != 1) {
		SSL_CTX_free(c);
		return kj_err_ssl("sim: --cert %s", o->cert);
	}
	if (SSL_CTX_use_PrivateKey_file(c, o->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c) != 1) {
		SSL_CTX_free(c);
		return kj_err_ssl("sim: --key %s (with --cert %s)", o->key,
				  o->cert);
	}
	if (SSL_CTX_load_verify_locations(c, o->ca, NULL) != 1) {
		SSL_CTX_free(c);
		return kj_err_ssl("sim: --ca %s", o->ca);
	}
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	/* An appliance that closes without close_notify (after ABORT
	 * PROTOCOL) ends the stream like a plain EOF. */
	SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF);
	*out = c;
	return 0;
}

int kj_sim_tls_connect(SSL_CTX *ctx, int fd, SSL **out)
{
	SSL *s = SSL_new(ctx);
	int rc;

	*out = NULL;
	if (!s || SSL_set_fd(s, fd) != 1) {
		SSL_free(s);
		return kj_err_ssl("sim: SSL_new");
	}
	ERR_clear_error();
	/* TLS 1.3: a refusal of our certificate comes as an alert after
	 * our Finished, so the first read after this one fails instead. */
	rc = SSL_connect(s);
	if (rc != 1) {
		SSL_free(s);
		kj_err_ssl("sim: TLS handshake with the appliance");
		return -EPERM;
	}
	*out = s;
	return 0;
}

void kj_sim_tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

void kj_sim_tls_end(struct conn *c)
{
	if (!c->ssl)
		return;
	SSL_free(c->ssl);
	c->ssl = NULL;
}

void kj_sim_tls_failed(struct sim *s, struct conn *c)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "the appliance closed the connection";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	s->r->err_tls++;
	kj_log_ratelimited(&s->rl, KJ_LOG_ERR, "sim: socket %u: %s: TLS "
			   "handshake: %s", s->o->socket_base + c->idx,
			   s->o->connect, buf);
	if (c->in_device)
		return kj_sim_fail_device(s, c, "tls_refused");
	kj_sim_finish_socket(s, c, true);
}

void kj_sim_tls_step(struct sim *s, struct conn *c)
{
	int rc;

	if (!c->ssl) {
		c->ssl = SSL_new(s->tls);
		if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
			return kj_sim_tls_failed(s, c);
		SSL_set_connect_state(c->ssl);
	}
	ERR_clear_error();
	rc = SSL_do_handshake(c->ssl);
	c->last_progress_ms = kj_now_ms();
	if (rc == 1) {
		c->tls_want = 0;
		return kj_sim_ready(s, c);
	}
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		c->tls_want = EPOLLIN;
		return kj_sim_update_events(s, c);
	case SSL_ERROR_WANT_WRITE:
		c->tls_want = EPOLLOUT;
		return kj_sim_update_events(s, c);
	default:
		return kj_sim_tls_failed(s, c);
	}
}

bool kj_sim_tls_alert_pending(struct conn *c)
{
	char b;
	int n;

	ERR_clear_error();
	n = SSL_read(c->ssl, &b, 1);
	if (n > 0 || SSL_get_error(c->ssl, n) != SSL_ERROR_SSL)
		return false;
	/* Alerts are the reasons from SSL_AD_REASON_OFFSET on; the error
	 * stays queued for kj_sim_tls_failed to name. */
	return ERR_GET_REASON(ERR_peek_last_error()) >= SSL_AD_REASON_OFFSET;
}

/* recv/send semantics over SSL_read/SSL_write. */
static ssize_t ssl_result(struct conn *c, int n)
{
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (!errno)
			errno = ECONNRESET;
		ERR_clear_error();
		return -1;
	default:
		/* An alert: the appliance refused us after the handshake
		 * (TLS 1.3 checks our certificate after our Finished); the
		 * error stays queued for kj_sim_tls_failed. */
		errno = EPROTO;
		return -1;
	}
}

ssize_t kj_sim_recv(struct conn *c, void *buf, size_t len)
{
	size_t got = 0;
	int n;

	if (!c->ssl)
		return recv(c->fd, buf, len, 0);
	/* One record per SSL_read: drain what the socket has, so nothing
	 * waits in OpenSSL where epoll cannot see it. */
	while (got < len) {
		errno = 0;
		n = SSL_read(c->ssl, (char *)buf + got,
			     (int)(len - got > 1u << 30 ? 1u << 30 : len - got));
		if (n <= 0) {
			if (got)
				break;
			return ssl_result(c, n);
		}
		got += (size_t)n;
	}
	return (ssize_t)got;
}

ssize_t kj_sim_send(struct conn *c, const void *buf, size_t len)
{
	int n;

	if (!c->ssl)
		return send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	errno = 0;
	n = SSL_write(c->ssl, buf, (int)(len > 1u << 30 ? 1u << 30 : len));
	return n > 0 ? n : ssl_result(c, n);
}
