// SPDX-License-Identifier: Apache-2.0
/*
 * CMS AuthEnvelopedData (RFC 5083) with one key-agreement recipient
 * (RFC 5652 §6.2.2, ECDH per RFC 5753 / RFC 5008 ECC-CMS-SharedInfo), as
 * `openssl cms -encrypt -aes-256-gcm -recip transport.pem -keyopt
 * ecdh_kdf_md:sha256' makes it (SPEC.md §3.1, §3.2).  Parsed in place with
 * der.h; Z, KEK, CEK and the plaintext are written only to the arena.
 * The key agreement and AES-GCM steps are in cms_crypto.c.  Decisions and
 * the exact bytes: docs/INPUTS.md.
 */
#include <stdbool.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cms.h"
#include "base/der.h"
#include "base/log.h"
#include "secret/arena.h"
#include "cms_int.h"

#define OID(...) { __VA_ARGS__ }
static const uint8_t oid_auth_env[] = OID(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
					  0x01, 0x09, 0x10, 0x01, 0x17);
static const uint8_t oid_env[] = OID(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
				     0x07, 0x03);
static const uint8_t oid_ec_pub[] = OID(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
					0x01);
static const uint8_t oid_p256[] = OID(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
				      0x07);

/* Key agreement schemes: RFC 5753 §7.1.4 (std and cofactor DH). */
static const struct kdf_alg kdf_algs[] = {
	{ OID(0x2b, 0x81, 0x05, 0x10, 0x86, 0x48, 0x3f, 0x00, 0x02), 9,
	  "dhSinglePass-stdDH-sha1kdf-scheme", NULL },
	{ OID(0x2b, 0x81, 0x04, 0x01, 0x0b, 0x00), 6,
	  "dhSinglePass-stdDH-sha224kdf-scheme", NULL },
	{ OID(0x2b, 0x81, 0x04, 0x01, 0x0b, 0x01), 6,
	  "dhSinglePass-stdDH-sha256kdf-scheme", "SHA256" },
	{ OID(0x2b, 0x81, 0x04, 0x01, 0x0b, 0x02), 6,
	  "dhSinglePass-stdDH-sha384kdf-scheme", "SHA384" },
	{ OID(0x2b, 0x81, 0x04, 0x01, 0x0b, 0x03), 6,
	  "dhSinglePass-stdDH-sha512kdf-scheme", "SHA512" },
	/* P-256 has cofactor 1: cofactor DH gives the same Z. */
	{ OID(0x2b, 0x81, 0x04, 0x01, 0x0e, 0x01), 6,
	  "dhSinglePass-cofactorDH-sha256kdf-scheme", "SHA256" },
	{ OID(0x2b, 0x81, 0x04, 0x01, 0x0e, 0x02), 6,
	  "dhSinglePass-cofactorDH-sha384kdf-scheme", "SHA384" },
	{ OID(0x2b, 0x81, 0x04, 0x01, 0x0e, 0x03), 6,
	  "dhSinglePass-cofactorDH-sha512kdf-scheme", "SHA512" },
};

/* AES key wrap (RFC 3394) and AES-GCM (RFC 5084): NIST aes arc + last. */
static const uint8_t oid_aes_arc[] = OID(0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
					 0x04, 0x01);

/* Last arc of an aes OID (wrap: 5/25/45, gcm: 6/26/46) -> key bytes. */
static size_t aes_oid_key_len(const struct kj_tlv *oid, unsigned base)
{
	uint8_t last;

	if (oid->tag != KJ_DER_OID || oid->len != sizeof(oid_aes_arc) + 1 ||
	    memcmp(oid->val, oid_aes_arc, sizeof(oid_aes_arc)))
		return 0;
	last = oid->val[sizeof(oid_aes_arc)];
	if (last == base)
		return 16;
	if (last == base + 20)
		return 24;
	if (last == base + 40)
		return 32;
	return 0;
}

static int unsupported(const struct kj_der *d, const char *what,
		       const struct kj_tlv *oid, const char *hint)
{
	char txt[96];

	kj_der_oid_text(oid, txt, sizeof(txt));
	kj_err("%s: unsupported %s %s%s", d->path, what, txt, hint);
	return -EINVAL;
}

