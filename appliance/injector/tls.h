/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS 1.3 server side of `--listen tls:` (PROTOCOL.md "TLS"), run by
 * the sandboxed injector, which cannot reach the HSM: the server key's
 * CertificateVerify signature is made by the keeper (keeper_sign.h).
 *
 * OpenSSL runs the handshake on the connection's own (non-blocking) fd.
 * The server's private key is an EC key that holds only the public point:
 * its signing method hands the bytes to sign to the caller and pauses the
 * handshake (OpenSSL's ASYNC jobs, SSL_MODE_ASYNC), so the injector's
 * other connections keep moving while the keeper signs:
 *
 *   for (;;) switch (kj_tls_handshake(c)) {
 *   case KJ_TLS_WANT_READ / WANT_WRITE: wait for the fd, call again
 *   case KJ_TLS_WANT_SIGN: send kj_tls_sign_input() to the keeper; when
 *        its answer comes, kj_tls_signed(), call again
 *   case KJ_TLS_DONE: kj_tls_peer_cn() is the site; kj_tls_ktls() hands
 *        the record layer to the kernel
 *   case KJ_TLS_FAILED: kj_tls_failure() says why; close, count
 *   }
 *
 * Policy: TLS 1.3 only, TLS_AES_128_GCM_SHA256 only (the one suite every
 * kernel's kTLS has, and the one hash the keeper accepts), ECDSA P-256
 * with SHA-256, ALPN "kinject/1" required, a client certificate required
 * that chains to an enrolled site CA (purpose sslclient), no session
 * tickets or resumption (every connection is authenticated afresh, and no
 * post-handshake record shifts the kTLS sequence numbers).
 */
#ifndef KINJECT_TLS_H
#define KINJECT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/kinject.h"

#define KJ_TLS_ALPN "kinject/1"
/* What a sign request may carry: more than a CertificateVerify input, so
 * the keeper sees (and refuses) whatever OpenSSL asked for. */
#define KJ_TLS_SIGN_IN_MAX 512
#define KJ_TLS_SIGNATURE_MAX 72

struct kj_tls_server;
struct kj_tls_conn;

enum kj_tls_step {
	KJ_TLS_DONE = 0,
	KJ_TLS_WANT_READ,
	KJ_TLS_WANT_WRITE,
	KJ_TLS_WANT_SIGN,
	KJ_TLS_FAILED,
};

/*
 * cert_pem: the appliance's certificate (tls.pem); cas_pem: the enrolled
 * site CAs, concatenated PEM.  Errors are logged.
 */
KJ_MUST_CHECK int kj_tls_server_new(const char *cert_pem,
				    const char *cas_pem,
				    struct kj_tls_server **out);
void kj_tls_server_free(struct kj_tls_server *s);

/* A connection on fd (the caller keeps owning fd; set it non-blocking). */
KJ_MUST_CHECK int kj_tls_conn_new(struct kj_tls_server *s, int fd,
				  struct kj_tls_conn **out);
void kj_tls_conn_free(struct kj_tls_conn *c);

enum kj_tls_step kj_tls_handshake(struct kj_tls_conn *c);

/* KJ_TLS_WANT_SIGN: the bytes the keeper is asked to sign. */
const uint8_t *kj_tls_sign_input(const struct kj_tls_conn *c, size_t *len);
/* The keeper's DER signature; len 0: it refused (the handshake fails). */
void kj_tls_signed(struct kj_tls_conn *c, const uint8_t *sig, size_t len);

/* KJ_TLS_FAILED: why, for the log and the counters (static text). */
const char *kj_tls_failure(const struct kj_tls_conn *c);
/* KJ_TLS_DONE: the client certificate's subject CN (the site id). */
const char *kj_tls_peer_cn(const struct kj_tls_conn *c);

/*
 * After KJ_TLS_DONE: move the record layer into the kernel (TCP_ULP "tls",
 * TLS_TX and TLS_RX with the application traffic keys).  1: done, the fd
 * now reads and writes plaintext (DATA still goes out with SENDMSG from
 * the arena); 0: the kernel has no kTLS (module absent, not TCP), the
 * connection has user-space records (kj_tls_read/kj_tls_write, as
 * kj_tls_user_records); < 0: the socket is unusable (close it).  Either
 * way the traffic secrets are wiped and the handshake's SSL is freed:
 * only the CN and the record keys stay.
 */
KJ_MUST_CHECK int kj_tls_ktls(struct kj_tls_conn *c);

/* Instead of kj_tls_ktls() where kTLS is not to be tried: user-space
 * records (tls_rec.c); 0, or < 0: the connection is unusable. */
KJ_MUST_CHECK int kj_tls_user_records(struct kj_tls_conn *c);

/*
 * Does this kernel offer kTLS (the `tls' TCP ULP, loaded on demand)?
 * Probed on a fresh unconnected TCP socket, so before the sandbox, which
 * has neither socket() nor, without kTLS, setsockopt().
 */
bool kj_tls_ktls_available(void);

/* User-space records (no kTLS): like read/write on the fd; -EAGAIN when
 * it would block, 0 at a clean end (close_notify or EOF between records),
 * other < 0: the connection is unusable (a record not authentic, an alert,
 * a post-handshake message).  kj_tls_write writes one record of at most
 * 2^14 bytes and returns its length once it is all on the socket; after
 * -EAGAIN call it again with the same bytes. */
ssize_t kj_tls_read(struct kj_tls_conn *c, void *buf, size_t len);
ssize_t kj_tls_write(struct kj_tls_conn *c, const void *buf, size_t len);
/* Plaintext of a record already read from the fd: reading it does not
 * wait for the fd. */
bool kj_tls_pending(const struct kj_tls_conn *c);

#endif
