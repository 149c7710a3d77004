// SPDX-License-Identifier: Apache-2.0
/*
 * The appliance's TPM through tpm2-tss ESAPI (EVIDENCE.md §4; tpm.h says
 * what is kept where).  Each function flushes the transient objects and
 * sessions it creates before returning; only the AK stays loaded.
 */
#include "tpm.h"
#include "base/log.h"
#include "base/util.h"
#include "attest.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

struct kj_tpm {
	char *tcti_conf;
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	ESYS_TR ak;
	bool ek_rsa;            /* the AK's parent is the RSA EK (L-1) */
	uint8_t ak_pub[KJ_TPM_PUB_MAX];
	size_t ak_pub_len;
	uint8_t ak_name[KJ_TPM_NAME_LEN];
	ESYS_TR nv;             /* KJ_TPM_NV_COUNTER once looked up */
};

/* TCG EK Credential Profile, PolicyA: PolicySecret(TPM_RH_ENDORSEMENT). */
static const uint8_t ek_policy_a[32] = {
	0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
	0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
	0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

#define NV_ATTRS                                                            \
	((TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_OWNERWRITE |  \
	 TPMA_NV_OWNERREAD | TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD |         \
	 TPMA_NV_NO_DA)

static int tpm_fail(const struct kj_tpm *t, const char *cmd, TSS2_RC rc)
{
	kj_err("TPM %s: %s: %s (0x%x)", t->tcti_conf, cmd, Tss2_RC_Decode(rc),
	       rc);
	return -EIO;
}

/* TPM_RC_HANDLE / TPM_RC_NV_UNINITIALIZED etc., whatever the handle/
 * parameter number bits say. */
static bool rc_is(TSS2_RC rc, TSS2_RC want)
{
	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
		return false;
	if (rc & TPM2_RC_FMT1)
		return (rc & (TPM2_RC_FMT1 | 0x3f)) == want;
	return (rc & 0xfff) == want;
}

/*
 * TPM warnings that mean "try again": the TPM was busy, self-testing, or is
 * rate-limiting NV writes (a counter increment writes NV on most TPMs).
 * Back off from 5 ms, doubling to 200 ms, for at most ~3 s.
 */
static bool retry_later(TSS2_RC rc, unsigned *attempt)
{
	unsigned ms;

	if (!rc_is(rc, TPM2_RC_RETRY) && !rc_is(rc, TPM2_RC_YIELDED) &&
	    !rc_is(rc, TPM2_RC_TESTING) && !rc_is(rc, TPM2_RC_NV_RATE))
		return false;
	if (*attempt >= 20)
		return false;
	ms = *attempt < 6 ? 5u << *attempt : 200u;
	(*attempt)++;
	usleep(ms * 1000u);
	return true;
}

static void flush(struct kj_tpm *t, ESYS_TR *h)
{
	TSS2_RC rc;

	if (*h == ESYS_TR_NONE)
		return;
	rc = Esys_FlushContext(t->esys, *h);
	if (rc != TSS2_RC_SUCCESS)
		tpm_fail(t, "TPM2_FlushContext", rc);
	*h = ESYS_TR_NONE;
}

const char *kj_tpm_tcti(const struct kj_tpm *tpm)
{
	return tpm->tcti_conf;
}

int kj_tpm_open(const char *tcti, struct kj_tpm **out)
{
	struct kj_tpm *t = calloc(1, sizeof(*t));
	TSS2_RC rc;

	if (!t || !(t->tcti_conf = strdup(tcti))) {
		free(t);
		return -ENOMEM;
	}
	t->ak = ESYS_TR_NONE;
	t->nv = ESYS_TR_NONE;
	/* tpm2-tss logs its own errors to stderr; every failure is reported
	 * here once, naming the TCTI and the command.  TSS2_LOG set by the
	 * user still wins (debugging). */
	setenv("TSS2_LOG", "all+NONE", 0);
	rc = Tss2_TctiLdr_Initialize(tcti, &t->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		tpm_fail(t, "Tss2_TctiLdr_Initialize", rc);
		goto err;
	}
	rc = Esys_Initialize(&t->esys, t->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		tpm_fail(t, "Esys_Initialize", rc);
		goto err;
	}
	*out = t;
	return 0;
err:
	kj_tpm_close(t);
	return -EIO;
}

void kj_tpm_close(struct kj_tpm *t)
{
	if (!t)
		return;
	if (t->esys) {
		/* At close a failed flush helps nobody: after a TPM error it is
		 * a second message for the same fault, and a TPM reset or the
		 * resource manager drops the transient AK anyway. */
		if (t->ak != ESYS_TR_NONE &&
		    Esys_FlushContext(t->esys, t->ak) != TSS2_RC_SUCCESS)
			kj_debug("TPM %s: AK not flushed at close",
				 t->tcti_conf);
		t->ak = ESYS_TR_NONE;
		if (t->nv != ESYS_TR_NONE)
			(void)Esys_TR_Close(t->esys, &t->nv);
		Esys_Finalize(&t->esys);
	}
	if (t->tcti)
		Tss2_TctiLdr_Finalize(&t->tcti);
	free(t->tcti_conf);
	free(t);
}

/* ---- EK and AK ---------------------------------------------------------- */

/* TCG EK Credential Profile default templates: L-1 (RSA) and L-2 (ECC). */
static void ek_template(bool rsa, TPM2B_PUBLIC *p)
{
	TPMT_PUBLIC *a = &p->publicArea;

	memset(p, 0, sizeof(*p));
	a->nameAlg = TPM2_ALG_SHA256;
	a->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
			      TPMA_OBJECT_SENSITIVEDATAORIGIN |
			      TPMA_OBJECT_ADMINWITHPOLICY |
			      TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	a->authPolicy.size = sizeof(ek_policy_a);
	memcpy(a->authPolicy.buffer, ek_policy_a, sizeof(ek_policy_a));
	if (rsa) {
		a->type = TPM2_ALG_RSA;
		a->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
		a->parameters.rsaDetail.symmetric.keyBits.aes = 128;
		a->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
		a->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
		a->parameters.rsaDetail.keyBits = 2048;
		a->parameters.rsaDetail.exponent = 0;
		a->unique.rsa.size = 256;
	} else {
		a->type = TPM2_ALG_ECC;
		a->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
		a->parameters.eccDetail.symmetric.keyBits.aes = 128;
		a->parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
		a->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
		a->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
		a->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
		a->unique.ecc.x.size = 32;
		a->unique.ecc.y.size = 32;
	}
}

/*
 * The AK template: what tpm2_createak -G ecc -g sha256 -s ecdsa makes, plus
 * noDA.  Its auth is empty and never fails, but every power cut without
 * TPM2_Shutdown counts as a dictionary-attack failure against DA-protected
 * objects; a few of them lock quoting out (TPM_RC_LOCKOUT) on a line that
 * loses power.
 */
static void ak_template(TPM2B_PUBLIC *p)
{
	TPMT_PUBLIC *a = &p->publicArea;

	memset(p, 0, sizeof(*p));
	a->type = TPM2_ALG_ECC;
	a->nameAlg = TPM2_ALG_SHA256;
	a->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
			      TPMA_OBJECT_SENSITIVEDATAORIGIN |
			      TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
			      TPMA_OBJECT_RESTRICTED |
			      TPMA_OBJECT_SIGN_ENCRYPT;
	a->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
	a->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
	a->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	a->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	a->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

static int create_ek(struct kj_tpm *t, ESYS_TR *ek)
{
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION pcrs = { 0 };
	TPM2B_PUBLIC tmpl;
	TSS2_RC rc;

	ek_template(t->ek_rsa, &tmpl);
	rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_ENDORSEMENT,
				ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
				&sens, &tmpl, &outside, &pcrs, ek, NULL, NULL,
				NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(t, t->ek_rsa ?
					   "TPM2_CreatePrimary (EK, RSA 2048)" :
					   "TPM2_CreatePrimary (EK, ECC P-256)",
				rc);
	return 0;
}

/* A policy session satisfying the EK's PolicySecret(TPM_RH_ENDORSEMENT). */
static int ek_session(struct kj_tpm *t, ESYS_TR *sess)
{
	TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_NULL };
	TSS2_RC rc;

	rc = Esys_StartAuthSession(t->esys, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   NULL, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256,
				   sess);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(t, "TPM2_StartAuthSession (policy)", rc);
	rc = Esys_PolicySecret(t->esys, ESYS_TR_RH_ENDORSEMENT, *sess,
			       ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
			       NULL, NULL, NULL, 0, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		flush(t, sess);
		return tpm_fail(t, "TPM2_PolicySecret (TPM_RH_ENDORSEMENT)",
				rc);
	}
	return 0;
}

/* Is the NV index defined?  Asked with GetCapability, not a failing
 * NV_ReadPublic, so that absence is a plain answer and not a logged error. */
static int nv_defined(struct kj_tpm *t, TPM2_HANDLE index, bool *yes)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TSS2_RC rc;

	rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE,
				ESYS_TR_NONE, TPM2_CAP_HANDLES, index, 1, NULL,
				&cap);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(t, "TPM2_GetCapability (handles)", rc);
	*yes = cap->data.handles.count >= 1 &&
	       cap->data.handles.handle[0] == index;
	Esys_Free(cap);
	return 0;
}

