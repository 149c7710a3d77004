// SPDX-License-Identifier: Apache-2.0
#include "checkpoint.h"
#include "base/log.h"
#include "evidence/evidence.h"
#include "measure.h"

#include <string.h>

static int open_tpm(struct kj_run_attest *a, const char *tcti,
		    const char *state_dir)
{
	int rc;

	KJ_TRY(kj_tpm_open(tcti, &a->tpm));
	rc = kj_tpm_ak_setup(a->tpm, state_dir);
	if (rc < 0)
		return rc;
	if (rc == 1)
		kj_info("created the attestation key: %s/ak.pem", state_dir);
	rc = kj_evidence_save_ek(a->tpm, state_dir);
	if (rc == 1)
		kj_info("kept the TPM's EK certificate: %s/ek.pem", state_dir);
	return rc < 0 ? rc : 0;
}

int kj_run_attest_open(struct kj_run_attest *a,
		       const struct kj_run_attest_args *args,
		       struct kj_journal *j)
{
	struct kj_measure_in in = {
		.work_order = args->work_order,
		.work_order_len = args->work_order_len,
		.product = args->product,
		.product_len = args->product_len,
		.state_dir = args->state_dir,
	};
	struct kj_measure_out out;

	memset(a, 0, sizeof(*a));
	a->journal = j;
	a->policy.interval_ms = args->interval_ms;
	a->commit_after_checkpoint = args->commit_after_checkpoint;
	if (!strcmp(args->tcti, "none")) {
		kj_warn("--tpm none: records are journaled but not attested; "
			"this run's evidence will not verify");
		return 0;
	}
	KJ_TRY(open_tpm(a, args->tcti, args->state_dir));
	/* Refuse a restored or foreign journal before extending anything. */
	KJ_TRY(kj_checkpoint_check(a->tpm, j));
	KJ_TRY(kj_measure_job_start(a->tpm, j, &in, &out));
	kj_info("measured code and policy into PCRs (epoch %u, %s, %llu "
		"entries added)", out.epoch,
		kj_epoch_decision_name(out.decision),
		(unsigned long long)out.added);
	return 0;
}

int kj_run_attest_start(struct kj_run_attest *a)
{
	int rc;

	KJ_TRY(kj_journal_commit(a->journal));
	if (!a->tpm)
		return 0;
	rc = kj_ckpt_keeper_init(&a->ck, a->tpm, a->journal, &a->policy,
				 a->commit_after_checkpoint);
	if (rc == 0)
		a->started = true;
	return rc;
}

int kj_run_attest_record(void *ctx, uint64_t seq, const uint8_t *jcs,
			 size_t len)
{
	struct kj_run_attest *a = ctx;

	return a->started ? kj_ckpt_keeper_record(&a->ck, seq, jcs, len) : 0;
}

int kj_run_attest_committed(void *ctx, uint64_t tree_size, uint64_t *covered)
{
	struct kj_run_attest *a = ctx;

	if (!a->started) {
		*covered = tree_size;
		return 0;
	}
	return kj_ckpt_keeper_committed(&a->ck, tree_size, covered);
}

int kj_run_attest_finish(struct kj_run_attest *a)
{
	if (!a->started)
		return kj_journal_commit(a->journal);
	return kj_ckpt_keeper_finish(&a->ck);
}

void kj_run_attest_stats(const struct kj_run_attest *a,
			 struct kj_ckpt_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (a->started)
		kj_ckpt_worker_stats(a->ck.w, st);
}

void kj_run_attest_close(struct kj_run_attest *a)
{
	/* A worker stuck in the TCTI is detached with the TPM handle: closing
	 * the TPM under it would be a use after free. */
	bool stuck = a->started && kj_ckpt_worker_stuck(a->ck.w) < 0;

	if (a->started)
		kj_ckpt_keeper_destroy(&a->ck);
	if (!stuck)
		kj_tpm_close(a->tpm);
	memset(a, 0, sizeof(*a));
}
