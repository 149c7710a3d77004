// SPDX-License-Identifier: Apache-2.0
/*
 * The AK residency proof (tpm.h, kj_tpm_ak_residency): MakeCredential to
 * the EK's public area alone, ActivateCredential with the AK under the real
 * EK.  Its own file because it is the ceremony's, not the checkpoints':
 * it runs once per appliance and its result goes into the transcript.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <openssl/rand.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>

#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "tpm.h"
#include "tpm_int.h"

/* The EK's public area and name; the EK loaded again as public only. */
static int ek_public(struct kj_tpm *t, ESYS_TR ek, ESYS_TR *ext,
		     struct kj_tpm_residency *r)
{
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_NAME *name = NULL;
	TSS2_RC trc;
	int rc = -EIO;

	trc = Esys_ReadPublic(t->esys, ek, ESYS_TR_NONE, ESYS_TR_NONE,
			      ESYS_TR_NONE, &pub, &name, NULL);
	if (trc != TSS2_RC_SUCCESS)
		return kj_tpm_fail(t, "TPM2_ReadPublic (EK)", trc);
	if (name->size != KJ_TPM_NAME_LEN ||
	    Tss2_MU_TPM2B_PUBLIC_Marshal(pub, r->ek_public,
					 sizeof(r->ek_public),
					 &r->ek_public_len)) {
		kj_err("TPM %s: EK: unexpected public area or name",
		       t->tcti_conf);
		goto out;
	}
	memcpy(r->ek_name, name->name, KJ_TPM_NAME_LEN);
	trc = Esys_LoadExternal(t->esys, ESYS_TR_NONE, ESYS_TR_NONE,
				ESYS_TR_NONE, NULL, pub, ESYS_TR_RH_NULL, ext);
	if (trc != TSS2_RC_SUCCESS) {
		rc = kj_tpm_fail(t, "TPM2_LoadExternal (EK public)", trc);
		goto out;
	}
	rc = 0;
out:
	Esys_Free(pub);
	Esys_Free(name);
	return rc;
}

static int make(struct kj_tpm *t, ESYS_TR ext, const TPM2B_DIGEST *cred,
		struct kj_tpm_residency *r, TPM2B_ID_OBJECT **blob,
		TPM2B_ENCRYPTED_SECRET **secret)
{
	TPM2B_NAME name = { .size = KJ_TPM_NAME_LEN };
	TSS2_RC trc;

	memcpy(name.name, t->ak_name, KJ_TPM_NAME_LEN);
	memcpy(r->ak_name, t->ak_name, KJ_TPM_NAME_LEN);
	trc = Esys_MakeCredential(t->esys, ext, ESYS_TR_NONE, ESYS_TR_NONE,
				  ESYS_TR_NONE, cred, &name, blob, secret);
	if (trc != TSS2_RC_SUCCESS)
		return kj_tpm_fail(t, "TPM2_MakeCredential (to the EK public)",
				   trc);
	if (Tss2_MU_TPM2B_ID_OBJECT_Marshal(*blob, r->blob, sizeof(r->blob),
					    &r->blob_len) ||
	    Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(*secret, r->secret,
						   sizeof(r->secret),
						   &r->secret_len)) {
		kj_err("TPM %s: MakeCredential: cannot marshal the credential",
		       t->tcti_conf);
		return -EIO;
	}
	return 0;
}

int kj_tpm_ak_residency(struct kj_tpm *t, struct kj_tpm_residency *r)
{
	TPM2B_ID_OBJECT *blob = NULL;
	TPM2B_ENCRYPTED_SECRET *secret = NULL;
	TPM2B_DIGEST cred = { .size = 32 }, *back = NULL;
	ESYS_TR ek = ESYS_TR_NONE, ext = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	TSS2_RC trc;
	int rc;

	memset(r, 0, sizeof(*r));
	if (t->ak == ESYS_TR_NONE) {
		kj_err("TPM %s: ActivateCredential: no AK loaded",
		       t->tcti_conf);
		return -ENOENT;
	}
	if (RAND_bytes(cred.buffer, 32) != 1)
		return kj_err_ssl("MakeCredential: no random bytes");
	kj_sha256(cred.buffer, 32, r->challenge_sha256);
	KJ_TRY_GOTO(rc, kj_tpm_create_ek(t, &ek), out);
	KJ_TRY_GOTO(rc, ek_public(t, ek, &ext, r), out);
	KJ_TRY_GOTO(rc, make(t, ext, &cred, r, &blob, &secret), out);
	kj_tpm_flush(t, &ext);
	KJ_TRY_GOTO(rc, kj_tpm_ek_session(t, &sess), out);
	trc = Esys_ActivateCredential(t->esys, t->ak, ek, ESYS_TR_PASSWORD,
				      sess, ESYS_TR_NONE, blob, secret, &back);
	if (trc != TSS2_RC_SUCCESS) {
		rc = kj_tpm_fail(t, "TPM2_ActivateCredential (AK, EK)", trc);
		goto out;
	}
	kj_sha256(back->buffer, back->size, r->activated_sha256);
	if (back->size != 32 || memcmp(back->buffer, cred.buffer, 32)) {
		kj_err("TPM %s: ActivateCredential returned another secret: the AK is not this TPM's",
		       t->tcti_conf);
		rc = -EBADMSG;
		goto out;
	}
	rc = 0;
out:
	kj_tpm_flush(t, &sess);
	kj_tpm_flush(t, &ext);
	kj_tpm_flush(t, &ek);
	explicit_bzero(cred.buffer, sizeof(cred.buffer));
	if (back)
		explicit_bzero(back->buffer, back->size);
	Esys_Free(back);
	Esys_Free(blob);
	Esys_Free(secret);
	return rc;
}

int kj_tpm_ak_activate_check(struct kj_tpm *t)
{
	struct kj_tpm_residency r;

	return kj_tpm_ak_residency(t, &r);
}