static int nv_exists(struct kj_tpm *t, TPM2_HANDLE index, uint16_t *size)
{
	TPM2B_NV_PUBLIC *pub = NULL;
	ESYS_TR h = ESYS_TR_NONE;
	bool yes = false;
	TSS2_RC rc;

	if (nv_defined(t, index, &yes) < 0 || !yes)
		return 0;
	rc = Esys_TR_FromTPMPublic(t->esys, index, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, &h);
	if (rc != TSS2_RC_SUCCESS)
		return 0;
	rc = Esys_NV_ReadPublic(t->esys, h, ESYS_TR_NONE, ESYS_TR_NONE,
				ESYS_TR_NONE, &pub, NULL);
	(void)Esys_TR_Close(t->esys, &h);
	if (rc != TSS2_RC_SUCCESS)
		return 0;
	if (size)
		*size = pub->nvPublic.dataSize;
	Esys_Free(pub);
	return 1;
}

/*
 * Which EK: the ECC P-256 one unless the TPM has a certificate only for
 * the RSA one (swtpm_setup issues RSA 2048 and ECC P-384 certificates), so
 * that the ceremony can tie the AK to a certified EK.
 */
static void choose_ek(struct kj_tpm *t)
{
	t->ek_rsa = !nv_exists(t, KJ_TPM_EK_CERT_ECC, NULL) &&
		    nv_exists(t, KJ_TPM_EK_CERT_RSA, NULL);
}

