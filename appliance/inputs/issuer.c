// SPDX-License-Identifier: Apache-2.0
/*
 * Issue mode's certificate authority (issuer.h): the enrolled issuing CA,
 * found with its key in the HSM before the job starts, and the device
 * certificates it signs there.  In inputs/ because the CA is an input the
 * officers enrolled and the pre-flight checks it like the others.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "issuer.h"
#include "base/log.h"
#include "hsm/hsm.h"
#include "cms.h"

/* STATE/issuing-ca/<name>.pem: exactly one. */
static int find_pem(const char *state_dir, char *out, size_t cap)
{
	char dir[PATH_MAX];
	struct dirent *d;
	unsigned n = 0;
	DIR *dh;

	snprintf(dir, sizeof(dir), "%s/issuing-ca", state_dir);
	dh = opendir(dir);
	if (!dh) {
		kj_err("%s: %s: credential_mode issue needs an issuing CA "
		       "the officers enrolled (ceremony request "
		       "enrol-issuing-ca)", dir, strerror(errno));
		return -ENOKEY;
	}
	while ((d = readdir(dh))) {
		size_t l = strlen(d->d_name);

		if (l < 5 || strcmp(d->d_name + l - 4, ".pem"))
			continue;
		if (n++ == 0 && (size_t)snprintf(out, cap, "%s/%s", dir,
						 d->d_name) >= cap)
			n = 2; /* a name this long is not the officers' */
	}
	closedir(dh);
	if (n != 1) {
		kj_err("%s: %s issuing CA; credential_mode issue needs exactly "
		       "one", dir, n ? "more than one" : "no");
		return -ENOKEY;
	}
	return 0;
}

int kj_issuer_load(const char *state_dir, struct kj_hsm *hsm,
		   struct kj_issuer *out)
{
	uint8_t pt[133];
	size_t n = 0;
	EVP_PKEY *pub;
	int rc;

	memset(out, 0, sizeof(*out));
	out->hsm = hsm;
	KJ_TRY(find_pem(state_dir, out->path, sizeof(out->path)));
	KJ_TRY(kj_cert_load(out->path, &out->ca));
	pub = X509_get0_pubkey(out->ca);
	if (!pub || !EVP_PKEY_is_a(pub, "EC") ||
	    !EVP_PKEY_get_octet_string_param(pub,
					     OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
					     pt, sizeof(pt), &n)) {
		kj_err("%s: the issuing CA's key is not an EC key", out->path);
		rc = -EINVAL;
		goto fail;
	}
	rc = kj_hsm_find_key_by_point(hsm, pt, n, &out->key);
	if (rc < 0) {
		kj_err("%s: the issuing CA's private key is not in the HSM",
		       out->path);
		goto fail;
	}
	out->tmp = EVP_EC_gen("P-256");
	if (!out->tmp) {
		rc = kj_err_ssl("issue mode: a P-256 key");
		goto fail;
	}
	return 0;
fail:
	kj_issuer_free(out);
	return rc;
}

void kj_issuer_free(struct kj_issuer *is)
{
	X509_free(is->ca);
	EVP_PKEY_free(is->tmp);
	is->ca = NULL;
	is->tmp = NULL;
}

static X509 *draft(const struct kj_issuer *is, EVP_PKEY *dev,
		   const char *serial)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	uint8_t sn[16];
	BIGNUM *bn = NULL;
	bool ok;

	ok = x && name && RAND_bytes(sn, sizeof(sn)) == 1;
	if (ok) {
		sn[0] &= 0x7f; /* positive, RFC 5280 §4.1.2.2 */
		bn = BN_bin2bn(sn, sizeof(sn), NULL);
		ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
		     X509_set_version(x, 2) &&
		     X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
						(const unsigned char *)serial,
						-1, -1, 0) &&
		     X509_set_subject_name(x, name) &&
		     X509_set_issuer_name(x, X509_get_subject_name(is->ca)) &&
		     X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
		     X509_set1_notAfter(x, X509_get0_notAfter(is->ca)) &&
		     X509_set_pubkey(x, dev) &&
		     !kj_x509_add_ext(x, is->ca, NID_basic_constraints,
				      "critical,CA:FALSE") &&
		     !kj_x509_add_ext(x, is->ca, NID_key_usage,
				      "critical,digitalSignature") &&
		     !kj_x509_add_ext(x, is->ca, NID_subject_key_identifier,
				      "hash") &&
		     !kj_x509_add_ext(x, is->ca,
				      NID_authority_key_identifier,
				      "keyid:always") &&
		     X509_sign(x, is->tmp, EVP_sha256()) > 0;
	}
	BN_free(bn);
	X509_NAME_free(name);
	if (!ok) {
		kj_err_ssl("issue mode: certificate for %s", serial);
		X509_free(x);
		return NULL;
	}
	return x;
}

const char *kj_issuer_hsm_uri(const struct kj_issuer *is)
{
	return kj_hsm_uri(is->hsm);
}

int kj_issuer_issue(const struct kj_issuer *is, EVP_PKEY *dev,
		    const char *serial, uint8_t *out, size_t cap)
{
	X509 *d = draft(is, dev, serial), *x = NULL;
	unsigned char *p = out;
	int n, rc;

	if (!d)
		return -EIO;
	rc = kj_hsm_sign_cert(is->hsm, is->key, d,
			      X509_get0_pubkey(is->ca), &x);
	X509_free(d);
	if (rc < 0)
		return rc;
	n = i2d_X509(x, NULL);
	if (n <= 0 || (size_t)n > cap || (size_t)n > KJ_ISSUED_CERT_MAX) {
		kj_err("issue mode: the certificate for %s is %d bytes, more "
		       "than %d (the issuing CA's subject is too long?)",
		       serial, n, KJ_ISSUED_CERT_MAX);
		X509_free(x);
		return -EMSGSIZE;
	}
	n = i2d_X509(x, &p);
	X509_free(x);
	return n;
}
