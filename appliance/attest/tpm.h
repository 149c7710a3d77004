/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The appliance's TPM 2.0 through tpm2-tss ESAPI (EVIDENCE.md §4).
 *
 * TCTI: the string given to Tss2_TctiLdr_Initialize, e.g.
 * "swtpm:host=127.0.0.1,port=2321" or "device:/dev/tpmrm0".  Every error
 * names the TCTI, the TPM command and the decoded TPM_RC (Tss2_RC_Decode).
 *
 * Attestation key (AK): restricted ECC P-256 signing key, ECDSA-SHA256,
 * fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign,
 * empty auth, created with the endorsement key (EK) as parent under a policy
 * session satisfying the EK's PolicySecret(TPM_RH_ENDORSEMENT), as
 * tpm2_createak does.  The EK is the TCG default template (ECC P-256, "L-2"
 * low range; RSA 2048 "L-1" when the TPM holds only an RSA EK certificate)
 * and is re-derived with CreatePrimary at each open: nothing persistent is
 * left in the TPM for the AK.  The AK is kept in the state directory:
 *
 *   DIR/ak.pub   TPM2B_PUBLIC, marshalled (as tpm2-tools writes it)
 *   DIR/ak.priv  TPM2B_PRIVATE, marshalled: wrapped by the EK, useless
 *                outside this TPM (not a plaintext secret)
 *   DIR/ak.pem   the AK public key, SubjectPublicKeyInfo PEM
 *   DIR/ak.name  the AK name (nameAlg ‖ SHA-256(TPMT_PUBLIC)), hex + "\n"
 *
 * NV counter: KJ_TPM_NV_COUNTER, an 8-byte TPM_NT_COUNTER index in the
 * owner range, OWNERWRITE|OWNERREAD|AUTHWRITE|AUTHREAD|NO_DA, empty auth,
 * defined with owner authorization at first use.  An existing index with
 * other attributes is refused (someone else owns it).  Its first value is
 * not 1: a TPM starts a new counter at the highest count it ever had.
 * ORDERLY (TPMA_NV_ORDERLY, EVIDENCE.md §4): the TPM keeps it in RAM and
 * writes it to NV every TPM_PT_ORDERLY_COUNT + 1 increments and at an
 * orderly shutdown; after a power loss it moves the counter past every
 * value it may have reached, so the counter jumps by at most that much
 * into a new clock run.  The older plain counter is refused, saying how
 * to start afresh.  TPM_RC_NV_RATE, RETRY, YIELDED and TESTING are retried
 * with back-off; if one persists the error names it.
 *
 * Every transient handle is flushed before the function that created it
 * returns, except the loaded AK, flushed by kj_tpm_close().
 */
#ifndef KINJECT_TPM_H
#define KINJECT_TPM_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "tpm_defs.h"

/* 0x01000000-0x013fffff is the owner range; "KJ" = 0x4b4a. */
#define KJ_TPM_NV_COUNTER 0x01004b4au
/* Owner-range NV indexes of the TCG EK certificates (TCG EK profile). */
#define KJ_TPM_EK_CERT_RSA 0x01c00002u
#define KJ_TPM_EK_CERT_ECC 0x01c0000au

struct kj_tpm;

/* Connect; *out on success.  Does not send TPM2_Startup (the OS did). */
KJ_MUST_CHECK int kj_tpm_open(const char *tcti, struct kj_tpm **out);
/* Flush the AK, finalize ESYS and the TCTI.  NULL is fine. */
void kj_tpm_close(struct kj_tpm *tpm);
const char *kj_tpm_tcti(const struct kj_tpm *tpm);

/*
 * Load the AK from state_dir (ak.pub + ak.priv) or, when neither exists,
 * create it and write ak.pub, ak.priv, ak.pem, ak.name (atomically).  One
 * file present without the other is an error.  After a load, ak.pem and
 * ak.name are rewritten if missing.  Returns 1 if created, 0 if loaded.
 */
KJ_MUST_CHECK int kj_tpm_ak_setup(struct kj_tpm *tpm, const char *state_dir);

/* After kj_tpm_ak_setup: the marshalled TPM2B_PUBLIC and the name. */
KJ_MUST_CHECK int kj_tpm_ak_public(const struct kj_tpm *tpm,
				   const uint8_t **pub, size_t *len);
KJ_MUST_CHECK int kj_tpm_ak_name(const struct kj_tpm *tpm,
				 uint8_t name[KJ_TPM_NAME_LEN]);

/*
 * The EK certificate (DER) matching the EK in use, from its TCG NV index;
 * malloc'd.  -ENOENT (not logged) when the TPM has none.
 */
KJ_MUST_CHECK int kj_tpm_ek_cert(struct kj_tpm *tpm, uint8_t **der,
				 size_t *len);