static int ak_adopt_public(struct kj_tpm *t, const uint8_t *pub, size_t len)
{
	struct kj_ak ak;
	int rc;

	if (len > sizeof(t->ak_pub))
		return -EFBIG;
	rc = kj_ak_parse(pub, len, &ak, NULL);
	if (rc < 0)
		return rc;
	memcpy(t->ak_pub, pub, len);
	t->ak_pub_len = len;
	memcpy(t->ak_name, ak.name, sizeof(t->ak_name));
	kj_ak_free(&ak);
	return 0;
}

static int path_join(char *buf, const char *dir, const char *name)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);

	if (n < 0 || n >= PATH_MAX) {
		kj_err("%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

static int write_in(const char *dir, const char *name, const void *data,
		    size_t len, unsigned mode)
{
	char path[PATH_MAX];

	KJ_TRY(path_join(path, dir, name));
	return kj_write_file_atomic(path, data, len, mode);
}

/* ak.pem and ak.name from the adopted public area. */
static int export_public(struct kj_tpm *t, const char *dir)
{
	char hex[2 * KJ_TPM_NAME_LEN + 2];
	char *pem = NULL;
	struct kj_ak ak;
	int rc;

	KJ_TRY(kj_ak_parse(t->ak_pub, t->ak_pub_len, &ak, NULL));
	rc = kj_ak_pem(&ak, &pem);
	kj_ak_free(&ak);
	if (rc < 0)
		return rc;
	rc = write_in(dir, "ak.pem", pem, strlen(pem), 0644);
	free(pem);
	if (rc < 0)
		return rc;
	kj_hex_encode(t->ak_name, KJ_TPM_NAME_LEN, hex);
	strcat(hex, "\n");
	return write_in(dir, "ak.name", hex, strlen(hex), 0644);
}

static int ak_create(struct kj_tpm *t, const char *dir)
{
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION pcrs = { 0 };
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL, tmpl;
	ESYS_TR ek = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	uint8_t pbuf[sizeof(TPM2B_PUBLIC)], vbuf[sizeof(TPM2B_PRIVATE)];
	size_t plen = 0, vlen = 0;
	TSS2_RC trc;
	int rc;

	ak_template(&tmpl);
	KJ_TRY_GOTO(rc, create_ek(t, &ek), out);
	KJ_TRY_GOTO(rc, ek_session(t, &sess), out);
	trc = Esys_Create(t->esys, ek, sess, ESYS_TR_NONE, ESYS_TR_NONE,
			  &sens, &tmpl, &outside, &pcrs, &priv, &pub, NULL,
			  NULL, NULL);
	flush(t, &sess);
	if (trc != TSS2_RC_SUCCESS) {
		rc = tpm_fail(t, "TPM2_Create (AK under the EK)", trc);
		goto out;
	}
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, pbuf, sizeof(pbuf), &plen) ||
	    Tss2_MU_TPM2B_PRIVATE_Marshal(priv, vbuf, sizeof(vbuf), &vlen)) {
		kj_err("TPM %s: AK: cannot marshal its public/private areas",
		       t->tcti_conf);
		rc = -EIO;
		goto out;
	}
	KJ_TRY_GOTO(rc, ak_adopt_public(t, pbuf, plen), out);
	KJ_TRY_GOTO(rc, ek_session(t, &sess), out);
	trc = Esys_Load(t->esys, ek, sess, ESYS_TR_NONE, ESYS_TR_NONE, priv,
			pub, &t->ak);
	if (trc != TSS2_RC_SUCCESS) {
		t->ak = ESYS_TR_NONE;
		rc = tpm_fail(t, "TPM2_Load (AK)", trc);
		goto out;
	}
	/* ak.priv last: its presence says the AK is complete. */
	KJ_TRY_GOTO(rc, write_in(dir, "ak.ek", t->ek_rsa ? "rsa\n" : "ecc\n",
				 4, 0644), out);
	KJ_TRY_GOTO(rc, write_in(dir, "ak.pub", pbuf, plen, 0644), out);
	KJ_TRY_GOTO(rc, export_public(t, dir), out);
	KJ_TRY_GOTO(rc, write_in(dir, "ak.priv", vbuf, vlen, 0600), out);
	rc = 1;
out:
	flush(t, &sess);
	flush(t, &ek);
	Esys_Free(priv);
	Esys_Free(pub);
	return rc;
}

