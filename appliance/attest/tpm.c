// SPDX-License-Identifier: Apache-2.0
/*
 * The appliance's TPM through tpm2-tss ESAPI (EVIDENCE.md §4; tpm.h says
 * what is kept where).  Each function flushes the transient objects and
 * sessions it creates before returning; only the AK stays loaded.
 *
 * This file holds the connection, the error and retry helpers every piece
 * shares (tpm_int.h), and what needs only a connection and the AK handle:
 * PCR read and extend, the quote.  The keys are in tpm_ek.c and tpm_ak.c,
 * the NV indexes in tpm_nv.c.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "tpm.h"
#include "base/kinject.h"
#include "base/log.h"
#include "tpm_int.h"

int kj_tpm_fail(const struct kj_tpm *t, const char *cmd, TSS2_RC rc)
{
	kj_err("TPM %s: %s: %s (0x%x)", t->tcti_conf, cmd, Tss2_RC_Decode(rc),
	       rc);
	return -EIO;
}

/* TPM_RC_HANDLE / TPM_RC_NV_UNINITIALIZED etc., whatever the handle/
 * parameter number bits say. */
bool kj_tpm_rc_is(TSS2_RC rc, TSS2_RC want)
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
bool kj_tpm_retry_later(TSS2_RC rc, unsigned *attempt)
{
	unsigned ms;

	if (!kj_tpm_rc_is(rc, TPM2_RC_RETRY) &&
	    !kj_tpm_rc_is(rc, TPM2_RC_YIELDED) &&
	    !kj_tpm_rc_is(rc, TPM2_RC_TESTING) &&
	    !kj_tpm_rc_is(rc, TPM2_RC_NV_RATE))
		return false;
	if (*attempt >= 20)
		return false;
	ms = *attempt < 6 ? 5u << *attempt : 200u;
	(*attempt)++;
	usleep(ms * 1000u);
	return true;
}

void kj_tpm_flush(struct kj_tpm *t, ESYS_TR *h)
{
	TSS2_RC rc;

	if (*h == ESYS_TR_NONE)
		return;
	rc = Esys_FlushContext(t->esys, *h);
	if (rc != TSS2_RC_SUCCESS)
		kj_tpm_fail(t, "TPM2_FlushContext", rc);
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
		kj_tpm_fail(t, "Tss2_TctiLdr_Initialize", rc);
		goto err;
	}
	rc = Esys_Initialize(&t->esys, t->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		kj_tpm_fail(t, "Esys_Initialize", rc);
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
			return kj_tpm_fail(t, "TPM2_PCR_Read (sha256)", rc);
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
		return kj_tpm_fail(t, what, rc);
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
		ESYS_TR auth = ESYS_TR_PASSWORD, ps = ESYS_TR_NONE;

		if (t->ak_policy) {
			KJ_TRY(kj_tpm_boot_policy(t, TPM2_SE_POLICY, &ps));
			auth = ps;
		}
		rc = Esys_Quote(t->esys, t->ak, auth, ESYS_TR_NONE,
				ESYS_TR_NONE, &data, &scheme, &sel, &quoted,
				&signature);
		kj_tpm_flush(t, &ps);
	} while (kj_tpm_retry_later(rc, &attempt));
	if (rc != TSS2_RC_SUCCESS && t->ak_policy)
		return kj_tpm_fail(t, "TPM2_Quote (the AK's policy: PCRs 4 and 9 are not those of the boot the ceremony ran in)",
				   rc);
	if (rc != TSS2_RC_SUCCESS)
		return kj_tpm_fail(t, "TPM2_Quote", rc);
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