/* The same as PEM ("-----BEGIN CERTIFICATE-----"), for the evidence
 * bundle's ek_certificate_pem; malloc'd, NUL-terminated.  -ENOENT (not
 * logged) when none; -EBADMSG (logged) when the index holds no X.509. */
KJ_MUST_CHECK int kj_tpm_ek_cert_pem(struct kj_tpm *tpm, char **pem);

/*
 * DIR/ek.pem, the evidence bundle's ek_certificate_pem (SPEC.md §4: written
 * where the TPM has an EK certificate): write it from the TPM's TCG NV
 * index if it is missing.  Returns 1 if written, 0 if present or the TPM
 * has none.
 */
KJ_MUST_CHECK int kj_tpm_save_ek_pem(struct kj_tpm *tpm,
				     const char *state_dir);

/*
 * The AK residency proof of the ceremony (SPEC.md §5, EVIDENCE.md §4), as
 * an officer's tpm2_makecredential + the appliance's
 * tpm2_activatecredential: the EK's public area is loaded as an external
 * key (public only, as a remote party holds it), TPM2_MakeCredential wraps
 * a random 32-byte challenge for the AK's name to it, and
 * TPM2_ActivateCredential with the AK and the real EK gets it back, which
 * only a TPM holding both can do.  Filled for the transcript: the EK's
 * public area and name, the AK's name the credential was made for, the
 * credential blob and encrypted seed, and SHA-256 of the challenge made
 * and of the one activated (equal, or -EBADMSG).  The challenge itself is
 * wiped.
 */
struct kj_tpm_residency {
	uint8_t ek_public[KJ_TPM_PUB_MAX]; /* marshalled TPM2B_PUBLIC */
	size_t ek_public_len;
	uint8_t ek_name[KJ_TPM_NAME_LEN];
	uint8_t ak_name[KJ_TPM_NAME_LEN];
	uint8_t blob[512];                 /* TPM2B_ID_OBJECT, marshalled */
	size_t blob_len;
	uint8_t secret[600];               /* TPM2B_ENCRYPTED_SECRET */
	size_t secret_len;
	uint8_t challenge_sha256[32], activated_sha256[32];
};
KJ_MUST_CHECK int kj_tpm_ak_residency(struct kj_tpm *tpm,
				      struct kj_tpm_residency *out);
/* The same, keeping nothing: 0 if the AK is this TPM's, else -EBADMSG. */
KJ_MUST_CHECK int kj_tpm_ak_activate_check(struct kj_tpm *tpm);

/* Read the SHA-256 bank values of the PCRs in mask into vals[i], i = PCR. */
KJ_MUST_CHECK int kj_tpm_pcr_read(struct kj_tpm *tpm, uint32_t mask,
				  uint8_t vals[KJ_TPM_PCR_COUNT][32]);

/* TPM2_PCR_Extend of the SHA-256 bank of pcr with digest. */
KJ_MUST_CHECK int kj_tpm_pcr_extend(struct kj_tpm *tpm, unsigned pcr,
				    const uint8_t digest[32]);

/* Define KJ_TPM_NV_COUNTER if absent, TPM2_NV_Increment, read it back. */
KJ_MUST_CHECK int kj_tpm_nv_increment(struct kj_tpm *tpm, uint64_t *value);
/* Read the counter; -ENOENT (not logged) if not defined yet. */
KJ_MUST_CHECK int kj_tpm_nv_read(struct kj_tpm *tpm, uint64_t *value);
/* 1 if KJ_TPM_NV_COUNTER is defined (by anyone), 0 if not. */
KJ_MUST_CHECK int kj_tpm_nv_defined(struct kj_tpm *tpm);
/* TPM_PT_ORDERLY_COUNT: an ORDERLY counter is written to NV every
 * count + 1 increments. */
KJ_MUST_CHECK int kj_tpm_orderly_count(struct kj_tpm *tpm, uint32_t *count);
/* TPM2_ReadClock: the current clock run (resetCount, restartCount). */
KJ_MUST_CHECK int kj_tpm_clock_run(struct kj_tpm *tpm, uint32_t *reset_count,
				   uint32_t *restart_count);

/*
 * TPM2_Quote with the AK over the SHA-256 PCRs in mask (sizeofSelect 3)
 * with qualifyingData qd.  *attest: the marshalled TPMS_ATTEST (the
 * TPM2B_ATTEST's content, as `tpm2_quote -m` writes); *sig: the marshalled
 * TPMT_SIGNATURE (as `tpm2_quote -s` writes).  Both malloc'd.
 */
KJ_MUST_CHECK int kj_tpm_quote(struct kj_tpm *tpm, uint32_t mask,
			       const uint8_t qd[32], uint8_t **attest,
			       size_t *attest_len, uint8_t **sig,
			       size_t *sig_len);

#endif