/* AlgorithmIdentifier: SEQUENCE { OID, params OPTIONAL }. */
static int read_alg(struct kj_der *d, const char *what, struct kj_tlv *alg,
		    struct kj_tlv *oid, struct kj_tlv *params, bool *has_params)
{
	struct kj_der a;

	KJ_TRY(kj_der_expect(d, KJ_DER_SEQUENCE, alg, what));
	kj_der_enter(d, alg, &a);
	KJ_TRY(kj_der_expect(&a, KJ_DER_OID, oid, what));
	*has_params = kj_der_more(&a);
	if (*has_params)
		KJ_TRY(kj_der_next(&a, params, what));
	return kj_der_end(&a, what);
}

/* OriginatorIdentifierOrKey must be originatorKey [1] (RFC 5753 §3.1.1). */
static int parse_originator(struct kj_der *d, struct kari *k)
{
	struct kj_tlv orig, key, alg, oid, params, bits;
	struct kj_der o, kd;
	bool has_params;

	KJ_TRY(kj_der_expect(d, KJ_DER_CTX0, &orig, "kari.originator"));
	kj_der_enter(d, &orig, &o);
	KJ_TRY(kj_der_expect(&o, KJ_DER_CTX1, &key, "kari.originatorKey"));
	KJ_TRY(kj_der_end(&o, "kari.originator"));
	kj_der_enter(&o, &key, &kd);
	KJ_TRY(read_alg(&kd, "originatorKey.algorithm", &alg, &oid, &params,
			&has_params));
	if (!kj_der_oid_is(&oid, oid_ec_pub, sizeof(oid_ec_pub)))
		return unsupported(d, "originator key algorithm", &oid,
				   " (want id-ecPublicKey)");
	if (has_params && params.tag != KJ_DER_NULL &&
	    !kj_der_oid_is(&params, oid_p256, sizeof(oid_p256)))
		return unsupported(d, "originator key curve", &params,
				   " (want P-256)");
	KJ_TRY(kj_der_expect(&kd, KJ_DER_BIT_STRING, &bits,
			     "originatorKey.publicKey"));
	KJ_TRY(kj_der_end(&kd, "kari.originatorKey"));
	if (bits.len < 2 || bits.val[0] != 0)
		return kj_der_fail(d, bits.tlv, "originatorKey.publicKey",
				   "bad BIT STRING");
	k->point = bits.val + 1;
	k->point_len = bits.len - 1;
	return 0;
}

static int parse_kari(struct kj_der *parent, const struct kj_tlv *t,
		      struct kari *k)
{
	struct kj_tlv v, alg, oid, params, woid, wparams, ukm;
	struct kj_der d, w;
	bool has_params, has_wparams;
	long version;
	int rc;

	memset(k, 0, sizeof(*k));
	kj_der_enter(parent, t, &d);
	KJ_TRY(kj_der_expect(&d, KJ_DER_INTEGER, &v, "kari.version"));
	KJ_TRY(kj_der_small_int(&d, &v, "kari.version", &version));
	if (version != 3)
		return kj_der_fail(&d, v.tlv, "kari.version", "not 3");
	KJ_TRY(parse_originator(&d, k));
	rc = kj_der_optional(&d, KJ_DER_CTX1, &ukm, "kari.ukm");
	if (rc < 0)
		return rc;
	if (rc) {
		struct kj_der u;

		kj_der_enter(&d, &ukm, &u);
		KJ_TRY(kj_der_expect(&u, KJ_DER_OCTET_STRING, &k->ukm,
				     "kari.ukm"));
		KJ_TRY(kj_der_end(&u, "kari.ukm"));
		k->has_ukm = true;
	}
	KJ_TRY(read_alg(&d, "kari.keyEncryptionAlgorithm", &alg, &oid, &params,
			&has_params));
	for (size_t i = 0; i < KJ_ARRAY_SIZE(kdf_algs); i++)
		if (kj_der_oid_is(&oid, kdf_algs[i].oid, kdf_algs[i].oid_len))
			k->kdf = &kdf_algs[i];
	if (!k->kdf)
		return unsupported(&d, "key agreement algorithm", &oid,
				   " (SPEC.md §3.1: ECDH with a SHA-256 KDF)");
	if (!k->kdf->md) {
		kj_err("%s: key agreement %s: SPEC.md §3.1 needs a SHA-256 KDF; "
		       "encrypt with -keyopt ecdh_kdf_md:sha256", d.path,
		       k->kdf->name);
		return -EINVAL;
	}
	if (!has_params || params.tag != KJ_DER_SEQUENCE)
		return kj_der_fail(&d, alg.tlv, "kari.keyEncryptionAlgorithm",
				   "no key wrap algorithm parameter");
	k->wrap = params;
	kj_der_enter(&d, &params, &w);
	KJ_TRY(kj_der_expect(&w, KJ_DER_OID, &woid, "key wrap algorithm"));
	has_wparams = kj_der_more(&w);
	if (has_wparams)
		KJ_TRY(kj_der_next(&w, &wparams, "key wrap algorithm"));
	KJ_TRY(kj_der_end(&w, "key wrap algorithm"));
	k->kek_len = aes_oid_key_len(&woid, 5);
	if (!k->kek_len || (has_wparams && wparams.tag != KJ_DER_NULL))
		return unsupported(&d, "key wrap algorithm", &woid,
				   " (want id-aes256-wrap)");
	KJ_TRY(kj_der_expect(&d, KJ_DER_SEQUENCE, &k->reks,
			     "kari.recipientEncryptedKeys"));
	return kj_der_end(&d, "KeyAgreeRecipientInfo");
}

