// SPDX-License-Identifier: Apache-2.0
/*
 * Quote verification without a TPM (EVIDENCE.md §4, §6.1-2).  TPM structures
 * are unmarshalled with libtss2-mu and must be consumed exactly; the AK
 * public area must also re-marshal to the same bytes, so its name (a hash
 * of those bytes) cannot be confused by a non-canonical encoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <tss2/tss2_mu.h>

#include "attest.h"
#include "base/log.h"
#include "base/util.h"
#include "eventlog.h"

#define AK_REQUIRED_ATTRS                                                   \
	(TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |                \
	 TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |                   \
	 TPMA_OBJECT_SENSITIVEDATAORIGIN)

void kj_checkpoint_qd(uint64_t tree_size, const uint8_t root[32],
		      uint64_t nv_counter, uint8_t out[32])
{
	/* EVIDENCE.md §4: "KINJECT-CHECKPOINT-1" ‖ u64be ‖ root ‖ u64be */
	uint8_t buf[sizeof(KJ_CHECKPOINT_DOMAIN) - 1 + 8 + 32 + 8];
	size_t n = sizeof(KJ_CHECKPOINT_DOMAIN) - 1;

	memcpy(buf, KJ_CHECKPOINT_DOMAIN, n);
	kj_put_u64be(buf + n, tree_size);
	memcpy(buf + n + 8, root, 32);
	kj_put_u64be(buf + n + 40, nv_counter);
	kj_sha256(buf, sizeof(buf), out);
}

const char *kj_quote_check_name(enum kj_quote_check c)
{
	switch (c) {
	case KJ_QC_OK: return "ok";
	case KJ_QC_PARSE: return "parse";
	case KJ_QC_MAGIC: return "magic";
	case KJ_QC_TYPE: return "type";
	case KJ_QC_SIGNATURE: return "signature";
	case KJ_QC_EXTRA_DATA: return "extraData";
	case KJ_QC_PCR_SELECT: return "pcrSelect";
	case KJ_QC_PCR_DIGEST: return "pcrDigest";
	case KJ_QC_EVENT_LOG: return "eventLog";
	default: return "unknown";
	}
}

const char *kj_ak_check_name(enum kj_ak_check c)
{
	switch (c) {
	case KJ_AKC_OK: return "ok";
	case KJ_AKC_PARSE: return "parse";
	case KJ_AKC_TYPE: return "type";
	case KJ_AKC_ATTRIBUTES: return "attributes";
	case KJ_AKC_NAME: return "name";
	case KJ_AKC_KEY: return "key";
	default: return "unknown";
	}
}

static int ak_fail(enum kj_ak_check *failed, enum kj_ak_check c, int rc)
{
	if (failed)
		*failed = c;
	return rc;
}

/* P-256 public key from the 32-byte x, y of the TPM. */
static EVP_PKEY *ec_p256_pkey(const TPMS_ECC_POINT *pt)
{
	uint8_t oct[65] = { 0x04 };
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	/* TPM2B sizes were checked <= 32; left-pad shorter coordinates. */
	memcpy(oct + 1 + 32 - pt->x.size, pt->x.buffer, pt->x.size);
	memcpy(oct + 33 + 32 - pt->y.size, pt->y.buffer, pt->y.size);
	bld = OSSL_PARAM_BLD_new();
	if (!bld ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
					     "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
					      oct, sizeof(oct)))
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
out:
	if (!pkey)
		kj_err_ssl("AK public area: the ECC point is not a P-256 public key");
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

/* Unmarshal exactly, and re-marshal to the same bytes (canonical form). */
static int ak_unmarshal(const uint8_t *pub, size_t len, TPM2B_PUBLIC *p)
{
	uint8_t again[sizeof(TPM2B_PUBLIC)];
	size_t off = 0, off2 = 0;
	TSS2_RC rc;

	memset(p, 0, sizeof(*p));
	rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, len, &off, p);
	if (rc != TSS2_RC_SUCCESS) {
		kj_err("AK public area: TPM2B_PUBLIC does not unmarshal (libtss2-mu 0x%x), %zu bytes",
		       rc, len);
		return -EINVAL;
	}
	if (off != len) {
		kj_err("AK public area: %zu trailing bytes after TPM2B_PUBLIC",
		       len - off);
		return -EINVAL;
	}
	rc = Tss2_MU_TPM2B_PUBLIC_Marshal(p, again, sizeof(again), &off2);
	if (rc != TSS2_RC_SUCCESS || off2 != len || memcmp(again, pub, len)) {
		kj_err("AK public area: TPM2B_PUBLIC is not in canonical form (size field %u, %zu bytes)",
		       len >= 2 ? kj_get_u16be(pub) : 0, len);
		return -EINVAL;
	}
	return 0;
}

