// SPDX-License-Identifier: Apache-2.0
/*
 * The self-signed transport certificate (SPEC.md §3, §5: transport.pem),
 * signed inside the HSM.  OpenSSL 3.0 has no public way to attach an
 * externally made signature to an X509, so: fill the certificate, let
 * X509_sign() with a throw-away key set the algorithm identifiers
 * (ecdsa-with-SHA256 in both places), take the TBSCertificate DER, sign its
 * SHA-256 with the HSM key, and assemble
 *   Certificate ::= SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }
 * ourselves (RFC 5280 §4.1).
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/der.h"
#include "base/log.h"
#include "base/util.h"
#include "hsm.h"

/* AlgorithmIdentifier { ecdsa-with-SHA256 (1.2.840.10045.4.3.2) } */
static const uint8_t alg_ecdsa_sha256[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a,
					    0x86, 0x48, 0xce, 0x3d, 0x04,
					    0x03, 0x02 };

static EVP_PKEY *point_to_pkey(const uint8_t *pt, size_t len)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pk = NULL;
	OSSL_PARAM p[] = {
		OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
				       (char *)"prime256v1", 0),
		OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pt,
					len),
		OSSL_PARAM_END,
	};

	if (!c || EVP_PKEY_fromdata_init(c) != 1 ||
	    EVP_PKEY_fromdata(c, &pk, EVP_PKEY_PUBLIC_KEY, p) != 1)
		pk = NULL;
	EVP_PKEY_CTX_free(c);
	return pk;
}

int kj_x509_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	ok = e && X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/*
 * Everything but the signature; algorithm ids set by a throw-away key.
 * ku: the keyUsage; eku: an extendedKeyUsage or NULL.
 */
static X509 *draft(EVP_PKEY *pub, const char *cn, unsigned days,
		   const char *ku, const char *eku)
{
	X509 *x = X509_new();
	EVP_PKEY *tmp = EVP_EC_gen("P-256");
	X509_NAME *name = X509_NAME_new();
	uint8_t serial[16];
	BIGNUM *bn = NULL;
	bool ok;

	ok = x && tmp && name && RAND_bytes(serial, sizeof(serial)) == 1;
	if (ok) {
		serial[0] &= 0x7f; /* positive, RFC 5280 §4.1.2.2 */
		bn = BN_bin2bn(serial, sizeof(serial), NULL);
		ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
		     X509_set_version(x, 2) &&
		     X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
						(const unsigned char *)cn, -1,
						-1, 0) &&
		     X509_set_subject_name(x, name) &&
		     X509_set_issuer_name(x, name) &&
		     X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
		     X509_gmtime_adj(X509_getm_notAfter(x),
				     (long)days * 86400) &&
		     X509_set_pubkey(x, pub) &&
		     !kj_x509_add_ext(x, NULL, NID_basic_constraints, "critical,CA:FALSE") &&
		     !kj_x509_add_ext(x, NULL, NID_key_usage, ku) &&
		     (!eku || !kj_x509_add_ext(x, NULL, NID_ext_key_usage,
					       eku)) &&
		     !kj_x509_add_ext(x, NULL, NID_subject_key_identifier, "hash") &&
		     X509_sign(x, tmp, EVP_sha256()) > 0;
	}
	BN_free(bn);
	X509_NAME_free(name);
	EVP_PKEY_free(tmp);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static X509 *assemble(const uint8_t *tbs, size_t tbs_len,
		      const uint8_t *sig, size_t sig_len)
{
	uint8_t hdr[6], bhdr[6], *buf, *p;
	size_t bl = kj_der_header(KJ_DER_BIT_STRING, sig_len + 1, bhdr);
	size_t body = tbs_len + sizeof(alg_ecdsa_sha256) + bl + 1 + sig_len;
	size_t hl = kj_der_header(KJ_DER_SEQUENCE, body, hdr);
	const unsigned char *q;
	X509 *x;

	buf = malloc(hl + body);
	if (!buf)
		return NULL;
	p = buf;
	memcpy(p, hdr, hl);
	p += hl;
	memcpy(p, tbs, tbs_len);
	p += tbs_len;
	memcpy(p, alg_ecdsa_sha256, sizeof(alg_ecdsa_sha256));
	p += sizeof(alg_ecdsa_sha256);
	memcpy(p, bhdr, bl);
	p += bl;
	*p++ = 0; /* no unused bits */
	memcpy(p, sig, sig_len);
	q = buf;
	x = d2i_X509(NULL, &q, (long)(hl + body));
	free(buf);
	return x;
}