static int read_in(const char *dir, const char *name, uint8_t **buf,
		   size_t *len)
{
	char path[PATH_MAX];

	KJ_TRY(path_join(path, dir, name));
	return kj_read_file(path, 64 * 1024, buf, len);
}

static int ak_load(struct kj_tpm *t, const char *dir)
{
	uint8_t *pb = NULL, *vb = NULL, *eb = NULL;
	size_t plen, vlen, elen, off;
	ESYS_TR ek = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	TPM2B_PRIVATE priv;
	TPM2B_PUBLIC pub;
	TSS2_RC trc;
	int rc;

	KJ_TRY_GOTO(rc, read_in(dir, "ak.pub", &pb, &plen), out);
	KJ_TRY_GOTO(rc, read_in(dir, "ak.priv", &vb, &vlen), out);
	KJ_TRY_GOTO(rc, read_in(dir, "ak.ek", &eb, &elen), out);
	if (strcmp((char *)eb, "rsa\n") && strcmp((char *)eb, "ecc\n")) {
		kj_err("%s/ak.ek: `%.8s' is neither rsa nor ecc", dir, eb);
		rc = -EINVAL;
		goto out;
	}
	t->ek_rsa = eb[0] == 'r';
	KJ_TRY_GOTO(rc, ak_adopt_public(t, pb, plen), out);
	off = 0;
	memset(&pub, 0, sizeof(pub));
	memset(&priv, 0, sizeof(priv));
	(void)Tss2_MU_TPM2B_PUBLIC_Unmarshal(pb, plen, &off, &pub);
	off = 0;
	if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(vb, vlen, &off, &priv) ||
	    off != vlen) {
		kj_err("%s/ak.priv: not a marshalled TPM2B_PRIVATE", dir);
		rc = -EINVAL;
		goto out;
	}
	KJ_TRY_GOTO(rc, create_ek(t, &ek), out);
	KJ_TRY_GOTO(rc, ek_session(t, &sess), out);
	trc = Esys_Load(t->esys, ek, sess, ESYS_TR_NONE, ESYS_TR_NONE, &priv,
			&pub, &t->ak);
	if (trc != TSS2_RC_SUCCESS) {
		t->ak = ESYS_TR_NONE;
		rc = tpm_fail(t, "TPM2_Load (AK from the state directory: another TPM, or a cleared endorsement hierarchy?)",
			      trc);
		goto out;
	}
	rc = export_public(t, dir);
out:
	flush(t, &sess);
	flush(t, &ek);
	free(pb);
	free(eb);
	if (vb)
		explicit_bzero(vb, vlen); /* wrapped, but no need to linger */
	free(vb);
	return rc;
}

