/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the TLS server: what tls.c (handshake, the remote key) shares
 * with tls_ktls.c (the traffic secrets into the kernel).  Not for other
 * modules.
 */
#ifndef KINJECT_TLS_INT_H
#define KINJECT_TLS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "tls.h"

/* One direction of the user-space records (tls_rec.c). */
struct kj_tls_dir {
	uint8_t key[16], iv[12];
	uint64_t seq;
};

struct kj_tls_conn {
	SSL *ssl; /* the handshake's; freed once it is done (kj_tls_ktls) */
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
	/* User-space records: the keys, and a record part-read or
	 * part-written (NULL while none: an idle connection holds none). */
	struct kj_tls_dir rd, wr;
	uint8_t *rx, *tx;
	size_t rx_len, rx_off, rx_plain, tx_len, tx_off, tx_plain;
};

/* The key log callback (SSL_CTX_set_keylog_callback): keeps the two
 * application traffic secrets of the connection, nothing else. */
void kj_tls_keylog(const SSL *ssl, const char *line);
/* Make c the connection whose handshake runs (for the signing method);
 * returns the one before. */
struct kj_tls_conn *kj_tls_running(struct kj_tls_conn *c);
/* RFC 8446 §7.3: the record key and IV of a traffic secret. */
KJ_MUST_CHECK int kj_tls_traffic_keys(const uint8_t secret[32],
				      struct kj_tls_dir *d);
/* Free the record buffers, wipe the keys (kj_tls_conn_free). */
void kj_tls_rec_free(struct kj_tls_conn *c);
/* SSL ex_data index of the struct kj_tls_conn. */
extern int kj_tls_conn_idx;

#endif