static int ak_check_type(const TPMT_PUBLIC *t)
{
	const TPMS_ECC_PARMS *e = &t->parameters.eccDetail;

	if (t->type != TPM2_ALG_ECC || t->nameAlg != TPM2_ALG_SHA256 ||
	    e->curveID != TPM2_ECC_NIST_P256 ||
	    e->scheme.scheme != TPM2_ALG_ECDSA ||
	    e->scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256 ||
	    e->symmetric.algorithm != TPM2_ALG_NULL ||
	    e->kdf.scheme != TPM2_ALG_NULL) {
		kj_err("AK public area: type: want ECC NIST P-256, ECDSA-SHA256, nameAlg SHA-256; got type 0x%04x nameAlg 0x%04x curve 0x%04x scheme 0x%04x hash 0x%04x",
		       t->type, t->nameAlg, e->curveID, e->scheme.scheme,
		       e->scheme.details.ecdsa.hashAlg);
		return -EBADMSG;
	}
	if (t->unique.ecc.x.size == 0 || t->unique.ecc.x.size > 32 ||
	    t->unique.ecc.y.size == 0 || t->unique.ecc.y.size > 32) {
		kj_err("AK public area: ECC point sizes %u, %u, want 1..32",
		       t->unique.ecc.x.size, t->unique.ecc.y.size);
		return -EBADMSG;
	}
	return 0;
}

static int ak_check_attrs(TPMA_OBJECT a)
{
	static const struct {
		TPMA_OBJECT bit;
		const char *name;
	} req[] = {
		{ TPMA_OBJECT_RESTRICTED, "restricted" },
		{ TPMA_OBJECT_SIGN_ENCRYPT, "sign" },
		{ TPMA_OBJECT_FIXEDTPM, "fixedTPM" },
		{ TPMA_OBJECT_FIXEDPARENT, "fixedParent" },
		{ TPMA_OBJECT_SENSITIVEDATAORIGIN, "sensitiveDataOrigin" },
	};

	for (size_t i = 0; i < KJ_ARRAY_SIZE(req); i++) {
		if (!(a & req[i].bit)) {
			kj_err("AK public area: attributes 0x%08x lack %s",
			       a, req[i].name);
			return -EBADMSG;
		}
	}
	if (a & TPMA_OBJECT_DECRYPT) {
		kj_err("AK public area: attributes 0x%08x have decrypt: not an attestation key",
		       a);
		return -EBADMSG;
	}
	return 0;
}

int kj_ak_parse(const uint8_t *pub, size_t len, struct kj_ak *ak,
		enum kj_ak_check *failed)
{
	TPM2B_PUBLIC p;
	int rc;

	memset(ak, 0, sizeof(*ak));
	rc = ak_unmarshal(pub, len, &p);
	if (rc < 0)
		return ak_fail(failed, KJ_AKC_PARSE, rc);
	rc = ak_check_type(&p.publicArea);
	if (rc < 0)
		return ak_fail(failed, KJ_AKC_TYPE, rc);
	rc = ak_check_attrs(p.publicArea.objectAttributes);
	if (rc < 0)
		return ak_fail(failed, KJ_AKC_ATTRIBUTES, rc);
	/* Name = nameAlg ‖ H_nameAlg(marshalled TPMT_PUBLIC), Part 1 §16. */
	kj_put_u16be(ak->name, TPM2_ALG_SHA256);
	kj_sha256(pub + 2, len - 2, ak->name + 2);
	ak->attributes = p.publicArea.objectAttributes;
	ak->pkey = ec_p256_pkey(&p.publicArea.unique.ecc);
	if (!ak->pkey)
		return ak_fail(failed, KJ_AKC_TYPE, -EBADMSG);
	return ak_fail(failed, KJ_AKC_OK, 0);
}

