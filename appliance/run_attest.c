// SPDX-License-Identifier: Apache-2.0
#include "run_attest.h"
#include "log.h"
#include "measure.h"
#include "util.h"

#include <string.h>

static int last_cp_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	*(uint64_t *)ctx = c->tree_size;
	return 0;
}

static int last_covered(struct kj_journal *j, uint64_t *covered)
{
	uint64_t n = kj_journal_checkpoint_count(j);

	*covered = 0;
	if (!n)
		return 0;
	return kj_journal_foreach_checkpoint(j, n - 1, last_cp_cb, covered);
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
	int rc;

	memset(a, 0, sizeof(*a));
	a->journal = j;
	a->policy.interval_ms = args->interval_ms;
	a->commit_after_checkpoint = args->commit_after_checkpoint;
	a->tree = kj_mtree_new();
	if (!a->tree)
		return -ENOMEM;
	if (!strcmp(args->tcti, "none")) {
		kj_warn("--tpm none: records are journaled but not attested; "
			"this run's evidence will not verify");
		a->commit_after_checkpoint = false;
		return 0;
	}
	KJ_TRY(kj_tpm_open(args->tcti, &a->tpm));
	rc = kj_tpm_ak_setup(a->tpm, args->state_dir);
	if (rc < 0)
		return rc;
	if (rc == 1)
		kj_info("created the attestation key: %s/ak.pem",
			args->state_dir);
	KJ_TRY(kj_checkpoint_check(a->tpm, j));
	KJ_TRY(kj_measure_job_start(a->tpm, j, &in, &out));
	kj_info("measured code and policy into PCRs (epoch %u, %s, %llu "
		"entries added)", out.epoch,
		kj_epoch_decision_name(out.decision),
		(unsigned long long)out.added);
	return 0;
}

static int tree_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct kj_mtree *t = ctx;

	if (seq != kj_mtree_size(t)) {
		kj_err("journal: record %llu out of order while rebuilding "
		       "the log (expected %llu)", (unsigned long long)seq,
		       (unsigned long long)kj_mtree_size(t));
		return -EBADMSG;
	}
	return kj_mtree_append(t, jcs, len);
}

int kj_run_attest_start(struct kj_run_attest *a)
{
	uint64_t covered;

	KJ_TRY(kj_journal_foreach_record(a->journal, 0, NULL, tree_cb,
					 a->tree));
	if (!a->tpm)
		return 0;
	KJ_TRY(last_covered(a->journal, &covered));
	a->submitted_size = covered;
	return kj_ckpt_worker_start(a->tpm, &a->policy, covered, &a->worker);
}

int kj_run_attest_record(void *ctx, uint64_t seq, const uint8_t *jcs,
			 size_t len)
{
	return tree_cb(((struct kj_run_attest *)ctx)->tree, seq, jcs, len);
}

int kj_run_attest_committed(void *ctx, uint64_t tree_size, uint64_t *covered)
{
	struct kj_run_attest *a = ctx;
	uint64_t now = kj_now_ms(), interval;
	int rc;

	if (!a->worker) {
		*covered = tree_size;
		return 0;
	}
	KJ_TRY(kj_ckpt_worker_collect(a->worker, a->journal));
	interval = a->policy.interval_ms ? a->policy.interval_ms
					 : KJ_CHECKPOINT_INTERVAL_MS;
	if (kj_checkpoint_due(now, a->last_submit_ms, interval,
			      kj_mtree_size(a->tree) > a->submitted_size)) {
		rc = kj_ckpt_worker_submit(a->worker, a->journal, a->tree);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			a->last_submit_ms = now;
			a->submitted_size = kj_mtree_size(a->tree);
		}
	}
	*covered = a->commit_after_checkpoint ? kj_ckpt_worker_covered(a->worker)
					      : tree_size;
	return 0;
}

int kj_run_attest_finish(struct kj_run_attest *a)
{
	int rc;

	if (!a->worker)
		return kj_journal_commit(a->journal);
	KJ_TRY(kj_ckpt_worker_drain(a->worker, a->journal));
	if (kj_ckpt_worker_covered(a->worker) >= kj_mtree_size(a->tree))
		return kj_journal_commit(a->journal);
	rc = kj_ckpt_worker_submit(a->worker, a->journal, a->tree);
	if (rc < 0)
		return rc;
	return kj_ckpt_worker_drain(a->worker, a->journal);
}

void kj_run_attest_stats(const struct kj_run_attest *a,
			 struct kj_ckpt_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (a->worker)
		kj_ckpt_worker_stats(a->worker, st);
}

void kj_run_attest_close(struct kj_run_attest *a)
{
	kj_ckpt_worker_stop(a->worker);
	kj_tpm_close(a->tpm);
	kj_mtree_free(a->tree);
	memset(a, 0, sizeof(*a));
}
