/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checkpoint quotes without a TPM (EVIDENCE.md §4, §6 checks 1-2): the
 * qualifying data, strict parsing of the AK public area and of TPMS_ATTEST
 * with libtss2-mu, and ECDSA-SHA256 verification with OpenSSL.  Used by the
 * keeper (to make qualifying data), by `kinject verify` and by tpm.c (the AK
 * public area to PEM).
 *
 * Every verifying function logs the failure once, naming the check that
 * failed (see enum kj_quote_check) and quoting the bad value, and returns
 * -EBADMSG (or -EINVAL for malformed input, -ENOMEM).
 */
#ifndef KINJECT_ATTEST_H
#define KINJECT_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "base/kinject.h"
#include "tpm_defs.h"

/* EVIDENCE.md §4: the domain separator of the qualifying data. */
#define KJ_CHECKPOINT_DOMAIN "KINJECT-CHECKPOINT-1"

/*
 * qualifyingData = SHA-256("KINJECT-CHECKPOINT-1" ‖ u64be(tree_size) ‖
 * root ‖ u64be(nv_counter)), EVIDENCE.md §4.
 */
void kj_checkpoint_qd(uint64_t tree_size, const uint8_t root[32],
		      uint64_t nv_counter, uint8_t out[32]);

/* The checks, in the order kj_quote_verify runs them. */
enum kj_quote_check {
	KJ_QC_OK = 0,
	KJ_QC_PARSE,      /* TPMS_ATTEST unmarshal, incl. trailing bytes */
	KJ_QC_MAGIC,      /* magic == TPM_GENERATED_VALUE */
	KJ_QC_TYPE,       /* type == TPM_ST_ATTEST_QUOTE */
	KJ_QC_SIGNATURE,  /* TPMT_SIGNATURE parse + ECDSA-SHA256 under AK */
	KJ_QC_EXTRA_DATA, /* extraData == qualifying data */
	KJ_QC_PCR_SELECT, /* pcrSelect == exactly the policy selection */
	KJ_QC_PCR_DIGEST, /* pcrDigest == SHA-256(PCR values ascending) */
	KJ_QC_EVENT_LOG,  /* event_log_length beyond the log, bad entry */
};
/* "parse", "magic", "type", "signature", "extraData", "pcrSelect", ... */
const char *kj_quote_check_name(enum kj_quote_check c);

/* The checks on the AK public area (kj_ak_parse / kj_ak_check). */
enum kj_ak_check {
	KJ_AKC_OK = 0,
	KJ_AKC_PARSE,      /* TPM2B_PUBLIC unmarshal, size, trailing bytes */
	KJ_AKC_TYPE,       /* ECC P-256, ECDSA-SHA256 scheme, nameAlg SHA-256 */
	KJ_AKC_ATTRIBUTES, /* restricted|sign|fixedTPM|fixedParent|sDO */
	KJ_AKC_NAME,       /* nameAlg ‖ SHA-256(TPMT_PUBLIC) == ak_name */
	KJ_AKC_KEY,        /* the point == the key of --ak ak.pem */
};
const char *kj_ak_check_name(enum kj_ak_check c);

/* A parsed, checked AK public area. */
struct kj_ak {
	EVP_PKEY *pkey;                 /* the ECC P-256 public key */
	uint8_t name[KJ_TPM_NAME_LEN];  /* nameAlg ‖ SHA-256(TPMT_PUBLIC) */
	uint32_t attributes;            /* TPMA_OBJECT */
};

/*
 * Parse a marshalled TPM2B_PUBLIC strictly (no trailing bytes, inner size
 * consistent), require an ECC P-256 ECDSA-SHA256 key with restricted, sign,
 * fixedTPM, fixedParent and sensitiveDataOrigin, compute its name and
 * public key.  *failed (may be NULL) names the check on failure.
 */
KJ_MUST_CHECK int kj_ak_parse(const uint8_t *pub, size_t len,
			      struct kj_ak *ak, enum kj_ak_check *failed);
/*
 * Check a parsed AK against the bundle's ak_name (binary, name_len bytes)
 * and the customer's trusted key (--ak ak.pem, may be NULL to skip).
 */
KJ_MUST_CHECK int kj_ak_check(const struct kj_ak *ak, const uint8_t *name,
			      size_t name_len, EVP_PKEY *trusted,
			      enum kj_ak_check *failed);
void kj_ak_free(struct kj_ak *ak);

/* Load a PEM public key file (ak.pem); NULL and a logged error on failure. */
EVP_PKEY *kj_pubkey_read_pem(const char *path);
/* The AK public key as SubjectPublicKeyInfo PEM, malloc'd, NUL-terminated. */
KJ_MUST_CHECK int kj_ak_pem(const struct kj_ak *ak, char **pem);

