// SPDX-License-Identifier: Apache-2.0
/*
 * CMS SignedData verification (SPEC.md §3.1-3.4) against the customer's
 * enrolled release certificate.  For the attached form (FW.cms, CREDS.cms
 * contents, in the arena) OpenSSL never sees the content: we find eContent
 * in place with der.h, digest it there, and give OpenSSL a detached copy of
 * the (non-secret) SignedData to check the signer and the signed attributes.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base/der.h"
#include "base/log.h"
#include "cms.h"

static const uint8_t oid_signed[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
				      0x01, 0x07, 0x02 };
static const uint8_t oid_data[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
				    0x07, 0x01 };

int kj_cert_load(const char *path, X509 **out)
{
	BIO *b = BIO_new_file(path, "rb");
	X509 *x = NULL;

	*out = NULL;
	if (!b)
		return kj_err_ssl("%s: cannot open certificate", path);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (!x) {
		ERR_clear_error();
		(void)BIO_reset(b);
		x = d2i_X509_bio(b, NULL);
	}
	BIO_free(b);
	if (!x)
		return kj_err_ssl("%s: not an X.509 certificate (PEM or DER)",
				  path);
	*out = x;
	return 0;
}

static void name_signer(CMS_SignerInfo *si, char *buf, size_t cap)
{
	ASN1_OCTET_STRING *kid = NULL;
	X509_NAME *iss = NULL;
	ASN1_INTEGER *sn = NULL;
	char *s = NULL;
	BIGNUM *bn = NULL;

	snprintf(buf, cap, "an unknown signer");
	if (CMS_SignerInfo_get0_signer_id(si, &kid, &iss, &sn) != 1)
		return;
	if (iss && sn && (bn = ASN1_INTEGER_to_BN(sn, NULL)) &&
	    (s = BN_bn2hex(bn))) {
		char name[256];

		X509_NAME_oneline(iss, name, sizeof(name));
		snprintf(buf, cap, "issuer %s serial %s", name, s);
	} else if (kid) {
		snprintf(buf, cap, "subject key id of %d bytes", kid->length);
	}
	OPENSSL_free(s);
	BN_free(bn);
}

/* The checks shared by the attached and the detached form. */
static int check_signer(CMS_ContentInfo *cms, X509 *signer, const char *path,
			const uint8_t *data, size_t len)
{
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	uint8_t dig[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	X509_ALGOR *dalg = NULL;
	const EVP_MD *md;
	const ASN1_OCTET_STRING *md_attr;
	const ASN1_OBJECT *ct;
	CMS_SignerInfo *si;
	char who[400], sname[256];

	if (!sis || sk_CMS_SignerInfo_num(sis) != 1) {
		kj_err("%s: signature has %d signers, want exactly one (the "
		       "customer's release key)", path,
		       sis ? sk_CMS_SignerInfo_num(sis) : 0);
		return -EBADMSG;
	}
	si = sk_CMS_SignerInfo_value(sis, 0);
	if (CMS_SignerInfo_cert_cmp(si, signer) != 0) {
		name_signer(si, who, sizeof(who));
		X509_NAME_oneline(X509_get_subject_name(signer), sname,
				  sizeof(sname));
		kj_err("%s: signed by %s, not by the enrolled release "
		       "certificate (%s)", path, who, sname);
		return -EBADMSG;
	}
	if (CMS_signed_get_attr_count(si) <= 0) {
		kj_err("%s: signature has no signed attributes; sign with "
		       "openssl cms -sign (without -noattr)", path);
		return -EBADMSG;
	}
	CMS_SignerInfo_set1_signer_cert(si, signer);
	if (CMS_SignerInfo_verify(si) != 1) {
		kj_err_ssl("%s: signature does not verify with the enrolled "
			   "release certificate", path);
		return -EBADMSG;
	}
	ct = CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_pkcs9_contentType),
					 -3, V_ASN1_OBJECT);
	if (!ct || OBJ_obj2nid(ct) != NID_pkcs7_data) {
		kj_err("%s: signed content type is not id-data", path);
		return -EBADMSG;
	}
	CMS_SignerInfo_get0_algs(si, NULL, NULL, &dalg, NULL);
	md = dalg ? EVP_get_digestbyobj(dalg->algorithm) : NULL;
	if (!md || EVP_MD_get_size(md) < 32) {
		kj_err("%s: signature digest algorithm missing or weaker than "
		       "SHA-256", path);
		return -EBADMSG;
	}
	md_attr = CMS_signed_get0_data_by_OBJ(si,
			OBJ_nid2obj(NID_pkcs9_messageDigest), -3,
			V_ASN1_OCTET_STRING);
	/* EVP_Digest frees its context with OPENSSL_clear_free: no copy. */
	if (!md_attr || EVP_Digest(data, len, dig, &dl, md, NULL) != 1 ||
	    (unsigned)ASN1_STRING_length(md_attr) != dl ||
	    CRYPTO_memcmp(ASN1_STRING_get0_data(md_attr), dig, dl)) {
		ERR_clear_error();
		kj_err("%s: content does not match the signed messageDigest "
		       "(modified after signing)", path);
		return -EBADMSG;
	}
	return 0;
}