int kj_hsm_sign_cert(struct kj_hsm *h, unsigned long key, X509 *draft,
		     EVP_PKEY *pub, X509 **out)
{
	uint8_t dgst[32], raw[64], *tbs = NULL, *der = NULL;
	int tbs_len, der_len, rc = -EIO;
	ECDSA_SIG *es = NULL;
	X509 *x = NULL;

	*out = NULL;
	tbs_len = i2d_re_X509_tbs(draft, &tbs);
	if (tbs_len <= 0) {
		rc = kj_err_ssl("%s: encoding a TBSCertificate", kj_hsm_uri(h));
		goto out;
	}
	kj_sha256(tbs, (size_t)tbs_len, dgst);
	KJ_TRY_GOTO(rc, kj_hsm_sign_ecdsa_key(h, key, dgst, raw), out);
	es = ECDSA_SIG_new();
	if (!es || !ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL),
				   BN_bin2bn(raw + 32, 32, NULL)) ||
	    (der_len = i2d_ECDSA_SIG(es, &der)) <= 0) {
		rc = kj_err_ssl("%s: encoding the ECDSA signature",
				kj_hsm_uri(h));
		goto out;
	}
	x = assemble(tbs, (size_t)tbs_len, der, (size_t)der_len);
	if (!x || X509_verify(x, pub) != 1) {
		rc = kj_err_ssl("%s: the HSM-signed certificate does not "
				"verify", kj_hsm_uri(h));
		goto out;
	}
	*out = x;
	x = NULL;
	rc = 0;
out:
	X509_free(x);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	OPENSSL_free(tbs);
	return rc;
}

int kj_hsm_transport_cert(struct kj_hsm *h, const char *cn, unsigned days,
			  X509 **out)
{
	uint8_t point[133];
	unsigned long key;
	EVP_PKEY *pub = NULL;
	X509 *x = NULL;
	size_t plen;
	int rc = -EIO;

	*out = NULL;
	KJ_TRY(kj_hsm_public_point(h, point, sizeof(point), &plen));
	pub = point_to_pkey(point, plen);
	x = pub ? draft(pub, cn, days,
			"critical,digitalSignature,keyAgreement", NULL) : NULL;
	if (!x) {
		rc = kj_err_ssl("%s: building the transport certificate",
				kj_hsm_uri(h));
		goto out;
	}
	KJ_TRY_GOTO(rc, kj_hsm_uri_key(h, &key), out);
	rc = kj_hsm_sign_cert(h, key, x, pub, out);
out:
	X509_free(x);
	EVP_PKEY_free(pub);
	return rc;
}

int kj_hsm_tls_cert(struct kj_hsm *h, unsigned long key, const uint8_t pt[65],
		    const char *cn, unsigned days, X509 **out)
{
	EVP_PKEY *pub = point_to_pkey(pt, 65);
	X509 *x = NULL;
	int rc = -EIO;

	*out = NULL;
	/* A TLS 1.3 server key only signs (RFC 8446 §4.4.3): no keyAgreement. */
	x = pub ? draft(pub, cn, days, "critical,digitalSignature",
			"serverAuth") : NULL;
	if (!x)
		rc = kj_err_ssl("%s: building the TLS certificate",
				kj_hsm_uri(h));
	else
		rc = kj_hsm_sign_cert(h, key, x, pub, out);
	X509_free(x);
	EVP_PKEY_free(pub);
	return rc;
}