int kj_ak_check(const struct kj_ak *ak, const uint8_t *name, size_t name_len,
		EVP_PKEY *trusted, enum kj_ak_check *failed)
{
	char got[2 * KJ_TPM_NAME_LEN + 1];

	if (name_len != KJ_TPM_NAME_LEN ||
	    CRYPTO_memcmp(name, ak->name, KJ_TPM_NAME_LEN)) {
		kj_hex_encode(ak->name, KJ_TPM_NAME_LEN, got);
		kj_err("AK public area: name: the public area hashes to %s, not to the ak_name given (%zu bytes)",
		       got, name_len);
		return ak_fail(failed, KJ_AKC_NAME, -EBADMSG);
	}
	if (trusted && EVP_PKEY_eq(ak->pkey, trusted) != 1) {
		kj_err("AK public area: key: its public key is not the trusted AK (--ak)");
		return ak_fail(failed, KJ_AKC_KEY, -EBADMSG);
	}
	return ak_fail(failed, KJ_AKC_OK, 0);
}

void kj_ak_free(struct kj_ak *ak)
{
	if (!ak)
		return;
	EVP_PKEY_free(ak->pkey);
	ak->pkey = NULL;
}

EVP_PKEY *kj_pubkey_read_pem(const char *path)
{
	EVP_PKEY *pkey = NULL;
	BIO *bio = BIO_new_file(path, "r");

	if (!bio) {
		kj_err_ssl("%s: cannot open", path);
		return NULL;
	}
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!pkey)
		kj_err_ssl("%s: not a PEM public key", path);
	BIO_free(bio);
	return pkey;
}

int kj_ak_pem(const struct kj_ak *ak, char **pem)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	if (!bio || !PEM_write_bio_PUBKEY(bio, ak->pkey)) {
		BIO_free(bio);
		return kj_err_ssl("AK: cannot write PEM");
	}
	n = BIO_get_mem_data(bio, &data);
	out = malloc((size_t)n + 1);
	if (!out) {
		BIO_free(bio);
		return -ENOMEM;
	}
	memcpy(out, data, (size_t)n);
	out[n] = 0;
	BIO_free(bio);
	*pem = out;
	return 0;
}

/* "sha256:13,14" or "2 banks: sha1:0 sha256:13" for messages. */
static void selection_str(const TPML_PCR_SELECTION *s, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = 0;
	if (s->count != 1)
		off += (size_t)snprintf(buf, size, "%u banks:", s->count);
	for (uint32_t b = 0; b < s->count && b < TPM2_NUM_PCR_BANKS; b++) {
		const TPMS_PCR_SELECTION *p = &s->pcrSelections[b];
		const char *sep = ":";

		if (off >= size)
			return;
		if (p->hash == TPM2_ALG_SHA256)
			off += (size_t)snprintf(buf + off, size - off,
						"%ssha256", off ? " " : "");
		else
			off += (size_t)snprintf(buf + off, size - off,
						"%salg0x%04x", off ? " " : "",
						p->hash);
		for (unsigned i = 0; i < p->sizeofSelect * 8u; i++) {
			if (!(p->pcrSelect[i / 8] & (1u << (i % 8))) ||
			    off >= size)
				continue;
			off += (size_t)snprintf(buf + off, size - off, "%s%u",
						sep, i);
			sep = ",";
		}
		if (off < size && p->sizeofSelect != 3)
			off += (size_t)snprintf(buf + off, size - off,
						" (sizeofSelect %u)",
						p->sizeofSelect);
	}
}

static void mask_str(uint32_t mask, char *buf, size_t size)
{
	size_t off = (size_t)snprintf(buf, size, "sha256");
	const char *sep = ":";

	for (unsigned i = 0; i < KJ_TPM_PCR_COUNT && off < size; i++) {
		if (!(mask & KJ_PCR_BIT(i)))
			continue;
		off += (size_t)snprintf(buf + off, size - off, "%s%u", sep, i);
		sep = ",";
	}
}