int kj_cms_verify_detached(const uint8_t *data, size_t len, const uint8_t *sig,
			   size_t sig_len, X509 *signer, const char *path)
{
	const unsigned char *p = sig;
	CMS_ContentInfo *cms;
	ASN1_OCTET_STRING **pos;
	int rc;

	cms = d2i_CMS_ContentInfo(NULL, &p, (long)sig_len);
	if (!cms || p != sig + sig_len) {
		CMS_ContentInfo_free(cms);
		kj_err_ssl("%s: not a DER CMS signature (make it with openssl "
			   "cms -sign -binary -outform DER)", path);
		return -EBADMSG;
	}
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		kj_err("%s: not a CMS SignedData", path);
		rc = -EBADMSG;
		goto out;
	}
	pos = CMS_get0_content(cms);
	if (pos && *pos) {
		kj_err("%s: signature carries its own content; want a detached "
		       "signature (openssl cms -sign without -nodetach)", path);
		rc = -EBADMSG;
		goto out;
	}
	rc = check_signer(cms, signer, path, data, len);
out:
	CMS_ContentInfo_free(cms);
	return rc;
}

/* Locate the parts of an attached SignedData; quiet=true probes. */
struct sd_parts {
	struct kj_tlv ci_oid, sd, eci, ctype, econtent;
};

static int split_signed(const uint8_t *der, size_t len, const char *path,
			struct sd_parts *s)
{
	struct kj_tlv ci, wrap, ex;
	struct kj_der top, c, w, sd, eci, e;
	char txt[96];

	kj_der_init(&top, der, len, path);
	top.quiet = true;
	if (kj_der_expect(&top, KJ_DER_SEQUENCE, &ci, "") < 0 ||
	    kj_der_end(&top, "") < 0 || (kj_der_enter(&top, &ci, &c), 0) ||
	    kj_der_expect(&c, KJ_DER_OID, &s->ci_oid, "") < 0 ||
	    !kj_der_oid_is(&s->ci_oid, oid_signed, sizeof(oid_signed))) {
		kj_err("%s: the decrypted content is not a CMS SignedData: "
		       "unsigned content is refused (SPEC.md §3.1: openssl cms "
		       "-sign -binary -nodetach, then encrypt)", path);
		return -EBADMSG;
	}
	c.quiet = false;
	KJ_TRY(kj_der_expect(&c, KJ_DER_CTX0, &wrap, "SignedData content"));
	KJ_TRY(kj_der_end(&c, "ContentInfo"));
	kj_der_enter(&c, &wrap, &w);
	KJ_TRY(kj_der_expect(&w, KJ_DER_SEQUENCE, &s->sd, "SignedData"));
	KJ_TRY(kj_der_end(&w, "SignedData content"));
	kj_der_enter(&w, &s->sd, &sd);
	KJ_TRY(kj_der_expect(&sd, KJ_DER_INTEGER, &ex, "SignedData.version"));
	KJ_TRY(kj_der_expect(&sd, KJ_DER_SET, &ex, "digestAlgorithms"));
	KJ_TRY(kj_der_expect(&sd, KJ_DER_SEQUENCE, &s->eci,
			     "encapContentInfo"));
	kj_der_enter(&sd, &s->eci, &eci);
	KJ_TRY(kj_der_expect(&eci, KJ_DER_OID, &s->ctype, "eContentType"));
	if (!kj_der_oid_is(&s->ctype, oid_data, sizeof(oid_data))) {
		kj_der_oid_text(&s->ctype, txt, sizeof(txt));
		kj_err("%s: signed content type %s is not id-data", path, txt);
		return -EBADMSG;
	}
	if (!kj_der_more(&eci)) {
		kj_err("%s: SignedData carries no content (detached); sign "
		       "with -nodetach (SPEC.md §3.1)", path);
		return -EBADMSG;
	}
	KJ_TRY(kj_der_expect(&eci, KJ_DER_CTX0, &ex, "eContent"));
	KJ_TRY(kj_der_end(&eci, "encapContentInfo"));
	kj_der_enter(&eci, &ex, &e);
	if (kj_der_peek(&e) == 0x24) {
		kj_err("%s: eContent is a constructed OCTET STRING (BER); "
		       "sign without -stream", path);
		return -EBADMSG;
	}
	KJ_TRY(kj_der_expect(&e, KJ_DER_OCTET_STRING, &s->econtent,
			     "eContent"));
	return kj_der_end(&e, "eContent");
}

