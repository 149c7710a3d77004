// SPDX-License-Identifier: Apache-2.0
/*
 * The TLS listener's key material from the state directory and the HSM
 * (tls_key.h).  Read once by the pre-flight, so a job that cannot serve
 * TLS refuses to start before it writes anything (SPEC.md §4).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls_key.h"
#include "base/log.h"
#include "base/util.h"
#include "hsm/hsm.h"
#include "cms.h"

#define SITE_CA_MAX (64 * 1024)

static int append(char **all, size_t *len, const char *path)
{
	uint8_t *buf;
	size_t n;
	char *p;

	KJ_TRY(kj_read_file(path, SITE_CA_MAX, &buf, &n));
	p = realloc(*all, *len + n + 2);
	if (!p) {
		free(buf);
		return -ENOMEM;
	}
	memcpy(p + *len, buf, n);
	*len += n;
	p[(*len)++] = '\n';
	p[*len] = 0;
	*all = p;
	free(buf);
	return 0;
}

/* STATE/site-ca/<name>.pem, each a certificate, all of them. */
static int site_cas(const char *state_dir, struct kj_tls_key *k)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent *d;
	size_t len = 0;
	int rc = 0;
	X509 *x;
	DIR *dh;

	snprintf(dir, sizeof(dir), "%s/site-ca", state_dir);
	dh = opendir(dir);
	while (dh && rc >= 0 && (d = readdir(dh))) {
		size_t l = strlen(d->d_name);

		if (l < 5 || strcmp(d->d_name + l - 4, ".pem"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		rc = kj_cert_load(path, &x);
		X509_free(x);
		if (rc >= 0)
			rc = append(&k->site_cas_pem, &len, path);
		if (rc >= 0)
			k->n_site_cas++;
	}
	if (dh)
		closedir(dh);
	if (rc >= 0 && !k->n_site_cas) {
		kj_err("%s: no site CA enrolled; --listen tls: accepts sites "
		       "whose certificates chain to one (kinject ceremony "
		       "request enrol-site-ca --name ID --cert ca.pem)", dir);
		rc = -ENOKEY;
	}
	return rc;
}

int kj_tls_key_load(const char *state_dir, struct kj_hsm *hsm,
		    struct kj_tls_key *out)
{
	uint8_t pt[133], *buf = NULL;
	size_t n = 0;
	EVP_PKEY *pub;
	int rc;

	memset(out, 0, sizeof(*out));
	out->hsm = hsm;
	snprintf(out->path, sizeof(out->path), "%s/tls.pem", state_dir);
	if (access(out->path, F_OK)) {
		kj_err("%s: missing: this appliance has no TLS key (it was "
		       "initialised before TLS); run the key ceremony again "
		       "on a fresh state to serve --listen tls:", out->path);
		return -ENOENT;
	}
	KJ_TRY(kj_cert_load(out->path, &out->cert));
	rc = kj_read_file(out->path, SITE_CA_MAX, &buf, &n);
	out->cert_pem = (char *)buf;
	if (rc < 0)
		goto fail;
	pub = X509_get0_pubkey(out->cert);
	if (!pub || !EVP_PKEY_is_a(pub, "EC") ||
	    !EVP_PKEY_get_octet_string_param(pub,
					     OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
					     pt, sizeof(pt), &n) || n != 65) {
		kj_err("%s: not an EC P-256 certificate", out->path);
		rc = -EINVAL;
		goto fail;
	}
	rc = kj_hsm_find_key_by_point(hsm, pt, n, &out->key);
	if (rc < 0) {
		kj_err("%s: the TLS private key is not in the HSM %s",
		       out->path, kj_hsm_uri(hsm));
		goto fail;
	}
	rc = site_cas(state_dir, out);
	if (rc < 0)
		goto fail;
	return 0;
fail:
	kj_tls_key_free(out);
	return rc;
}

void kj_tls_key_free(struct kj_tls_key *k)
{
	X509_free(k->cert);
	free(k->cert_pem);
	free(k->site_cas_pem);
	k->cert = NULL;
	k->cert_pem = k->site_cas_pem = NULL;
}

int kj_tls_key_sign(const struct kj_tls_key *k, const uint8_t *msg,
		    size_t len, uint8_t sig[KJ_TLS_SIG_MAX], size_t *siglen)
{
	uint8_t dgst[32], raw[64], *der = NULL;
	ECDSA_SIG *es;
	int n = -1;

	kj_sha256(msg, len, dgst);
	KJ_TRY(kj_hsm_sign_ecdsa_key(k->hsm, k->key, dgst, raw));
	es = ECDSA_SIG_new();
	if (es && ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL),
				 BN_bin2bn(raw + 32, 32, NULL)))
		n = i2d_ECDSA_SIG(es, &der);
	ECDSA_SIG_free(es);
	if (n <= 0 || n > KJ_TLS_SIG_MAX) {
		OPENSSL_free(der);
		return kj_err_ssl("%s: encoding the TLS signature", k->path);
	}
	memcpy(sig, der, (size_t)n);
	*siglen = (size_t)n;
	OPENSSL_free(der);
	return 0;
}