static int q_fail(enum kj_quote_check *failed, enum kj_quote_check c, int rc)
{
	if (failed)
		*failed = c;
	return rc;
}

int kj_quote_parse(const uint8_t *attest, size_t len,
		   struct kj_quote_info *info, enum kj_quote_check *failed)
{
	const TPMS_QUOTE_INFO *q;
	TPMS_ATTEST a;
	size_t off = 0;
	TSS2_RC rc;

	memset(info, 0, sizeof(*info));
	memset(&a, 0, sizeof(a));
	rc = Tss2_MU_TPMS_ATTEST_Unmarshal(attest, len, &off, &a);
	if (rc != TSS2_RC_SUCCESS) {
		kj_err("quote: parse: TPMS_ATTEST does not unmarshal (libtss2-mu 0x%x), %zu bytes",
		       rc, len);
		return q_fail(failed, KJ_QC_PARSE, -EBADMSG);
	}
	if (off != len) {
		kj_err("quote: parse: %zu trailing bytes after the %zu bytes of TPMS_ATTEST",
		       len - off, off);
		return q_fail(failed, KJ_QC_PARSE, -EBADMSG);
	}
	if (a.clockInfo.safe > 1) {
		kj_err("quote: parse: clockInfo.safe is %u, not a TPMI_YES_NO",
		       a.clockInfo.safe);
		return q_fail(failed, KJ_QC_PARSE, -EBADMSG);
	}
	if (a.magic != TPM2_GENERATED_VALUE) {
		kj_err("quote: magic: 0x%08x, not TPM_GENERATED_VALUE 0xff544347",
		       a.magic);
		return q_fail(failed, KJ_QC_MAGIC, -EBADMSG);
	}
	if (a.type != TPM2_ST_ATTEST_QUOTE) {
		kj_err("quote: type: 0x%04x, not TPM_ST_ATTEST_QUOTE 0x8018",
		       a.type);
		return q_fail(failed, KJ_QC_TYPE, -EBADMSG);
	}
	info->clock = a.clockInfo.clock;
	info->reset_count = a.clockInfo.resetCount;
	info->restart_count = a.clockInfo.restartCount;
	info->safe = a.clockInfo.safe;
	info->firmware_version = a.firmwareVersion;
	/* TPM2B_DATA holds up to 66 bytes (sizeof(TPMT_HA)): bound it by
	 * the destination, never by the source. */
	if (a.extraData.size > sizeof(info->extra_data)) {
		kj_err("quote: extraData: %u bytes, more than the %zu a "
		       "qualifying data can have", a.extraData.size,
		       sizeof(info->extra_data));
		return q_fail(failed, KJ_QC_EXTRA_DATA, -EBADMSG);
	}
	info->extra_len = a.extraData.size;
	memcpy(info->extra_data, a.extraData.buffer, a.extraData.size);
	q = &a.attested.quote;
	if (q->pcrSelect.count == 1 &&
	    q->pcrSelect.pcrSelections[0].hash == TPM2_ALG_SHA256 &&
	    q->pcrSelect.pcrSelections[0].sizeofSelect == 3) {
		const uint8_t *b = q->pcrSelect.pcrSelections[0].pcrSelect;

		info->pcr_select_ok = true;
		info->pcr_mask = b[0] | (uint32_t)b[1] << 8 |
				 (uint32_t)b[2] << 16;
	}
	if (q->pcrDigest.size == 32)
		memcpy(info->pcr_digest, q->pcrDigest.buffer, 32);
	return q_fail(failed, KJ_QC_OK, 0);
}

