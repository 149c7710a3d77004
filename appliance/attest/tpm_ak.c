// SPDX-License-Identifier: Apache-2.0
/*
 * The attestation key: its template, created once under the EK and kept
 * in the state directory (tpm.h lists the files), loaded back at each open.
 * Separate from tpm_ek.c because this is the part that reads and writes
 * files: the EK is only ever re-derived inside the TPM.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>

#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "attest.h"
#include "tpm.h"
#include "tpm_int.h"

/*
 * The AK template: what tpm2_createak -G ecc -g sha256 -s ecdsa makes, plus
 * noDA.  Its auth is empty and never fails, but every power cut without
 * TPM2_Shutdown counts as a dictionary-attack failure against DA-protected
 * objects; a few of them lock quoting out (TPM_RC_LOCKOUT) on a line that
 * loses power.
 */
static void ak_template(TPM2B_PUBLIC *p, const TPM2B_DIGEST *policy)
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
	if (policy) { /* kj_tpm_boot_policy's digest, and no password use */
		a->authPolicy = *policy;
		a->objectAttributes &= ~TPMA_OBJECT_USERWITHAUTH;
	}
}

int kj_tpm_boot_policy(struct kj_tpm *t, TPM2_SE type, ESYS_TR *sess)
{
	TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_NULL };
	TPML_PCR_SELECTION sel = { .count = 1 };
	TPM2B_DIGEST any = { .size = 0 }; /* the PCRs' current values */
	TSS2_RC rc;

	sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
	sel.pcrSelections[0].sizeofSelect = 3;
	for (unsigned i = 0; i < 24; i++)
		if (KJ_PCR_BOOT_MASK & KJ_PCR_BIT(i))
			sel.pcrSelections[0].pcrSelect[i / 8] |= 1u << (i % 8);
	rc = Esys_StartAuthSession(t->esys, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   NULL, type, &sym, TPM2_ALG_SHA256, sess);
	if (rc != TSS2_RC_SUCCESS)
		return kj_tpm_fail(t, "TPM2_StartAuthSession (AK policy)", rc);
	rc = Esys_PolicyPCR(t->esys, *sess, ESYS_TR_NONE, ESYS_TR_NONE,
			    ESYS_TR_NONE, &any, &sel);
	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_PolicyCommandCode(t->esys, *sess, ESYS_TR_NONE,
					    ESYS_TR_NONE, ESYS_TR_NONE,
					    TPM2_CC_Quote);
	if (rc != TSS2_RC_SUCCESS) {
		kj_tpm_flush(t, sess);
		return kj_tpm_fail(t, "AK policy (PolicyPCR 4,9 + PolicyCommandCode Quote)",
				   rc);
	}
	return 0;
}

/* The policy digest of the PCRs' values now: the AK's authPolicy. */
static int boot_policy_digest(struct kj_tpm *t, TPM2B_DIGEST *out)
{
	ESYS_TR sess = ESYS_TR_NONE;
	TPM2B_DIGEST *d = NULL;
	TSS2_RC rc;

	KJ_TRY(kj_tpm_boot_policy(t, TPM2_SE_TRIAL, &sess));
	rc = Esys_PolicyGetDigest(t->esys, sess, ESYS_TR_NONE, ESYS_TR_NONE,
				  ESYS_TR_NONE, &d);
	kj_tpm_flush(t, &sess);
	if (rc != TSS2_RC_SUCCESS)
		return kj_tpm_fail(t, "TPM2_PolicyGetDigest (AK policy)", rc);
	*out = *d;
	Esys_Free(d);
	return 0;
}

static int ak_adopt_public(struct kj_tpm *t, const uint8_t *pub, size_t len)
{
	struct kj_ak ak;

	if (len > sizeof(t->ak_pub))
		return -EFBIG;
	TPM2B_PUBLIC p = { 0 };
	size_t off = 0;
	int rc = kj_ak_parse(pub, len, &ak, NULL);

	if (rc < 0)
		return rc;
	(void)Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, len, &off, &p);
	t->ak_policy = p.publicArea.authPolicy.size != 0;
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
	TPM2B_DIGEST policy = { 0 };
	ESYS_TR ek = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	uint8_t pbuf[sizeof(TPM2B_PUBLIC)], vbuf[sizeof(TPM2B_PRIVATE)];
	size_t plen = 0, vlen = 0;
	TSS2_RC trc;
	int rc;

	if (t->want_ak_policy)
		KJ_TRY(boot_policy_digest(t, &policy));
	ak_template(&tmpl, t->want_ak_policy ? &policy : NULL);
	KJ_TRY_GOTO(rc, kj_tpm_create_ek(t, &ek), out);
	KJ_TRY_GOTO(rc, kj_tpm_ek_session(t, &sess), out);
	trc = Esys_Create(t->esys, ek, sess, ESYS_TR_NONE, ESYS_TR_NONE,
			  &sens, &tmpl, &outside, &pcrs, &priv, &pub, NULL,
			  NULL, NULL);
	kj_tpm_flush(t, &sess);
	if (trc != TSS2_RC_SUCCESS) {
		rc = kj_tpm_fail(t, "TPM2_Create (AK under the EK)", trc);
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
	KJ_TRY_GOTO(rc, kj_tpm_ek_session(t, &sess), out);
	trc = Esys_Load(t->esys, ek, sess, ESYS_TR_NONE, ESYS_TR_NONE, priv,
			pub, &t->ak);
	if (trc != TSS2_RC_SUCCESS) {
		t->ak = ESYS_TR_NONE;
		rc = kj_tpm_fail(t, "TPM2_Load (AK)", trc);
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
	kj_tpm_flush(t, &sess);
	kj_tpm_flush(t, &ek);
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
	KJ_TRY_GOTO(rc, kj_tpm_create_ek(t, &ek), out);
	KJ_TRY_GOTO(rc, kj_tpm_ek_session(t, &sess), out);
	trc = Esys_Load(t->esys, ek, sess, ESYS_TR_NONE, ESYS_TR_NONE, &priv,
			&pub, &t->ak);
	if (trc != TSS2_RC_SUCCESS) {
		t->ak = ESYS_TR_NONE;
		rc = kj_tpm_fail(t, "TPM2_Load (AK from the state directory: another TPM, or a cleared endorsement hierarchy?)",
				 trc);
		goto out;
	}
	rc = export_public(t, dir);
out:
	kj_tpm_flush(t, &sess);
	kj_tpm_flush(t, &ek);
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
	kj_tpm_choose_ek(t);
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

void kj_tpm_ak_bind_boot(struct kj_tpm *t)
{
	t->want_ak_policy = true;
}

bool kj_tpm_ak_bound_boot(const struct kj_tpm *t)
{
	return t->ak_policy;
}
