/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the pieces of the TPM module share and nobody else may see: the
 * handle's layout and the error, retry and flush helpers (tpm.c), the EK
 * re-derivation and its policy session (tpm_ek.c), the NV presence check
 * (tpm_nv.c).  Callers outside attest/tpm*.c use tpm.h only.
 */
#ifndef KINJECT_TPM_INT_H
#define KINJECT_TPM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_esys.h>

#include "base/kinject.h"
#include "tpm.h"

struct kj_tpm {
	char *tcti_conf;
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	ESYS_TR ak;
	bool ek_rsa;            /* the AK's parent is the RSA EK (L-1) */
	uint8_t ak_pub[KJ_TPM_PUB_MAX];
	size_t ak_pub_len;
	uint8_t ak_name[KJ_TPM_NAME_LEN];
	bool ak_policy;         /* the AK signs in a boot policy session only */
	bool want_ak_policy;    /* kj_tpm_ak_bind_boot: create it so */
	ESYS_TR nv;             /* KJ_TPM_NV_COUNTER once looked up */
};

/* tpm.c */
/* Log "TPM <tcti>: <cmd>: <decoded rc>" once; returns -EIO. */
int kj_tpm_fail(const struct kj_tpm *t, const char *cmd, TSS2_RC rc);
bool kj_tpm_rc_is(TSS2_RC rc, TSS2_RC want);
bool kj_tpm_retry_later(TSS2_RC rc, unsigned *attempt);
void kj_tpm_flush(struct kj_tpm *t, ESYS_TR *h);

/* tpm_ek.c */
KJ_MUST_CHECK int kj_tpm_create_ek(struct kj_tpm *t, ESYS_TR *ek);
KJ_MUST_CHECK int kj_tpm_ek_session(struct kj_tpm *t, ESYS_TR *sess);
/*
 * A session of type TPM2_SE_TRIAL or TPM2_SE_POLICY that has run the AK's
 * boot policy: PolicyPCR over KJ_PCR_BOOT_MASK (their current values),
 * then PolicyCommandCode(TPM2_Quote).  Flush it with kj_tpm_flush.
 */
KJ_MUST_CHECK int kj_tpm_boot_policy(struct kj_tpm *t, TPM2_SE type,
				     ESYS_TR *sess);
void kj_tpm_choose_ek(struct kj_tpm *t);

/* tpm_nv.c */
/* 1 if the NV index is defined and its public area readable (its data
 * size in *size when size is not NULL), 0 otherwise. */
int kj_tpm_nv_exists(struct kj_tpm *t, TPM2_HANDLE index, uint16_t *size);

#endif
