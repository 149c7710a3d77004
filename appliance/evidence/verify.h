/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The customer's offline verifier (EVIDENCE.md §6): every check on a parsed
 * bundle, without a TPM or an HSM.  Each check has an outcome and, when it
 * fails, the first failing item named ("checkpoint 3", "record 17
 * (leaf 1234)", "event 2") with the reason; the detailed cause is also
 * logged once by the function that found it.
 */
#ifndef KINJECT_VERIFY_H
#define KINJECT_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "base/kinject.h"
#include "inputs/workorder.h"
#include "evidence.h"

enum kj_vcheck {
	KJ_VC_QUOTES = 0,   /* 1: TPMS_ATTEST, signature, extraData, AK */
	KJ_VC_PCRS,         /* 2: pcrSelect, event log replay, pcrDigest */
	KJ_VC_CLOCK,        /* 3: nv_counter order, clock runs, safe, fw */
	KJ_VC_CONSISTENCY,  /* 4: consecutive checkpoints: the log only grew */
	KJ_VC_INCLUSION,    /* 5: each record in its checkpoint's tree */
	KJ_VC_COMPLETENESS, /* 6: job_seq 0..n, job_end counts */
	KJ_VC_WORK_ORDER,   /* 7: with --work-order */
	KJ_VC_GOLDEN,       /* 8: with --golden */
	KJ_VC_CEREMONY,     /* 9: with --ek-ca: EK chain, transcript */
	KJ_VC_COUNT_,
};

enum kj_vstatus {
	KJ_VS_PASS = 0,
	KJ_VS_WARN,         /* passed with a warning (clockInfo.safe = 0) */
	KJ_VS_FAIL,
	KJ_VS_SKIPPED,      /* option not given */
};

struct kj_vresult {
	enum kj_vstatus status;
	char detail[512];   /* what was checked / the failing item and why */
	/* Structured details for --json, NULL if none: "failing_records"
	 * (record indexes, the first KJ_VDETAIL_MAX), "clock_runs",
	 * "counter_jumps", "unsafe_quotes", "job_ended", ... */
	json_t *json;
};
#define KJ_VDETAIL_MAX 100

struct kj_verify_opts {
	EVP_PKEY *ak;                        /* --ak: required */
	const struct kj_work_order *wo;      /* --work-order, or NULL */
	const uint8_t *golden;               /* --golden file bytes, or NULL */
	size_t golden_len;
	const char *golden_name;
	bool strict_clock;                   /* --strict-clock */
	const uint64_t *fw_allow;            /* --tpm-firmware-allow */
	size_t n_fw_allow;
	uint32_t pcr_mask;                   /* 0: KJ_PCR_DEFAULT_MASK */
	const char *ek_ca;                   /* --ek-ca, or NULL */
	bool partial;                        /* --partial: no job_end is fine */
};

struct kj_verify_report {
	struct kj_vresult check[KJ_VC_COUNT_];
	char job[256];                       /* from the job_start record */
	uint64_t n_records, n_ok, n_checkpoints;
	uint64_t n_devices, n_withdrawn;     /* attempts; withdrawn of them */
	bool ended;                          /* the bundle has job_end */
	/* Clock runs (§6.3): a (resetCount, restartCount) change each. */
	uint64_t clock_runs;
	uint64_t tpm_firmware;               /* of the last quote */
};

/* "quotes", "pcrs", "clock", "consistency", "inclusion", "completeness",
 * "work-order", "golden", "ceremony". */
const char *kj_vcheck_name(enum kj_vcheck c);
const char *kj_vstatus_name(enum kj_vstatus s);

/*
 * Run every check.  Returns 0 if all pass (warnings allowed), -EBADMSG if
 * one failed (rep says which), other negative errors for bad options
 * (e.g. an unparsable golden file, logged) or a bundle from
 * kj_evidence_load whose records turn out not to parse (-EINVAL, logged:
 * no verdict).  A loaded (streamed) bundle can be verified once.
 */
KJ_MUST_CHECK int kj_verify(const struct kj_evidence *ev,
			    const struct kj_verify_opts *o,
			    struct kj_verify_report *rep);
/* Free the structured details of rep (after kj_verify). */
void kj_verify_report_free(struct kj_verify_report *rep);

#endif