/* What a verified quote says, for the clock/order checks of §6.3. */
struct kj_quote_info {
	uint64_t clock;
	uint32_t reset_count;
	uint32_t restart_count;
	bool safe;
	uint64_t firmware_version;
	bool pcr_select_ok;     /* one SHA-256 bank, sizeofSelect 3 */
	uint32_t pcr_mask;      /* that bank's selection, when ok */
	uint8_t pcr_digest[32];
	uint8_t extra_data[64];
	size_t extra_len;
};

/*
 * Parse marshalled TPMS_ATTEST strictly: unmarshal must consume every byte,
 * magic TPM_GENERATED_VALUE, type TPM_ST_ATTEST_QUOTE.  Fills *info
 * (pcr_mask only when the selection is one SHA-256 bank of 3 bytes; else
 * 0 and pcr_select_ok false: kj_quote_verify rejects it).
 */
KJ_MUST_CHECK int kj_quote_parse(const uint8_t *attest, size_t len,
				 struct kj_quote_info *info,
				 enum kj_quote_check *failed);

/*
 * Every check of EVIDENCE.md §6.1-2 on one quote: parse, magic, type,
 * ECDSA-SHA256 signature (TPMT_SIGNATURE, r,s to DER) over SHA-256(attest)
 * under ak, extraData == qd, pcrSelect == exactly {SHA-256: mask},
 * pcrDigest == SHA-256(pcrs[i] for i in mask ascending).  pcrs is indexed
 * by PCR number (the replayed values).  On success fills *info (may be
 * NULL); on failure *failed (may be NULL) names the check.
 */
KJ_MUST_CHECK int kj_quote_verify(const struct kj_ak *ak,
				  const uint8_t *attest, size_t attest_len,
				  const uint8_t *sig, size_t sig_len,
				  const uint8_t qd[32], uint32_t mask,
				  const uint8_t pcrs[KJ_TPM_PCR_COUNT][32],
				  struct kj_quote_info *info,
				  enum kj_quote_check *failed);

/* One checkpoint as the journal and the evidence bundle carry it (§4-5). */
struct kj_quoted_checkpoint {
	uint64_t tree_size;
	uint8_t root[32];
	uint64_t nv_counter;
	uint32_t epoch;
	uint64_t event_log_length;
	const uint8_t *attest;   /* marshalled TPMS_ATTEST */
	size_t attest_len;
	const uint8_t *sig;      /* marshalled TPMT_SIGNATURE */
	size_t sig_len;
};

struct kj_event;

/*
 * §6.1-2 for one checkpoint: replay the first event_log_length entries of
 * ev (n of them) that carry the checkpoint's epoch into pcrs (may be NULL;
 * the verifier compares them with the bundle's "pcrs"), compute the
 * qualifying data from tree_size, root and nv_counter, and run
 * kj_quote_verify.  event_log_length > n fails as KJ_QC_EVENT_LOG.
 */
KJ_MUST_CHECK int
kj_quoted_checkpoint_verify(const struct kj_ak *ak,
			    const struct kj_quoted_checkpoint *c,
			    const struct kj_event *ev, size_t n, uint32_t mask,
			    uint8_t pcrs[KJ_TPM_PCR_COUNT][32],
			    struct kj_quote_info *info,
			    enum kj_quote_check *failed);

/*
 * §6.3 order and clock over consecutive checkpoints.  Start with a zeroed
 * run and its orderly count (the bundle's tpm_orderly_count); call once per
 * checkpoint, in order, with its verified quote.  Fails (-EBADMSG, logged)
 * when, within one (resetCount, restartCount) pair, nv_counter is not the
 * previous + 1 or the clock does not strictly increase, or when into a new
 * pair nv_counter is not the previous + 1 ... + orderly + 1 (§4: an
 * ORDERLY counter jumps at most that far at a power loss).  Otherwise 0
 * with *flags: KJ_ORDER_NEW_RUN when the pair changed (a new clock run:
 * show it, with the firmware version), KJ_ORDER_UNSAFE when clockInfo.safe
 * is 0, KJ_ORDER_JUMP when nv_counter moved by run->jump > 1 (up to
 * jump - 1 checkpoints not seen); the last two are warnings, failures
 * with --strict-clock.
 */
struct kj_clock_run {
	uint64_t orderly;   /* in: TPM_PT_ORDERLY_COUNT of the appliance */
	bool started;
	uint64_t nv_counter;
	uint32_t reset_count;
	uint32_t restart_count;
	uint64_t clock;
	uint64_t jump;      /* out: nv_counter - the previous (0 at first) */
};
#define KJ_ORDER_NEW_RUN 0x1u
#define KJ_ORDER_UNSAFE 0x2u
#define KJ_ORDER_JUMP 0x4u
KJ_MUST_CHECK int kj_quote_order(struct kj_clock_run *run,
				 uint64_t nv_counter,
				 const struct kj_quote_info *qi,
				 unsigned *flags);

/* SHA-256 over the PCR values in mask, ascending: the quote's pcrDigest. */
void kj_pcr_digest(uint32_t mask, const uint8_t pcrs[KJ_TPM_PCR_COUNT][32],
		   uint8_t out[32]);

#endif
