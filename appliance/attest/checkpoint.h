/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attestation side of `kinject run' (EVIDENCE.md §3-4): the TPM and
 * its AK, the job-start measurements, then the keeper's TPM checkpoints,
 * taken by a pipelined worker thread and plugged into the keeper's hooks.
 * With `--tpm none' (engine tests and benchmarks only) nothing is quoted
 * and COMMIT follows the journal commit: the run says it is not attested.
 *
 * A checkpoint is one TPM2_NV_Increment of the appliance counter (value v)
 * and one TPM2_Quote with the AK over the policy PCRs with
 *   qualifyingData = SHA-256("KINJECT-CHECKPOINT-1" ‖ u64be(tree_size) ‖
 *                            root ‖ u64be(v))
 * stored in the journal with the PCR values read right after the quote,
 * the current epoch and the event log length.
 *
 * Inside (checkpoint_int.h): checkpoint.c is this front (the tree of
 * records, the cadence, commit_after_checkpoint), checkpoint_worker.c the
 * thread that owns the TPM, checkpoint_store.c the quote and its storage
 * with the counter discipline.
 */
#ifndef KINJECT_CHECKPOINT_H
#define KINJECT_CHECKPOINT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"

#define KJ_CHECKPOINT_INTERVAL_MS 200 /* EVIDENCE.md §4 default */
#define KJ_CHECKPOINT_STUCK_MS 30000
/* kj_checkpointer_committed: the TPM failed or stopped answering (logged,
 * naming it); no checkpoint will come.  The run's hook passes it on as
 * the keeper's KJ_KEEPER_ATTEST_LOST. */
#define KJ_CHECKPOINT_LOST (-ENODEV)
/* journal meta key: the TPM's TPM_PT_ORDERLY_COUNT, decimal, set at every
 * start (the evidence bundle's appliance.tpm_orderly_count). */
#define KJ_META_TPM_ORDERLY "tpm_orderly_count"
/* journal meta key: the officers' approval of a fresh journal on a TPM
 * whose NV counter is in use (kj_checkpoint_allow_fresh). */
#define KJ_META_NV_FRESH "checkpoint_fresh_approval"

struct kj_journal;
struct kj_mtree;
struct kj_tpm;
struct kj_ckpt_worker;

struct kj_checkpoint_policy {
	uint32_t pcr_mask;     /* SHA-256 bank; 0: KJ_PCR_DEFAULT_MASK */
	uint64_t interval_ms;  /* 0: KJ_CHECKPOINT_INTERVAL_MS */
	/* A quote in flight longer than this is a TPM that stopped
	 * answering: the keeper stops (-ETIMEDOUT).  0: KJ_CHECKPOINT_STUCK_MS */
	uint64_t stuck_ms;
};

struct kj_ckpt_stats {
	uint64_t taken;
	uint64_t quote_ms_total; /* sum of kj_checkpoint.quote_ms */
	uint64_t quote_ms_max;
};

struct kj_checkpointer {
	struct kj_journal *journal;
	struct kj_tpm *tpm;		/* opened by kj_checkpointer_open;
					 * NULL: --tpm none, or attached */
	struct kj_checkpoint_policy policy;
	bool commit_after_checkpoint;	/* false: covered = tree_size */
	/* Once started (NULL before, and with --tpm none): */
	struct kj_ckpt_worker *w;	/* owns the TPM */
	struct kj_mtree *t;		/* every record of the state */
	uint64_t last_ms;		/* last submission, kj_now_ms() */
};

struct kj_checkpointer_args {
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
KJ_MUST_CHECK int kj_checkpointer_open(struct kj_checkpointer *c,
				       const struct kj_checkpointer_args *args,
				       struct kj_journal *j);

/* After kj_journal_job_begin (commits it): rebuild the tree, append
 * `withdrawn` for every ok record of the job beyond the last durable
 * checkpoint (EVIDENCE.md §2: a crash left their COMMITs unsent), start
 * the checkpoint thread. */
KJ_MUST_CHECK int kj_checkpointer_start(struct kj_checkpointer *c);

/*
 * Tests: start on a TPM the caller opened (AK loaded), with no
 * measurements: the counter check, the Merkle tree rebuilt from the
 * journal, the worker started (tpm belongs to it until close; the caller
 * closes it after, unless the worker was stuck).  The journal must have
 * nothing pending.
 */
KJ_MUST_CHECK int kj_checkpointer_attach(struct kj_checkpointer *c,
					 struct kj_tpm *tpm,
					 struct kj_journal *j,
					 const struct kj_checkpoint_policy *pol,
					 bool commit_after_checkpoint);

/*
 * The keeper hooks (struct kj_keeper_hooks, ctx = c), for
 * commit_after_checkpoint.  record: a record appended (seq = leaf index, in
 * order).  committed: after a journal commit (records [0, tree_size)
 * durable), or on the keeper's timer: store a finished quote, submit the
 * next when due, and set *covered (COMMITs may go for leaves below it).
 * KJ_CHECKPOINT_LOST when the TPM failed; other < 0: the journal's.
 * Records appended without the record hook (job_start of
 * kj_journal_job_begin) are read back from the journal first.
 */
int kj_checkpointer_record(void *ctx, uint64_t seq, const uint8_t *jcs,
			   size_t len);
int kj_checkpointer_committed(void *ctx, uint64_t tree_size,
			      uint64_t *covered);

/* Job end, also on a stop (the final checkpoint of SPEC.md §4): wait for
 * the quote in flight, then one checkpoint over the whole tree, waited for
 * (everything is covered afterwards). */
KJ_MUST_CHECK int kj_checkpointer_finish(struct kj_checkpointer *c);

/*
 * The `reset-journal' ceremony request, once applied with the officers'
 * signatures: let this journal (which must have no checkpoint) start on a
 * TPM whose NV counter is already in use.  approval: what to record (e.g.
 * the applied request's SHA-256, hex); kept in the journal
 * (KJ_META_NV_FRESH) and committed.  Without it kinject run refuses such
 * a journal, naming the request.
 */
KJ_MUST_CHECK int kj_checkpoint_allow_fresh(struct kj_journal *j,
					    const char *approval);

void kj_checkpointer_stats(const struct kj_checkpointer *c,
			   struct kj_ckpt_stats *st);
/* Stop the worker, free the tree, close the TPM kj_checkpointer_open
 * opened.  Safe on a zeroed struct. */
void kj_checkpointer_close(struct kj_checkpointer *c);

#endif