int kj_tpm_ak_setup(struct kj_tpm *t, const char *dir)
{
	char pub[PATH_MAX], priv[PATH_MAX];
	struct stat st;
	bool has_pub, has_priv;

	if (t->ak != ESYS_TR_NONE) {
		kj_err("TPM %s: AK already set up", t->tcti_conf);
		return -EALREADY;
	}
	KJ_TRY(path_join(pub, dir, "ak.pub"));
	KJ_TRY(path_join(priv, dir, "ak.priv"));
	has_pub = stat(pub, &st) == 0;
	has_priv = stat(priv, &st) == 0;
	if (has_pub && has_priv)
		return ak_load(t, dir);
	if (has_priv) {
		kj_err("%s: present without %s: the AK state is incomplete",
		       priv, pub);
		return -EINVAL;
	}
	/* ak.pub without ak.priv: an interrupted creation, start over. */
	KJ_TRY(kj_mkdir_p(dir, 0700));
	choose_ek(t);
	return ak_create(t, dir);
}

int kj_tpm_ak_public(const struct kj_tpm *t, const uint8_t **pub,
		     size_t *len)
{
	if (!t->ak_pub_len) {
		kj_err("TPM %s: no AK yet (kj_tpm_ak_setup)", t->tcti_conf);
		return -ENOENT;
	}
	*pub = t->ak_pub;
	*len = t->ak_pub_len;
	return 0;
}

int kj_tpm_ak_name(const struct kj_tpm *t, uint8_t name[KJ_TPM_NAME_LEN])
{
	if (!t->ak_pub_len) {
		kj_err("TPM %s: no AK yet (kj_tpm_ak_setup)", t->tcti_conf);
		return -ENOENT;
	}
	memcpy(name, t->ak_name, KJ_TPM_NAME_LEN);
	return 0;
}

/* ---- NV ----------------------------------------------------------------- */

/* Read len bytes of an NV index, authorized by the index itself. */
static int nv_read_all(struct kj_tpm *t, ESYS_TR h, uint8_t *buf,
		       uint16_t len, const char *what)
{
	uint16_t off = 0;

	while (off < len) {
		uint16_t n = len - off > 512 ? 512 : len - off;
		TPM2B_MAX_NV_BUFFER *data = NULL;
		TSS2_RC rc;

		rc = Esys_NV_Read(t->esys, h, h, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				  ESYS_TR_NONE, n, off, &data);
		if (rc != TSS2_RC_SUCCESS) {
			if (rc_is(rc, TPM2_RC_NV_UNINITIALIZED))
				return -ENOENT;
			return tpm_fail(t, what, rc);
		}
		if (data->size != n) {
			Esys_Free(data);
			kj_err("TPM %s: %s: short read", t->tcti_conf, what);
			return -EIO;
		}
		memcpy(buf + off, data->buffer, n);
		Esys_Free(data);
		off += n;
	}
	return 0;
}

int kj_tpm_ek_cert(struct kj_tpm *t, uint8_t **der, size_t *len)
{
	TPM2_HANDLE idx = t->ek_rsa ? KJ_TPM_EK_CERT_RSA : KJ_TPM_EK_CERT_ECC;
	ESYS_TR h = ESYS_TR_NONE;
	uint16_t size = 0;
	uint8_t *buf;
	int rc;

	if (!nv_exists(t, idx, &size) || size == 0)
		return -ENOENT;
	if (Esys_TR_FromTPMPublic(t->esys, idx, ESYS_TR_NONE, ESYS_TR_NONE,
				  ESYS_TR_NONE, &h) != TSS2_RC_SUCCESS)
		return -ENOENT;
	buf = malloc(size);
	if (!buf) {
		(void)Esys_TR_Close(t->esys, &h);
		return -ENOMEM;
	}
	rc = nv_read_all(t, h, buf, size, "TPM2_NV_Read (EK certificate)");
	(void)Esys_TR_Close(t->esys, &h);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	/* Some TPMs pad the index; the DER SEQUENCE says its own length. */
	*len = size;
	if (size >= 4 && buf[0] == 0x30 && buf[1] == 0x82 &&
	    (size_t)kj_get_u16be(buf + 2) + 4 <= size)
		*len = (size_t)kj_get_u16be(buf + 2) + 4;
	*der = buf;
	return 0;
}

