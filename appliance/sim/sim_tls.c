// SPDX-License-Identifier: Apache-2.0
/*
 * The simulated site's TLS client (sim_tls.h).  The appliance is
 * authenticated by its pinned certificate: the handshake fails unless its
 * CertificateVerify verifies with tls.pem's key, which only the
 * appliance's HSM holds.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sim_tls.h"
#include "base/log.h"

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