/* GCMParameters ::= SEQUENCE { nonce OCTET STRING, icvLen INTEGER DEFAULT 12 } */
static int parse_content_alg(struct kj_der *d, struct envelope *e)
{
	struct kj_tlv alg, oid, params, icv;
	struct kj_der p;
	bool has_params;
	long tag_len = 12;
	int rc;

	KJ_TRY(read_alg(d, "contentEncryptionAlgorithm", &alg, &oid, &params,
			&has_params));
	e->cek_len = aes_oid_key_len(&oid, 6);
	if (!e->cek_len)
		return unsupported(d, "content encryption", &oid,
				   " (SPEC.md §3.1: -aes-256-gcm)");
	if (!has_params || params.tag != KJ_DER_SEQUENCE)
		return kj_der_fail(d, alg.tlv, "contentEncryptionAlgorithm",
				   "no GCMParameters");
	kj_der_enter(d, &params, &p);
	KJ_TRY(kj_der_expect(&p, KJ_DER_OCTET_STRING, &e->nonce, "GCM nonce"));
	rc = kj_der_optional(&p, KJ_DER_INTEGER, &icv, "GCM icvLen");
	if (rc < 0)
		return rc;
	if (rc)
		KJ_TRY(kj_der_small_int(&p, &icv, "GCM icvLen", &tag_len));
	KJ_TRY(kj_der_end(&p, "GCMParameters"));
	if (e->nonce.len < 1 || e->nonce.len > 64)
		return kj_der_fail(d, e->nonce.tlv, "GCM nonce", "bad length");
	if (tag_len < 12 || tag_len > 16)
		return kj_der_fail(d, params.tlv, "GCM icvLen",
				   "not 12..16 bytes");
	e->tag_len = (size_t)tag_len;
	return 0;
}

/* AuthEnvelopedData, RFC 5083 §2.1. */
static int parse_envelope(const uint8_t *der, size_t len, const char *path,
			  struct envelope *e)
{
	struct kj_tlv ci, oid, wrap, aed, v, skip, eci, ctype;
	struct kj_der top, c, w, a, ec;
	long version;
	int rc;