/* ECDSA-SHA256 over the attest bytes; TPMT_SIGNATURE (r, s) to DER. */
static int check_signature(EVP_PKEY *pkey, const uint8_t *attest,
			   size_t attest_len, const uint8_t *sig,
			   size_t sig_len)
{
	unsigned char *der = NULL;
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	TPMT_SIGNATURE ts;
	size_t off = 0;
	int der_len, rc = -EBADMSG;

	memset(&ts, 0, sizeof(ts));
	if (Tss2_MU_TPMT_SIGNATURE_Unmarshal(sig, sig_len, &off, &ts) !=
	    TSS2_RC_SUCCESS || off != sig_len) {
		kj_err("quote: signature: TPMT_SIGNATURE does not unmarshal exactly (%zu of %zu bytes used)",
		       off, sig_len);
		return -EBADMSG;
	}
	if (ts.sigAlg != TPM2_ALG_ECDSA ||
	    ts.signature.ecdsa.hash != TPM2_ALG_SHA256) {
		kj_err("quote: signature: algorithm 0x%04x hash 0x%04x, want ECDSA (0x0018) with SHA-256 (0x000b)",
		       ts.sigAlg, ts.signature.ecdsa.hash);
		return -EBADMSG;
	}
	r = BN_bin2bn(ts.signature.ecdsa.signatureR.buffer,
		      ts.signature.ecdsa.signatureR.size, NULL);
	s = BN_bin2bn(ts.signature.ecdsa.signatureS.buffer,
		      ts.signature.ecdsa.signatureS.size, NULL);
	es = ECDSA_SIG_new();
	if (!r || !s || !es || !ECDSA_SIG_set0(es, r, s)) {
		BN_free(r);
		BN_free(s);
		rc = kj_err_ssl("quote: signature: cannot build ECDSA-Sig-Value");
		goto out;
	}
	der_len = i2d_ECDSA_SIG(es, &der);
	md = EVP_MD_CTX_new();
	if (der_len <= 0 || !md ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1) {
		rc = kj_err_ssl("quote: signature: cannot set up ECDSA-SHA256");
		goto out;
	}
	if (EVP_DigestVerify(md, der, (size_t)der_len, attest, attest_len) !=
	    1) {
		ERR_clear_error();
		kj_err("quote: signature: ECDSA-SHA256 over TPMS_ATTEST is not valid under the AK");
		rc = -EBADMSG;
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	return rc;
}

void kj_pcr_digest(uint32_t mask, const uint8_t pcrs[KJ_TPM_PCR_COUNT][32],
		   uint8_t out[32])
{
	uint8_t buf[KJ_TPM_PCR_COUNT * 32];
	size_t n = 0;

	for (unsigned i = 0; i < KJ_TPM_PCR_COUNT; i++) {
		if (mask & KJ_PCR_BIT(i)) {
			memcpy(buf + n, pcrs[i], 32);
			n += 32;
		}
	}
	kj_sha256(buf, n, out);
}

int kj_quote_verify(const struct kj_ak *ak, const uint8_t *attest,
		    size_t attest_len, const uint8_t *sig, size_t sig_len,
		    const uint8_t qd[32], uint32_t mask,
		    const uint8_t pcrs[KJ_TPM_PCR_COUNT][32],
		    struct kj_quote_info *info, enum kj_quote_check *failed)
{
	char want[128], got[160], hex[129];
	struct kj_quote_info qi;
	uint8_t digest[32];
	int rc;

	rc = kj_quote_parse(attest, attest_len, &qi, failed);
	if (rc < 0)
		return rc;
	if (check_signature(ak->pkey, attest, attest_len, sig, sig_len) < 0)
		return q_fail(failed, KJ_QC_SIGNATURE, -EBADMSG);
	if (qi.extra_len != 32 || CRYPTO_memcmp(qi.extra_data, qd, 32)) {
		kj_hex_encode(qi.extra_data, qi.extra_len, hex);
		kj_err("quote: extraData: `%s' (%zu bytes) is not the checkpoint's qualifying data",
		       hex, qi.extra_len);
		return q_fail(failed, KJ_QC_EXTRA_DATA, -EBADMSG);
	}
	if (!qi.pcr_select_ok || qi.pcr_mask != mask) {
		TPMS_ATTEST a;
		size_t off = 0;

		/* Re-parse for the full selection: the message quotes it. */
		memset(&a, 0, sizeof(a));
		(void)Tss2_MU_TPMS_ATTEST_Unmarshal(attest, attest_len, &off,
						    &a);
		selection_str(&a.attested.quote.pcrSelect, got, sizeof(got));
		mask_str(mask, want, sizeof(want));
		kj_err("quote: pcrSelect: `%s' is not exactly the policy's `%s'",
		       got, want);
		return q_fail(failed, KJ_QC_PCR_SELECT, -EBADMSG);
	}
	kj_pcr_digest(mask, pcrs, digest);
	if (CRYPTO_memcmp(qi.pcr_digest, digest, 32)) {
		kj_hex_encode(qi.pcr_digest, 32, hex);
		kj_err("quote: pcrDigest: `%s' is not the digest of the replayed PCR values",
		       hex);
		return q_fail(failed, KJ_QC_PCR_DIGEST, -EBADMSG);
	}
	if (info)
		*info = qi;
	return q_fail(failed, KJ_QC_OK, 0);
}

int kj_quoted_checkpoint_verify(const struct kj_ak *ak,
				const struct kj_quoted_checkpoint *c,
				const struct kj_event *ev, size_t n,
				uint32_t mask,
				uint8_t pcrs[KJ_TPM_PCR_COUNT][32],
				struct kj_quote_info *info,
				enum kj_quote_check *failed)
{
	uint8_t replay[KJ_TPM_PCR_COUNT][32], qd[32];

	if (c->event_log_length > n) {
		kj_err("checkpoint (tree size %llu): event_log_length %llu, but the event log has %zu entries",
		       (unsigned long long)c->tree_size,
		       (unsigned long long)c->event_log_length, n);
		return q_fail(failed, KJ_QC_EVENT_LOG, -EBADMSG);
	}
	if (kj_eventlog_replay(ev, (size_t)c->event_log_length, c->epoch,
			       replay) < 0)
		return q_fail(failed, KJ_QC_EVENT_LOG, -EBADMSG);
	if (pcrs)
		memcpy(pcrs, replay, sizeof(replay));
	kj_checkpoint_qd(c->tree_size, c->root, c->nv_counter, qd);
	return kj_quote_verify(ak, c->attest, c->attest_len, c->sig,
			       c->sig_len, qd, mask,
			       (const uint8_t(*)[32])replay, info, failed);
}

int kj_quote_order(struct kj_clock_run *run, uint64_t nv_counter,
		   const struct kj_quote_info *qi, unsigned *flags)
{
	bool new_run = !run->started ||
		       qi->reset_count != run->reset_count ||
		       qi->restart_count != run->restart_count;
	uint64_t d = nv_counter - run->nv_counter;

	*flags = qi->safe ? 0 : KJ_ORDER_UNSAFE;
	run->jump = 0;
	if (run->started && nv_counter <= run->nv_counter) {
		kj_err("checkpoint: nv_counter %llu does not exceed the previous %llu: an old or a second journal",
		       (unsigned long long)nv_counter,
		       (unsigned long long)run->nv_counter);
		return -EBADMSG;
	}
	if (run->started && !new_run && d != 1) {
		kj_err("checkpoint: nv_counter %llu after %llu within one TPM clock run (resetCount %u, restartCount %u): +1 expected (checkpoints missing, or a second journal on the TPM)",
		       (unsigned long long)nv_counter,
		       (unsigned long long)run->nv_counter, qi->reset_count,
		       qi->restart_count);
		return -EBADMSG;
	}
	if (run->started && new_run && d > run->orderly + 1) {
		kj_err("checkpoint: nv_counter %llu after %llu into a new TPM clock run: at most +%llu (tpm_orderly_count + 1) expected",
		       (unsigned long long)nv_counter,
		       (unsigned long long)run->nv_counter,
		       (unsigned long long)run->orderly + 1);
		return -EBADMSG;
	}
	if (run->started && !new_run && qi->clock <= run->clock) {
		kj_err("checkpoint: TPM clock %llu does not exceed the previous %llu within resetCount %u, restartCount %u",
		       (unsigned long long)qi->clock,
		       (unsigned long long)run->clock, qi->reset_count,
		       qi->restart_count);
		return -EBADMSG;
	}
	if (new_run)
		*flags |= KJ_ORDER_NEW_RUN;
	if (run->started) {
		run->jump = d;
		if (d > 1)
			*flags |= KJ_ORDER_JUMP;
	}
	run->started = true;
	run->nv_counter = nv_counter;
	run->reset_count = qi->reset_count;
	run->restart_count = qi->restart_count;
	run->clock = qi->clock;
	return 0;
}
