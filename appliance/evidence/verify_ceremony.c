// SPDX-License-Identifier: Apache-2.0
/*
 * Check 9, the ceremony (SPEC.md §5, `kinject verify --ek-ca CA.pem'):
 * that the AK the bundle's quotes are signed with was set up by a quorum of
 * officers in a genuine TPM.  From the bundle's ceremony_transcript:
 *   - the EK certificate chains to the TPM vendor's CA (--ek-ca) and is the
 *     one the bundle carries;
 *   - the EK public area of the residency proof is that certificate's key,
 *     the credential was made for this AK's name, and the challenge the
 *     officers' side made is the one the TPM activated;
 *   - the transcript's quote is by this AK over SHA-256 of the init request
 *     (the transcript body);
 *   - at least threshold distinct officers of the body's officer set signed
 *     exactly the body (CMS, detached).
 * Its own file: the rest of the verifier knows nothing of officers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "attest/attest.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "evidence.h"
#include "verify.h"
#include "verify_int.h"

#define CER KJ_VC_CEREMONY
#define F "ceremony_transcript"

struct cer {
	json_t *t, *body;
	const char *req;
	size_t req_len;
	STACK_OF(X509) *officers;
	X509 *ek;
	char who[1024];
};

static const char *s_at(const json_t *o, const char *a, const char *b)
{
	const json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static int b64(const char *in, uint8_t **out, size_t *len)
{
	return in ? kj_base64_decode(in, strlen(in), out, len) : -EINVAL;
}

static int load(const struct kj_evidence *ev, struct cer *c,
		struct kj_verify_report *rep)
{
	const json_t *r;
	BIO *bio;
	X509 *x;

	if (!ev->ceremony_transcript) {
		kj_vfail(rep, CER, "the bundle has no ceremony transcript");
		return -EBADMSG;
	}
	if (kj_json_load((const uint8_t *)ev->ceremony_transcript,
			 strlen(ev->ceremony_transcript), F, &c->t) < 0 ||
	    !(r = json_object_get(c->t, "request")) || !json_is_string(r) ||
	    kj_json_load((const uint8_t *)json_string_value(r),
			 json_string_length(r), F ".request", &c->body) < 0) {
		kj_vfail(rep, CER, "transcript: not a ceremony transcript");
		return -EBADMSG;
	}
	c->req = json_string_value(r);
	c->req_len = json_string_length(r);
	c->officers = sk_X509_new_null();
	bio = s_at(c->body, "officers", NULL) ?
		BIO_new_mem_buf(s_at(c->body, "officers", NULL), -1) : NULL;
	while (bio && c->officers &&
	       (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		sk_X509_push(c->officers, x);
	ERR_clear_error();
	BIO_free(bio);
	if (!c->officers || !sk_X509_num(c->officers)) {
		kj_vfail(rep, CER, "transcript: no officer certificates");
		return -EBADMSG;
	}
	return 0;
}

/* The EK certificate: the bundle's, chaining to --ek-ca. */
static int check_ek(const struct kj_evidence *ev, const char *ca,
		    struct cer *c, struct kj_verify_report *rep)
{
	const char *pem = s_at(c->body, "ek", "certificate");
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	BIO *bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	int rc = -EBADMSG;

	c->ek = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!c->ek) {
		kj_vfail(rep, CER, "transcript: no EK certificate (the TPM "
			 "has none: residency cannot be tied to a vendor)");
		goto out;
	}
	if (!ev->ek_cert_pem || strcmp(ev->ek_cert_pem, pem)) {
		kj_vfail(rep, CER, "the transcript's EK certificate is not the "
			 "bundle's ek_certificate_pem");
		goto out;
	}
	if (!st || !ctx || X509_STORE_load_file(st, ca) != 1) {
		kj_err_ssl("--ek-ca %s: cannot load the CA certificates", ca);
		kj_vfail(rep, CER, "--ek-ca %s: cannot load it", ca);
		goto out;
	}
	/* TCG EK certificates carry a critical SAN of TPM attributes. */
	X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
	if (X509_STORE_CTX_init(ctx, st, c->ek, NULL) != 1 ||
	    X509_verify_cert(ctx) != 1) {
		int e = X509_STORE_CTX_get_error(ctx);

		kj_vfail(rep, CER, "EK certificate does not chain to --ek-ca "
			 "%s: %s", ca, X509_verify_cert_error_string(e));
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	return rc;
}

