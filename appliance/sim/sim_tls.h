/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The site's side of `--listen tls:` (PROTOCOL.md "TLS"), as a socket
 * controller on the line would do it: TLS 1.3, ALPN "kinject/1", a site
 * certificate and key (files), and the appliance's certificate pinned as
 * the only trust anchor (tls.pem from the appliance's state dir: it is
 * self-signed in the HSM, so the name is not checked, the key is).
 */
#ifndef KINJECT_SIM_TLS_H
#define KINJECT_SIM_TLS_H

#include <stdbool.h>

#include "base/kinject.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

struct kj_sim_tls_opts {
	const char *cert, *key; /* the site's certificate and key (PEM) */
	const char *ca;		/* the appliance's certificate (tls.pem) */
	bool tls12;		/* tests: offer TLS 1.2 only */
	bool no_alpn;		/* tests: offer no ALPN */
};

/* Errors name the file at fault. */
KJ_MUST_CHECK int kj_sim_tls_ctx(const struct kj_sim_tls_opts *o,
				 SSL_CTX **out);

/*
 * Handshake on a connected blocking fd: 0 with *out, or -EPERM (logged
 * with OpenSSL's reason) when the appliance refused or did not prove
 * its key.
 */
KJ_MUST_CHECK int kj_sim_tls_connect(SSL_CTX *ctx, int fd, SSL **out);

void kj_sim_tls_ctx_free(SSL_CTX *ctx);

#endif