int kj_tpm_ek_cert_pem(struct kj_tpm *t, char **pem)
{
	const unsigned char *p;
	uint8_t *der = NULL;
	BIO *bio = NULL;
	X509 *x = NULL;
	char *data;
	size_t len;
	long n;
	int rc;

	rc = kj_tpm_ek_cert(t, &der, &len);
	if (rc < 0)
		return rc;
	p = der;
	x = d2i_X509(NULL, &p, (long)len);
	if (!x || p != der + len) {
		kj_err_ssl("TPM %s: EK certificate (NV 0x%08x): not one DER X.509 certificate",
			   t->tcti_conf,
			   t->ek_rsa ? KJ_TPM_EK_CERT_RSA : KJ_TPM_EK_CERT_ECC);
		rc = -EBADMSG;
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_X509(bio, x)) {
		rc = kj_err_ssl("EK certificate: cannot write PEM");
		goto out;
	}
	n = BIO_get_mem_data(bio, &data);
	*pem = malloc((size_t)n + 1);
	if (!*pem) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(*pem, data, (size_t)n);
	(*pem)[n] = 0;
	rc = 0;
out:
	BIO_free(bio);
	X509_free(x);
	free(der);
	return rc;
}

static int nv_check_public(struct kj_tpm *t, ESYS_TR h)
{
	TPM2B_NV_PUBLIC *pub = NULL;
	TPMA_NV want = NV_ATTRS, got;
	TSS2_RC rc;

	rc = Esys_NV_ReadPublic(t->esys, h, ESYS_TR_NONE, ESYS_TR_NONE,
				ESYS_TR_NONE, &pub, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(t, "TPM2_NV_ReadPublic (NV counter)", rc);
	got = pub->nvPublic.attributes & ~(TPMA_NV_WRITTEN | TPMA_NV_READLOCKED |
					   TPMA_NV_WRITELOCKED);
	if (got != want || pub->nvPublic.dataSize != 8 ||
	    pub->nvPublic.nameAlg != TPM2_ALG_SHA256) {
		kj_err("TPM %s: NV index 0x%08x: attributes 0x%08x size %u are not kinject's counter (0x%08x, 8): another user owns the index",
		       t->tcti_conf, KJ_TPM_NV_COUNTER, got,
		       pub->nvPublic.dataSize, want);
		Esys_Free(pub);
		return -EEXIST;
	}
	Esys_Free(pub);
	return 0;
}

/* Look the counter up (once); define it when absent and `define`. */
static int nv_handle(struct kj_tpm *t, bool define)
{
	TPM2B_NV_PUBLIC info = { 0 };
	TPM2B_AUTH auth = { 0 };
	TSS2_RC rc;

	bool yes = false;
	int err;

	if (t->nv != ESYS_TR_NONE)
		return 0;
	KJ_TRY(nv_defined(t, KJ_TPM_NV_COUNTER, &yes));
	if (yes) {
		rc = Esys_TR_FromTPMPublic(t->esys, KJ_TPM_NV_COUNTER,
					   ESYS_TR_NONE, ESYS_TR_NONE,
					   ESYS_TR_NONE, &t->nv);
		if (rc != TSS2_RC_SUCCESS) {
			t->nv = ESYS_TR_NONE;
			return tpm_fail(t, "TPM2_NV_ReadPublic (NV counter)",
					rc);
		}
		err = nv_check_public(t, t->nv);
		if (err < 0)
			(void)Esys_TR_Close(t->esys, &t->nv);
		return err;
	}
	if (!define)
		return -ENOENT;
	info.nvPublic.nvIndex = KJ_TPM_NV_COUNTER;
	info.nvPublic.nameAlg = TPM2_ALG_SHA256;
	info.nvPublic.attributes = NV_ATTRS;
	info.nvPublic.dataSize = 8;
	rc = Esys_NV_DefineSpace(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
				 ESYS_TR_NONE, ESYS_TR_NONE, &auth, &info,
				 &t->nv);
	if (rc != TSS2_RC_SUCCESS) {
		t->nv = ESYS_TR_NONE;
		return tpm_fail(t, "TPM2_NV_DefineSpace (NV counter 0x01004b4a)",
				rc);
	}
	kj_info("TPM %s: defined the NV counter at 0x%08x", t->tcti_conf,
		KJ_TPM_NV_COUNTER);
	return 0;
}

int kj_tpm_nv_read(struct kj_tpm *t, uint64_t *value)
{
	uint8_t b[8];
	int rc;

	rc = nv_handle(t, false);
	if (rc < 0)
		return rc;
	rc = nv_read_all(t, t->nv, b, 8, "TPM2_NV_Read (NV counter)");
	if (rc < 0)
		return rc;
	*value = kj_get_u64be(b);
	return 0;
}

int kj_tpm_nv_increment(struct kj_tpm *t, uint64_t *value)
{
	unsigned attempt = 0;
	TSS2_RC rc;

	KJ_TRY(nv_handle(t, true));
	do {
		rc = Esys_NV_Increment(t->esys, t->nv, t->nv, ESYS_TR_PASSWORD,
				       ESYS_TR_NONE, ESYS_TR_NONE);
	} while (retry_later(rc, &attempt));
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(t, "TPM2_NV_Increment (NV counter)", rc);
	if (kj_tpm_nv_read(t, value) < 0) {
		kj_err("TPM %s: NV counter unreadable after an increment",
		       t->tcti_conf);
		return -EIO;
	}
	return 0;
}

/* ---- PCRs and quotes ---------------------------------------------------- */

static void mask_to_selection(uint32_t mask, TPML_PCR_SELECTION *s)
{
	memset(s, 0, sizeof(*s));
	s->count = 1;
	s->pcrSelections[0].hash = TPM2_ALG_SHA256;
	s->pcrSelections[0].sizeofSelect = 3;
	s->pcrSelections[0].pcrSelect[0] = (uint8_t)mask;
	s->pcrSelections[0].pcrSelect[1] = (uint8_t)(mask >> 8);
	s->pcrSelections[0].pcrSelect[2] = (uint8_t)(mask >> 16);
}

static int check_mask(const struct kj_tpm *t, uint32_t mask)
{
	if (mask == 0 || mask >> KJ_TPM_PCR_COUNT) {
		kj_err("TPM %s: PCR selection 0x%08x: want PCRs 0..23, at least one",
		       t->tcti_conf, mask);
		return -EINVAL;
	}
	return 0;
}

int kj_tpm_pcr_read(struct kj_tpm *t, uint32_t mask,
		    uint8_t vals[KJ_TPM_PCR_COUNT][32])
{
	uint32_t left = mask;

	KJ_TRY(check_mask(t, mask));
	/* A TPM returns at most 8 digests per call: loop on what is left. */
	while (left) {
		TPML_PCR_SELECTION sel, *out = NULL;
		TPML_DIGEST *dig = NULL;
		uint32_t got = 0;
		uint32_t k = 0;
		TSS2_RC rc;

		mask_to_selection(left, &sel);
		rc = Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, &sel, NULL, &out, &dig);
		if (rc != TSS2_RC_SUCCESS)
			return tpm_fail(t, "TPM2_PCR_Read (sha256)", rc);
		for (uint32_t b = 0; b < out->count; b++) {
			const TPMS_PCR_SELECTION *p = &out->pcrSelections[b];

			if (p->hash != TPM2_ALG_SHA256)
				continue;
			for (unsigned i = 0; i < KJ_TPM_PCR_COUNT &&
					     i / 8 < p->sizeofSelect; i++)
				if (p->pcrSelect[i / 8] & (1u << (i % 8)))
					got |= KJ_PCR_BIT(i);
		}
		got &= left;
		for (unsigned i = 0; i < KJ_TPM_PCR_COUNT; i++) {
			if (!(got & KJ_PCR_BIT(i)))
				continue;
			if (k >= dig->count || dig->digests[k].size != 32) {
				got = 0;
				break;
			}
			memcpy(vals[i], dig->digests[k++].buffer, 32);
		}
		Esys_Free(out);
		Esys_Free(dig);
		if (!got) {
			kj_err("TPM %s: TPM2_PCR_Read: no SHA-256 values for PCR mask 0x%06x (bank not active?)",
			       t->tcti_conf, left);
			return -EIO;
		}
		left &= ~got;
	}
	return 0;
}