	memset(e, 0, sizeof(*e));
	e->base = der;
	kj_der_init(&top, der, len, path);
	KJ_TRY(kj_der_expect(&top, KJ_DER_SEQUENCE, &ci, "ContentInfo"));
	KJ_TRY(kj_der_end(&top, "ContentInfo"));
	kj_der_enter(&top, &ci, &c);
	KJ_TRY(kj_der_expect(&c, KJ_DER_OID, &oid, "ContentInfo.contentType"));
	if (kj_der_oid_is(&oid, oid_env, sizeof(oid_env))) {
		kj_err("%s: is a CMS EnvelopedData (no authentication); "
		       "SPEC.md §3.1 needs AuthEnvelopedData: encrypt with "
		       "-aes-256-gcm", path);
		return -EINVAL;
	}
	if (!kj_der_oid_is(&oid, oid_auth_env, sizeof(oid_auth_env)))
		return unsupported(&c, "content type", &oid,
				   " (want AuthEnvelopedData, SPEC.md §3.1)");
	KJ_TRY(kj_der_expect(&c, KJ_DER_CTX0, &wrap, "ContentInfo.content"));
	KJ_TRY(kj_der_end(&c, "ContentInfo"));
	kj_der_enter(&c, &wrap, &w);
	KJ_TRY(kj_der_expect(&w, KJ_DER_SEQUENCE, &aed, "AuthEnvelopedData"));
	KJ_TRY(kj_der_end(&w, "ContentInfo.content"));
	kj_der_enter(&w, &aed, &a);
	KJ_TRY(kj_der_expect(&a, KJ_DER_INTEGER, &v, "version"));
	KJ_TRY(kj_der_small_int(&a, &v, "version", &version));
	if (version != 0)
		return kj_der_fail(&a, v.tlv, "AuthEnvelopedData.version",
				   "not 0");
	rc = kj_der_optional(&a, KJ_DER_CTX0, &skip, "originatorInfo");
	if (rc < 0)
		return rc;
	KJ_TRY(kj_der_expect(&a, KJ_DER_SET, &e->recipients, "recipientInfos"));
	KJ_TRY(kj_der_expect(&a, KJ_DER_SEQUENCE, &eci,
			     "authEncryptedContentInfo"));
	kj_der_enter(&a, &eci, &ec);
	KJ_TRY(kj_der_expect(&ec, KJ_DER_OID, &ctype, "contentType"));
	KJ_TRY(parse_content_alg(&ec, e));
	if (kj_der_peek(&ec) == KJ_DER_CTX0_PRIM || kj_der_peek(&ec) == KJ_DER_CTX0)
		KJ_TRY(kj_der_next(&ec, &e->ciphertext, "encryptedContent"));
	else
		return kj_der_fail(&ec, ec.p, "encryptedContent",
				   "missing (detached content is not supported)");
	KJ_TRY(kj_der_end(&ec, "authEncryptedContentInfo"));
	rc = kj_der_optional(&a, KJ_DER_CTX1, &e->auth_attrs, "authAttrs");
	if (rc < 0)
		return rc;
	e->has_auth_attrs = rc;
	KJ_TRY(kj_der_expect(&a, KJ_DER_OCTET_STRING, &e->mac, "mac"));
	rc = kj_der_optional(&a, KJ_DER_CTX2, &skip, "unauthAttrs");
	if (rc < 0)
		return rc;
	KJ_TRY(kj_der_end(&a, "AuthEnvelopedData"));
	if (e->mac.len != e->tag_len)
		return kj_der_fail(&a, e->mac.tlv, "mac",
				   "length differs from the GCM icvLen");
	return 0;
}

/* Does a KeyAgreeRecipientIdentifier name cert? (RFC 5652 §6.2.2) */
static bool rid_matches(const struct kj_tlv *rid, X509 *cert)
{
	uint8_t *iss = NULL, *ser = NULL;
	int il, sl;
	bool ok = false;

	if (rid->tag == KJ_DER_SEQUENCE) {
		il = i2d_X509_NAME(X509_get_issuer_name(cert), &iss);
		sl = i2d_ASN1_INTEGER(X509_get_serialNumber(cert), &ser);
		ok = il > 0 && sl > 0 && rid->len == (size_t)(il + sl) &&
		     !memcmp(rid->val, iss, (size_t)il) &&
		     !memcmp(rid->val + il, ser, (size_t)sl);
		OPENSSL_free(iss);
		OPENSSL_free(ser);
	} else if (rid->tag == KJ_DER_CTX0) {
		const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(cert);
		struct kj_der d;
		struct kj_tlv id;

		kj_der_init(&d, rid->val, rid->len, "");
		d.quiet = true;
		ok = skid && kj_der_expect(&d, KJ_DER_OCTET_STRING, &id, "") == 0 &&
		     id.len == (size_t)ASN1_STRING_length(skid) &&
		     !memcmp(id.val, ASN1_STRING_get0_data(skid), id.len);
	}
	return ok;
}

/*
 * One pass over the recipients.  match: only entries whose rid names
 * key->cert (an unwrap failure there is an error); else every entry is
 * tried and the AES key-wrap integrity check picks ours.  0 found (CEK at
 * ks + 128), -ENOKEY none, other errors.
 */
