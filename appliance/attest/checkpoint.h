/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attestation side of `kinject run' (EVIDENCE.md §3-4): the TPM and
 * its AK, the job-start measurements, then the pipelined checkpointer of
 * checkpoint.h (struct kj_ckpt_keeper) plugged into the keeper's hooks.
 * With `--tpm none' (engine tests and benchmarks only) nothing is quoted
 * and COMMIT follows the journal commit: the run says it is not attested.
 */
#ifndef KINJECT_RUN_ATTEST_H
#define KINJECT_RUN_ATTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "journal/journal.h"
#include "checkpoint_int.h"
#include "tpm.h"

struct kj_run_attest {
	struct kj_journal *journal;
	struct kj_tpm *tpm;		/* NULL: --tpm none */
	struct kj_ckpt_keeper ck;	/* owns tpm once started */
	struct kj_checkpoint_policy policy;
	bool commit_after_checkpoint;
	bool started;
};

struct kj_run_attest_args {
	const char *tcti;		/* "none": no TPM */
	const char *state_dir;
	uint64_t interval_ms;		/* 0: KJ_CHECKPOINT_INTERVAL_MS */
	bool commit_after_checkpoint;
	const uint8_t *work_order;
	size_t work_order_len;
	const uint8_t *product;
	size_t product_len;
};

/*
 * Before the job begins (the journal must have nothing pending): open the
 * TPM, load or create the AK (and keep the EK certificate), refuse a
 * journal the TPM's NV counter does not match, measure code and policy
 * into PCRs 13/14.
 */
KJ_MUST_CHECK int kj_run_attest_open(struct kj_run_attest *a,
				     const struct kj_run_attest_args *args,
				     struct kj_journal *j);

/* After kj_journal_job_begin (commits it): rebuild the tree, start the
 * checkpoint thread. */
KJ_MUST_CHECK int kj_run_attest_start(struct kj_run_attest *a);

/* The keeper hooks (ctx = a). */
int kj_run_attest_record(void *ctx, uint64_t seq, const uint8_t *jcs,
			 size_t len);
int kj_run_attest_committed(void *ctx, uint64_t tree_size,
			    uint64_t *covered);

/* Job end or stop: a final checkpoint over the whole tree, waited for. */
KJ_MUST_CHECK int kj_run_attest_finish(struct kj_run_attest *a);

void kj_run_attest_stats(const struct kj_run_attest *a,
			 struct kj_ckpt_stats *st);
void kj_run_attest_close(struct kj_run_attest *a);

#endif