int kj_tpm_pcr_extend(struct kj_tpm *t, unsigned pcr, const uint8_t d[32])
{
	TPML_DIGEST_VALUES v = { 0 };
	char what[48];
	TSS2_RC rc;

	if (pcr >= KJ_TPM_PCR_COUNT) {
		kj_err("TPM %s: PCR %u does not exist", t->tcti_conf, pcr);
		return -EINVAL;
	}
	v.count = 1;
	v.digests[0].hashAlg = TPM2_ALG_SHA256;
	memcpy(v.digests[0].digest.sha256, d, 32);
	rc = Esys_PCR_Extend(t->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD,
			     ESYS_TR_NONE, ESYS_TR_NONE, &v);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "TPM2_PCR_Extend (PCR %u)", pcr);
		return tpm_fail(t, what, rc);
	}
	return 0;
}

int kj_tpm_quote(struct kj_tpm *t, uint32_t mask, const uint8_t qd[32],
		 uint8_t **attest, size_t *attest_len, uint8_t **sig,
		 size_t *sig_len)
{
	TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
	TPM2B_DATA data = { .size = 32 };
	TPMT_SIGNATURE *signature = NULL;
	TPM2B_ATTEST *quoted = NULL;
	TPML_PCR_SELECTION sel;
	uint8_t *a = NULL, *s = NULL;
	unsigned attempt = 0;
	size_t slen = 0;
	TSS2_RC rc;
	int ret = -EIO;

	KJ_TRY(check_mask(t, mask));
	if (t->ak == ESYS_TR_NONE) {
		kj_err("TPM %s: TPM2_Quote: no AK loaded", t->tcti_conf);
		return -ENOENT;
	}
	memcpy(data.buffer, qd, 32);
	mask_to_selection(mask, &sel);
	do {
		rc = Esys_Quote(t->esys, t->ak, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				ESYS_TR_NONE, &data, &scheme, &sel, &quoted,
				&signature);
	} while (retry_later(rc, &attempt));
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(t, "TPM2_Quote", rc);
	a = malloc(quoted->size ? quoted->size : 1);
	s = malloc(sizeof(TPMT_SIGNATURE));
	if (!a || !s) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(a, quoted->attestationData, quoted->size);
	if (Tss2_MU_TPMT_SIGNATURE_Marshal(signature, s, sizeof(TPMT_SIGNATURE),
					   &slen) != TSS2_RC_SUCCESS) {
		kj_err("TPM %s: TPM2_Quote: cannot marshal TPMT_SIGNATURE",
		       t->tcti_conf);
		goto out;
	}
	*attest = a;
	*attest_len = quoted->size;
	*sig = s;
	*sig_len = slen;
	a = s = NULL;
	ret = 0;
out:
	free(a);
	free(s);
	Esys_Free(quoted);
	Esys_Free(signature);
	return ret;
}

