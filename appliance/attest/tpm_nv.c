// SPDX-License-Identifier: Apache-2.0
/*
 * The TPM's NV indexes: kinject's ORDERLY monotonic counter (defined on
 * first use, checked to be ours, incremented with retry; the TPM property
 * and clock that bound its jumps) and the TCG EK certificate indexes.
 * Separate because NV is its own resource with its own failure
 * modes (another owner of the index, NV rate limiting, unwritten indexes).
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>

#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "tpm.h"
#include "tpm_int.h"

/* The counter before it was ORDERLY: refused with a way out. */
#define NV_ATTRS_PLAIN                                                      \
	((TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_OWNERWRITE |  \
	 TPMA_NV_OWNERREAD | TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD |         \
	 TPMA_NV_NO_DA)
/* EVIDENCE.md §4: a hybrid index, written to NV every
 * TPM_PT_ORDERLY_COUNT + 1 increments and at an orderly shutdown. */
#define NV_ATTRS (NV_ATTRS_PLAIN | TPMA_NV_ORDERLY)

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
		return kj_tpm_fail(t, "TPM2_GetCapability (handles)", rc);
	*yes = cap->data.handles.count >= 1 &&
	       cap->data.handles.handle[0] == index;
	Esys_Free(cap);
	return 0;
}

int kj_tpm_nv_exists(struct kj_tpm *t, TPM2_HANDLE index,
		     uint16_t *size)
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
			if (kj_tpm_rc_is(rc, TPM2_RC_NV_UNINITIALIZED))
				return -ENOENT;
			return kj_tpm_fail(t, what, rc);
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

	if (!kj_tpm_nv_exists(t, idx, &size) || size == 0)
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
		return kj_tpm_fail(t, "TPM2_NV_ReadPublic (NV counter)", rc);
	got = pub->nvPublic.attributes & ~(TPMA_NV_WRITTEN | TPMA_NV_READLOCKED |
					   TPMA_NV_WRITELOCKED);
	if (got == NV_ATTRS_PLAIN && pub->nvPublic.dataSize == 8) {
		kj_err("TPM %s: NV index 0x%08x is the plain (not ORDERLY) counter of an older kinject, one NV write per checkpoint: this appliance state cannot go on. Start afresh: keep the old state dir (its evidence stays verifiable), remove the index (tpm2_nvundefine 0x%08x -C o) and run with a new --state dir",
		       t->tcti_conf, KJ_TPM_NV_COUNTER, KJ_TPM_NV_COUNTER);
		Esys_Free(pub);
		return -EEXIST;
	}
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
			return kj_tpm_fail(t, "TPM2_NV_ReadPublic (NV counter)",
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
		return kj_tpm_fail(t, "TPM2_NV_DefineSpace (NV counter 0x01004b4a)",
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
	} while (kj_tpm_retry_later(rc, &attempt));
	if (rc != TSS2_RC_SUCCESS)
		return kj_tpm_fail(t, "TPM2_NV_Increment (NV counter)", rc);
	if (kj_tpm_nv_read(t, value) < 0) {
		kj_err("TPM %s: NV counter unreadable after an increment",
		       t->tcti_conf);
		return -EIO;
	}
	return 0;
}

int kj_tpm_nv_defined(struct kj_tpm *t)
{
	bool yes = false;

	KJ_TRY(nv_defined(t, KJ_TPM_NV_COUNTER, &yes));
	return yes;
}

int kj_tpm_orderly_count(struct kj_tpm *t, uint32_t *count)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPML_TAGGED_TPM_PROPERTY *p;
	TSS2_RC rc;

	rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE,
				ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
				TPM2_PT_ORDERLY_COUNT, 1, NULL, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return kj_tpm_fail(t, "TPM2_GetCapability (TPM_PT_ORDERLY_COUNT)",
				   rc);
	p = &cap->data.tpmProperties;
	if (!p->count || p->tpmProperty[0].property != TPM2_PT_ORDERLY_COUNT) {
		Esys_Free(cap);
		kj_err("TPM %s: no TPM_PT_ORDERLY_COUNT property: the TPM cannot keep an ORDERLY NV counter",
		       t->tcti_conf);
		return -ENOTSUP;
	}
	*count = p->tpmProperty[0].value;
	Esys_Free(cap);
	return 0;
}

int kj_tpm_clock_run(struct kj_tpm *t, uint32_t *reset_count,
		     uint32_t *restart_count)
{
	TPMS_TIME_INFO *ti = NULL;
	TSS2_RC rc;

	rc = Esys_ReadClock(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
			    &ti);
	if (rc != TSS2_RC_SUCCESS)
		return kj_tpm_fail(t, "TPM2_ReadClock", rc);
	*reset_count = ti->clockInfo.resetCount;
	*restart_count = ti->clockInfo.restartCount;
	Esys_Free(ti);
	return 0;
}

int kj_tpm_save_ek_pem(struct kj_tpm *tpm, const char *state_dir)
{
	char path[PATH_MAX], *pem = NULL;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/ek.pem", state_dir) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	if (!access(path, F_OK))
		return 0;
	rc = kj_tpm_ek_cert_pem(tpm, &pem);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	rc = kj_write_file_atomic(path, pem, strlen(pem), 0644);
	free(pem);
	return rc < 0 ? rc : 1;
}