/* The EK public area (TPM2B_PUBLIC) as an EVP_PKEY. */
static EVP_PKEY *tpm_pkey(const uint8_t *buf, size_t len)
{
	TPM2B_PUBLIC p = { 0 };
	const TPMT_PUBLIC *a = &p.publicArea;
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *prm = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *k = NULL;
	BIGNUM *n = NULL, *e = NULL;
	uint8_t pt[1 + 2 * 66];
	size_t off = 0;

	if (!b || Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, len, &off, &p) ||
	    off != len)
		goto out;
	if (a->type == TPM2_ALG_RSA) {
		uint32_t x = a->parameters.rsaDetail.exponent;

		n = BN_bin2bn(a->unique.rsa.buffer, a->unique.rsa.size, NULL);
		e = BN_new();
		if (!n || !e || !BN_set_word(e, x ? x : 65537) ||
		    !OSSL_PARAM_BLD_push_BN(b, "n", n) ||
		    !OSSL_PARAM_BLD_push_BN(b, "e", e))
			goto out;
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	} else if (a->type == TPM2_ALG_ECC &&
		   a->unique.ecc.x.size == a->unique.ecc.y.size &&
		   a->unique.ecc.x.size <= 66) {
		const char *g = a->parameters.eccDetail.curveID ==
				TPM2_ECC_NIST_P384 ? "P-384" : "P-256";
		size_t w = a->unique.ecc.x.size;

		pt[0] = 4;
		memcpy(pt + 1, a->unique.ecc.x.buffer, w);
		memcpy(pt + 1 + w, a->unique.ecc.y.buffer, w);
		if (!OSSL_PARAM_BLD_push_utf8_string(b, "group", g, 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(b, "pub", pt, 1 + 2 * w))
			goto out;
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	}
	prm = OSSL_PARAM_BLD_to_param(b);
	if (!ctx || !prm || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, prm) != 1)
		k = NULL;
out:
	ERR_clear_error();
	OSSL_PARAM_free(prm);
	OSSL_PARAM_BLD_free(b);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	return k;
}

static int check_residency(const struct kj_evidence *ev, struct cer *c,
			   struct kj_verify_report *rep)
{
	const json_t *r = json_object_get(c->body, "residency");
	char name[2 * KJ_TPM_NAME_LEN + 1];
	uint8_t *pub = NULL;
	size_t len;
	EVP_PKEY *k = NULL;
	const char *ch = s_at(r, "challenge_sha256", NULL),
		   *ac = s_at(r, "activated_sha256", NULL);
	int rc = -EBADMSG;

	kj_hex_encode(ev->ak_name, KJ_TPM_NAME_LEN, name);
	if (strcmp(s_at(r, "ak_name", NULL) ?: "", name) ||
	    strcmp(s_at(c->body, "ak", "name") ?: "", name)) {
		kj_vfail(rep, CER, "residency proof: made for another AK than "
			 "the bundle's (name %s)", name);
		goto out;
	}
	if (!ch || !ac || strlen(ch) != 64 || strcmp(ch, ac)) {
		kj_vfail(rep, CER, "residency proof: the activated challenge "
			 "is not the one made");
		goto out;
	}
	if (b64(s_at(c->body, "ek", "public"), &pub, &len) < 0 ||
	    !(k = tpm_pkey(pub, len)) ||
	    EVP_PKEY_eq(k, X509_get0_pubkey(c->ek)) != 1) {
		kj_vfail(rep, CER, "residency proof: the EK that activated the "
			 "credential is not the certified EK");
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(k);
	free(pub);
	return rc;
}

static int check_quote(const struct kj_evidence *ev, struct cer *c,
		       struct kj_verify_report *rep)
{
	uint8_t qd[32], pcrs[KJ_TPM_PCR_COUNT][32] = { { 0 } };
	uint8_t *att = NULL, *sig = NULL;
	size_t al, sl;
	const json_t *q = json_object_get(c->t, "quote");
	const char *p13 = s_at(q, "pcrs", "13"), *p14 = s_at(q, "pcrs", "14");
	enum kj_quote_check failed = KJ_QC_OK;
	struct kj_ak ak = { 0 };
	int rc = -EBADMSG;