static int scan_recipients(const struct kj_ecdh_key *key,
			   const struct envelope *e, const char *path,
			   uint8_t *ks, bool match, unsigned *n_kari,
			   unsigned *n_other)
{
	struct kj_der top, rs, rd, rk;
	struct kj_tlv ri, rek, rid, ek;
	struct kari k;
	int rc;

	*n_kari = *n_other = 0;
	kj_der_init(&top, e->recipients.tlv, e->recipients.tlv_len, path);
	top.base = e->base;
	kj_der_enter(&top, &e->recipients, &rs);
	while (kj_der_more(&rs)) {
		KJ_TRY(kj_der_next(&rs, &ri, "RecipientInfo"));
		if (ri.tag != KJ_DER_CTX1) {
			(*n_other)++;
			continue;
		}
		(*n_kari)++;
		KJ_TRY(parse_kari(&rs, &ri, &k));
		kj_der_enter(&rs, &k.reks, &rd);
		while (kj_der_more(&rd)) {
			KJ_TRY(kj_der_expect(&rd, KJ_DER_SEQUENCE, &rek,
					     "RecipientEncryptedKey"));
			kj_der_enter(&rd, &rek, &rk);
			KJ_TRY(kj_der_next(&rk, &rid, "rid"));
			KJ_TRY(kj_der_expect(&rk, KJ_DER_OCTET_STRING, &ek,
					     "encryptedKey"));
			KJ_TRY(kj_der_end(&rk, "RecipientEncryptedKey"));
			if (match && !rid_matches(&rid, key->cert))
				continue;
			rc = kj_cms_recover_cek(key, &k, &ek, e->cek_len, ks,
						path);
			if (rc != -EBADMSG)
				return rc;
			if (match) {
				kj_err("%s: key unwrap failed for the recipient "
				       "entry naming the transport certificate: "
				       "corrupted, or encrypted to another key",
				       path);
				return -EBADMSG;
			}
		}
	}
	return -ENOKEY;
}

/*
 * Pick the recipient for key->cert; if none names it (e.g. a renewed
 * certificate for the same key), or without a certificate, try them all.
 */
static int find_cek(const struct kj_ecdh_key *key, const struct envelope *e,
		    const char *path, uint8_t *ks)
{
	unsigned n_kari, n_other;
	int rc = -ENOKEY;

	if (key->cert)
		rc = scan_recipients(key, e, path, ks, true, &n_kari,
				     &n_other);
	if (rc == -ENOKEY)
		rc = scan_recipients(key, e, path, ks, false, &n_kari,
				     &n_other);
	if (rc != -ENOKEY)
		return rc;
	kj_err("%s: not encrypted to this appliance's transport key "
	       "(%u key-agreement recipient(s)%s, none for our key); encrypt "
	       "with -recip transport.pem", path, n_kari,
	       n_other ? " and other recipient types" : "");
	return -ENOKEY;
}

static size_t content_len(const struct envelope *e)
{
	struct kj_der d;
	struct kj_tlv c;
	size_t n = 0;

	if (e->ciphertext.tag == KJ_DER_CTX0_PRIM)
		return e->ciphertext.len;
	kj_der_init(&d, e->ciphertext.val, e->ciphertext.len, "");
	d.quiet = true;
	while (kj_der_more(&d) && kj_der_next(&d, &c, "") == 0)
		n += c.len;
	return n;
}

int kj_cms_open_envelope(const struct kj_ecdh_key *key, const uint8_t *der,
			 size_t len, const char *path, struct kj_arena *arena,
			 const uint8_t **plain, size_t *plain_len)
{
	struct envelope e;
	uint8_t *ks = NULL, *out = NULL;
	size_t n = 0;
	int rc;

	*plain = NULL;
	*plain_len = 0;
	KJ_TRY(parse_envelope(der, len, path, &e));
	ks = kj_arena_alloc(arena, 192);
	if (!ks)
		return -ENOMEM;
	KJ_TRY_GOTO(rc, find_cek(key, &e, path, ks), out);
	n = content_len(&e);
	out = kj_arena_alloc(arena, n ? n : 1);
	if (!out) {
		rc = -ENOMEM;
		goto out;
	}
	KJ_TRY_GOTO(rc, kj_cms_gcm_decrypt(&e, ks + 128, out, path), out);
	*plain = out;
	*plain_len = n;
out:
	explicit_bzero(ks, 192);
	if (rc < 0 && out)
		explicit_bzero(out, n ? n : 1);
	return rc;
}