/* DER of the same ContentInfo without eContent (all non-secret bytes). */
static uint8_t *detached_copy(const struct sd_parts *s, size_t *out_len)
{
	uint8_t h_ci[6], h_wrap[6], h_sd[6], h_eci[6], *buf, *p;
	const uint8_t *sd_end = s->sd.val + s->sd.len;
	const uint8_t *eci_end = s->eci.tlv + s->eci.tlv_len;
	size_t before = (size_t)(s->eci.tlv - s->sd.val);
	size_t after = (size_t)(sd_end - eci_end);
	size_t l_eci, l_sd, l_wrap, l_ci, n_eci, n_sd, n_wrap, n_ci;

	l_eci = s->ctype.tlv_len;
	n_eci = kj_der_header(KJ_DER_SEQUENCE, l_eci, h_eci);
	l_sd = before + n_eci + l_eci + after;
	n_sd = kj_der_header(KJ_DER_SEQUENCE, l_sd, h_sd);
	l_wrap = n_sd + l_sd;
	n_wrap = kj_der_header(KJ_DER_CTX0, l_wrap, h_wrap);
	l_ci = s->ci_oid.tlv_len + n_wrap + l_wrap;
	n_ci = kj_der_header(KJ_DER_SEQUENCE, l_ci, h_ci);
	*out_len = n_ci + l_ci;
	buf = malloc(*out_len);
	if (!buf)
		return NULL;
	p = buf;
#define PUT(src, n) (memcpy(p, (src), (n)), p += (n))
	PUT(h_ci, n_ci);
	PUT(s->ci_oid.tlv, s->ci_oid.tlv_len);
	PUT(h_wrap, n_wrap);
	PUT(h_sd, n_sd);
	PUT(s->sd.val, before);
	PUT(h_eci, n_eci);
	PUT(s->ctype.tlv, s->ctype.tlv_len);
	PUT(eci_end, after);
#undef PUT
	return buf;
}

int kj_cms_verify_signed(const uint8_t *der, size_t len, X509 *signer,
			 const char *path, const uint8_t **content,
			 size_t *content_len)
{
	struct sd_parts s;
	const unsigned char *p;
	CMS_ContentInfo *cms = NULL;
	uint8_t *copy;
	size_t copy_len;
	int rc;

	*content = NULL;
	*content_len = 0;
	KJ_TRY(split_signed(der, len, path, &s));
	copy = detached_copy(&s, &copy_len);
	if (!copy)
		return -ENOMEM;
	p = copy;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)copy_len);
	if (!cms || p != copy + copy_len) {
		kj_err_ssl("%s: SignedData does not parse", path);
		rc = -EBADMSG;
		goto out;
	}
	KJ_TRY_GOTO(rc, check_signer(cms, signer, path, s.econtent.val,
				     s.econtent.len), out);
	*content = s.econtent.val;
	*content_len = s.econtent.len;
out:
	CMS_ContentInfo_free(cms);
	free(copy);
	return rc;
}
