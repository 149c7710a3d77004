// SPDX-License-Identifier: Apache-2.0
/*
 * The endorsement key: re-derived with CreatePrimary whenever the AK needs
 * its parent, the policy session that authorizes its use, and which of the
 * two EKs to use (the residency proof is in tpm_cred.c).
 * Separate from tpm_ak.c because the EK is never stored anywhere: it is
 * derived again inside the TPM each time, while the AK is a key the
 * appliance keeps in its state directory.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <tss2/tss2_esys.h>

#include "base/kinject.h"
#include "base/log.h"
#include "tpm.h"
#include "tpm_int.h"

/* TCG EK Credential Profile, PolicyA: PolicySecret(TPM_RH_ENDORSEMENT). */
static const uint8_t ek_policy_a[32] = {
	0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
	0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
	0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

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

int kj_tpm_create_ek(struct kj_tpm *t, ESYS_TR *ek)
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
		return kj_tpm_fail(t, t->ek_rsa ?
				      "TPM2_CreatePrimary (EK, RSA 2048)" :
				      "TPM2_CreatePrimary (EK, ECC P-256)",
				   rc);
	return 0;
}

/* A policy session satisfying the EK's PolicySecret(TPM_RH_ENDORSEMENT). */
int kj_tpm_ek_session(struct kj_tpm *t, ESYS_TR *sess)
{
	TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_NULL };
	TSS2_RC rc;

	rc = Esys_StartAuthSession(t->esys, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   NULL, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256,
				   sess);
	if (rc != TSS2_RC_SUCCESS)
		return kj_tpm_fail(t, "TPM2_StartAuthSession (policy)", rc);
	rc = Esys_PolicySecret(t->esys, ESYS_TR_RH_ENDORSEMENT, *sess,
			       ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
			       NULL, NULL, NULL, 0, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		kj_tpm_flush(t, sess);
		return kj_tpm_fail(t, "TPM2_PolicySecret (TPM_RH_ENDORSEMENT)",
				   rc);
	}
	return 0;
}

/*
 * Which EK: the ECC P-256 one unless the TPM has a certificate only for
 * the RSA one (swtpm_setup issues RSA 2048 and ECC P-384 certificates), so
 * that the ceremony can tie the AK to a certified EK.
 */
void kj_tpm_choose_ek(struct kj_tpm *t)
{
	t->ek_rsa = !kj_tpm_nv_exists(t, KJ_TPM_EK_CERT_ECC, NULL) &&
		    kj_tpm_nv_exists(t, KJ_TPM_EK_CERT_RSA, NULL);
}