/* ---- residency ceremony ------------------------------------------------- */

int kj_tpm_ak_activate_check(struct kj_tpm *t)
{
	TPM2B_ID_OBJECT *blob = NULL;
	TPM2B_ENCRYPTED_SECRET *secret = NULL;
	TPM2B_DIGEST cred = { .size = 32 }, *back = NULL;
	TPM2B_NAME name = { .size = KJ_TPM_NAME_LEN };
	ESYS_TR ek = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	TSS2_RC trc;
	int rc;

	if (t->ak == ESYS_TR_NONE) {
		kj_err("TPM %s: ActivateCredential: no AK loaded", t->tcti_conf);
		return -ENOENT;
	}
	if (RAND_bytes(cred.buffer, 32) != 1)
		return kj_err_ssl("ActivateCredential: no random bytes");
	memcpy(name.name, t->ak_name, KJ_TPM_NAME_LEN);
	KJ_TRY_GOTO(rc, create_ek(t, &ek), out);
	/* The TPM encrypts to the EK public, as a remote verifier would. */
	trc = Esys_MakeCredential(t->esys, ek, ESYS_TR_NONE, ESYS_TR_NONE,
				  ESYS_TR_NONE, &cred, &name, &blob, &secret);
	if (trc != TSS2_RC_SUCCESS) {
		rc = tpm_fail(t, "TPM2_MakeCredential (to the EK)", trc);
		goto out;
	}
	KJ_TRY_GOTO(rc, ek_session(t, &sess), out);
	trc = Esys_ActivateCredential(t->esys, t->ak, ek, ESYS_TR_PASSWORD,
				      sess, ESYS_TR_NONE, blob, secret, &back);
	if (trc != TSS2_RC_SUCCESS) {
		rc = tpm_fail(t, "TPM2_ActivateCredential (AK, EK)", trc);
		goto out;
	}
	if (back->size != 32 || memcmp(back->buffer, cred.buffer, 32)) {
		kj_err("TPM %s: ActivateCredential returned another secret: the AK is not this TPM's",
		       t->tcti_conf);
		rc = -EBADMSG;
		goto out;
	}
	rc = 0;
out:
	flush(t, &sess);
	flush(t, &ek);
	explicit_bzero(cred.buffer, sizeof(cred.buffer));
	if (back)
		explicit_bzero(back->buffer, back->size);
	Esys_Free(back);
	Esys_Free(blob);
	Esys_Free(secret);
	return rc;
}
