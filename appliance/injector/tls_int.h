/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the TLS server: what tls.c (handshake, the remote key) shares
 * with tls_ktls.c (the traffic secrets into the kernel).  Not for other
 * modules.
 */
#ifndef KINJECT_TLS_INT_H
#define KINJECT_TLS_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "tls.h"

struct kj_tls_conn {
	SSL *ssl;
	int fd;
	/* WANT_SIGN: what to sign; then the keeper's answer. */
	bool want_sign, signed_;
	size_t in_len, sig_len;
	uint8_t in[KJ_TLS_SIGN_IN_MAX];
	uint8_t sig[KJ_TLS_SIGNATURE_MAX];
	/* SHA-256 suite: 32-byte secrets, from the key log callback. */
	bool have_ctx, have_stx;
	uint8_t client_secret[32], server_secret[32];
	const char *failure;
	char cn[256];
};

/* The key log callback (SSL_CTX_set_keylog_callback): keeps the two
 * application traffic secrets of the connection, nothing else. */
void kj_tls_keylog(const SSL *ssl, const char *line);
/* Make c the connection whose handshake runs (for the signing method);
 * returns the one before. */
struct kj_tls_conn *kj_tls_running(struct kj_tls_conn *c);
/* SSL ex_data index of the struct kj_tls_conn. */
extern int kj_tls_conn_idx;

#endif