	kj_sha256(c->req, c->req_len, qd);
	if (b64(s_at(q, "attest", NULL), &att, &al) < 0 ||
	    b64(s_at(q, "signature", NULL), &sig, &sl) < 0 || !p13 || !p14 ||
	    kj_hex_decode(p13, pcrs[13], 32) < 0 ||
	    kj_hex_decode(p14, pcrs[14], 32) < 0) {
		kj_vfail(rep, CER, "transcript: quote malformed");
		goto out;
	}
	if (kj_ak_parse(ev->ak_public, ev->ak_public_len, &ak, NULL) < 0 ||
	    kj_quote_verify(&ak, att, al, sig, sl, qd, KJ_PCR_DEFAULT_MASK,
			    pcrs, NULL, &failed) < 0) {
		kj_vfail(rep, CER, "transcript quote: %s fails (not this AK's "
			 "quote over the transcript's hash)",
			 kj_quote_check_name(failed));
		goto out;
	}
	rc = 0;
out:
	kj_ak_free(&ak);
	free(att);
	free(sig);
	return rc;
}

/* Which officer (index) made this valid signature over the body, or -1. */
static int one_sig(struct cer *c, const char *b64sig)
{
	uint8_t *der = NULL;
	size_t len;
	const unsigned char *p;
	CMS_ContentInfo *cms = NULL;
	STACK_OF(X509) *signers = NULL;
	BIO *data = NULL;
	int idx = -1;

	if (b64(b64sig, &der, &len) < 0)
		return -1;
	p = der;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	data = BIO_new_mem_buf(c->req, (int)c->req_len);
	if (cms && data &&
	    CMS_verify(cms, c->officers, NULL, data, NULL,
		       CMS_BINARY | CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY)
		    == 1 &&
	    (signers = CMS_get0_signers(cms)) && sk_X509_num(signers) == 1)
		for (int i = 0; i < sk_X509_num(c->officers); i++)
			if (!X509_cmp(sk_X509_value(signers, 0),
				      sk_X509_value(c->officers, i)))
				idx = i;
	ERR_clear_error();
	sk_X509_free(signers);
	BIO_free(data);
	CMS_ContentInfo_free(cms);
	free(der);
	return idx;
}

static int check_officers(struct cer *c, struct kj_verify_report *rep)
{
	const json_t *sigs = json_object_get(c->t, "signatures");
	json_int_t m = json_integer_value(json_object_get(c->body,
							  "threshold"));
	bool seen[256] = { false };
	size_t i, good = 0, w = 0;
	json_t *s;

	json_array_foreach(sigs, i, s) {
		int idx = one_sig(c, s_at(s, "cms", NULL));
		char sub[256];

		if (idx < 0 || idx >= 256) {
			kj_vfail(rep, CER, "transcript signature %zu: not a "
				 "valid signature of an officer of the set "
				 "over the transcript", i);
			return -EBADMSG;
		}
		if (seen[idx])
			continue;
		seen[idx] = true;
		good++;
		X509_NAME_oneline(X509_get_subject_name(
			sk_X509_value(c->officers, idx)), sub, sizeof(sub));
		w += (size_t)snprintf(c->who + w, w < sizeof(c->who) ?
				      sizeof(c->who) - w : 0, "%s%s",
				      good > 1 ? ", " : "", sub);
		if (w >= sizeof(c->who))
			w = sizeof(c->who) - 1;
	}
	if (m < 2 || (json_int_t)good < m) {
		kj_vfail(rep, CER, "transcript: %zu distinct officers signed, "
			 "the threshold is %lld", good, (long long)m);
		return -EBADMSG;
	}
	return 0;
}

void kj_verify_ceremony(const struct kj_evidence *ev,
			const struct kj_verify_opts *o,
			struct kj_verify_report *rep)
{
	struct cer c = { 0 };

	if (!o->ek_ca) {
		rep->check[CER].status = KJ_VS_SKIPPED;
		snprintf(rep->check[CER].detail, sizeof(rep->check[0].detail),
			 "no --ek-ca given");
		return;
	}
	if (load(ev, &c, rep) == 0 && check_ek(ev, o->ek_ca, &c, rep) == 0 &&
	    check_residency(ev, &c, rep) == 0 &&
	    check_quote(ev, &c, rep) == 0 && check_officers(&c, rep) == 0)
		kj_vpass(rep, CER,
			 "EK certificate chains to %s; AK resident with it; "
			 "transcript quoted by the AK; set up by %s (threshold "
			 "%lld of %d)", o->ek_ca, c.who,
			 (long long)json_integer_value(json_object_get(
				 c.body, "threshold")),
			 sk_X509_num(c.officers));
	json_decref(c.t);
	json_decref(c.body);
	sk_X509_pop_free(c.officers, X509_free);
	X509_free(c.ek);
}
