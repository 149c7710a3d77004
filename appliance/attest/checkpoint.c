// SPDX-License-Identifier: Apache-2.0
/*
 * The front of the checkpoint module (checkpoint.h), as `kinject run' and
 * the keeper's hooks use it: the TPM, AK and job-start measurements, the
 * Merkle tree of every record, the cadence, and commit_after_checkpoint.
 * The TPM is the worker thread's (checkpoint_worker.c) once started; the
 * quote and its storage are checkpoint_store.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "base/log.h"
#include "base/util.h"
#include "journal/journal.h"
#include "checkpoint_int.h"
#include "measure.h"
#include "mtree.h"
#include "tpm.h"

bool kj_checkpoint_due(uint64_t now_ms, uint64_t last_ms,
		       uint64_t interval_ms, bool tree_grew)
{
	if (!tree_grew)
		return false;
	if (!interval_ms)
		interval_ms = KJ_CHECKPOINT_INTERVAL_MS;
	return now_ms < last_ms || now_ms - last_ms >= interval_ms;
}

/* ---- job start ----------------------------------------------------------- */

static int open_tpm(struct kj_checkpointer *c, const char *tcti,
		    const char *state_dir)
{
	int rc;

	KJ_TRY(kj_tpm_open(tcti, &c->tpm));
	rc = kj_tpm_ak_setup(c->tpm, state_dir);
	if (rc < 0)
		return rc;
	if (rc == 1)
		kj_info("created the attestation key: %s/ak.pem", state_dir);
	rc = kj_tpm_save_ek_pem(c->tpm, state_dir);
	if (rc == 1)
		kj_info("kept the TPM's EK certificate: %s/ek.pem", state_dir);
	return rc < 0 ? rc : 0;
}

int kj_checkpointer_open(struct kj_checkpointer *c,
			 const struct kj_checkpointer_args *args,
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

	memset(c, 0, sizeof(*c));
	c->journal = j;
	c->policy.interval_ms = args->interval_ms;
	c->commit_after_checkpoint = args->commit_after_checkpoint;
	if (!strcmp(args->tcti, "none")) {
		/* SPEC §4: unattested records after attested ones would
		 * leave a gap no bundle of this state could close. */
		if (kj_journal_checkpoint_count(j)) {
			kj_err("--tpm none: the state dir %s has attested history (%llu checkpoints): its records must stay attested; give the appliance's TPM with --tpm",
			       args->state_dir, (unsigned long long)
			       kj_journal_checkpoint_count(j));
			return -EPERM;
		}
		kj_warn("--tpm none: records are journaled but not attested; "
			"this run's evidence will not verify");
		return 0;
	}
	KJ_TRY(open_tpm(c, args->tcti, args->state_dir));
	/* Refuse a restored or foreign journal before extending anything. */
	KJ_TRY(kj_checkpoint_check(c->tpm, j));
	KJ_TRY(kj_measure_job_start(c->tpm, j, &in, &out));
	if (out.code_by_boot) /* in the image: quote the boot chain too */
		c->policy.pcr_mask = KJ_PCR_DEFAULT_MASK | KJ_PCR_BOOT_MASK;
	kj_info("measured code and policy into PCRs (epoch %u, %s, %llu "
		"entries added)", out.epoch,
		kj_epoch_decision_name(out.decision),
		(unsigned long long)out.added);
	return 0;
}

/* ---- the tree of records ------------------------------------------------- */

struct last_ckpt {
	uint64_t tree_size;
};

static int last_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	((struct last_ckpt *)ctx)->tree_size = c->tree_size;
	return 0;
}

static int tree_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct kj_mtree *t = ctx;

	if (seq != kj_mtree_size(t)) {
		kj_err("journal: record seq %" PRIu64 " where %" PRIu64 " was expected: the log has a gap",
		       seq, kj_mtree_size(t));
		return -EBADMSG;
	}
	return kj_mtree_append(t, jcs, len);
}

/* Read back records the hooks did not see. */
static int catch_up(struct kj_checkpointer *c)
{
	if (kj_mtree_size(c->t) >= kj_journal_record_count(c->journal))
		return 0;
	return kj_journal_foreach_record(c->journal, kj_mtree_size(c->t), NULL,
					 tree_cb, c->t);
}

static void stop_worker(struct kj_checkpointer *c)
{
	kj_ckpt_worker_stop(c->w);
	kj_mtree_free(c->t);
	c->w = NULL;
	c->t = NULL;
}

/*
 * Counter check (kj_checkpoint_check), the Merkle tree rebuilt from the
 * journal, the worker started (tpm belongs to it until stop_worker).  The
 * journal must have nothing pending.  Call after the measurements.
 */
static int start_worker(struct kj_checkpointer *c, struct kj_tpm *tpm)
{
	struct last_ckpt last = { 0 };
	uint64_t n = kj_journal_checkpoint_count(c->journal);
	int repair, rc;

	if (!c->policy.interval_ms)
		c->policy.interval_ms = KJ_CHECKPOINT_INTERVAL_MS;
	c->t = kj_mtree_new();
	if (!c->t)
		return -ENOMEM;
	KJ_TRY_GOTO(repair, kj_checkpoint_check(tpm, c->journal), err_rc);
	KJ_TRY_GOTO(rc, catch_up(c), err);
	if (n)
		KJ_TRY_GOTO(rc, kj_journal_foreach_checkpoint(c->journal, n - 1,
							      last_cb, &last),
			    err);
	if (c->commit_after_checkpoint) {
		uint64_t w = 0;

		KJ_TRY_GOTO(rc, kj_journal_withdraw_beyond(c->journal,
							   last.tree_size, &w),
			    err);
		if (w)
			KJ_TRY_GOTO(rc, catch_up(c), err);
	}
	if (repair) {
		KJ_TRY_GOTO(rc, kj_checkpoint_requote(tpm, c->journal, c->t,
						      &c->policy),
			    err);
		last.tree_size = kj_mtree_size(c->t);
	}
	KJ_TRY_GOTO(rc, kj_ckpt_worker_start(tpm, &c->policy, last.tree_size,
					     &c->w),
		    err);
	c->last_ms = kj_now_ms();
	return 0;
err_rc:
	rc = repair;
err:
	stop_worker(c);
	return rc;
}

int kj_checkpointer_start(struct kj_checkpointer *c)
{
	KJ_TRY(kj_journal_commit(c->journal));
	if (!c->tpm)
		return 0;
	return start_worker(c, c->tpm);
}

int kj_checkpointer_attach(struct kj_checkpointer *c, struct kj_tpm *tpm,
			   struct kj_journal *j,
			   const struct kj_checkpoint_policy *pol,
			   bool commit_after_checkpoint)
{
	memset(c, 0, sizeof(*c));
	c->journal = j;
	if (pol)
		c->policy = *pol;
	c->commit_after_checkpoint = commit_after_checkpoint;
	return start_worker(c, tpm);
}

/* ---- the keeper's hooks -------------------------------------------------- */

int kj_checkpointer_record(void *ctx, uint64_t seq, const uint8_t *jcs,
			   size_t len)
{
	struct kj_checkpointer *c = ctx;

	if (!c->w)
		return 0;
	/* A record the hook missed comes first, from the journal. */
	if (seq > kj_mtree_size(c->t))
		KJ_TRY(catch_up(c));
	if (seq < kj_mtree_size(c->t))
		return 0; /* already read back */
	return tree_cb(c->t, seq, jcs, len);
}

int kj_checkpointer_committed(void *ctx, uint64_t tree_size,
			      uint64_t *covered)
{
	struct kj_checkpointer *c = ctx;
	uint64_t now;
	int rc;

	if (!c->w) {
		*covered = tree_size;
		return 0;
	}
	now = kj_now_ms();
	KJ_TRY(catch_up(c));
	rc = kj_ckpt_worker_collect(c->w, c->journal);
	if (rc < 0)
		return kj_ckpt_worker_failed(c->w) ? KJ_CHECKPOINT_LOST : rc;
	if (kj_ckpt_worker_stuck(c->w) < 0)
		return KJ_CHECKPOINT_LOST;
	if (kj_checkpoint_due(now, c->last_ms, c->policy.interval_ms,
			      kj_mtree_size(c->t) >
				      kj_ckpt_worker_covered(c->w))) {
		KJ_TRY(rc = kj_ckpt_worker_submit(c->w, c->journal, c->t));
		if (rc == 1)
			c->last_ms = now;
	}
	if (covered)
		*covered = c->commit_after_checkpoint ?
				   kj_ckpt_worker_covered(c->w) : tree_size;
	return 0;
}

/*
 * The job's last quote keeps the cadence too: no two quotes start less
 * than an interval apart, so quotes/s stay <= 1/interval whatever the
 * device rate (QUALITY.md), at the cost of up to one interval at the
 * job's end (its last COMMITs wait that long for a quote anyway).
 */
static void wait_cadence(const struct kj_checkpointer *c)
{
	uint64_t now = kj_now_ms(), ms;
	struct timespec ts;

	if (!c->last_ms || now < c->last_ms ||
	    now - c->last_ms >= c->policy.interval_ms)
		return;
	ms = c->policy.interval_ms - (now - c->last_ms);
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int kj_checkpointer_finish(struct kj_checkpointer *c)
{
	if (!c->w)
		return kj_journal_commit(c->journal);
	KJ_TRY(catch_up(c));
	KJ_TRY(kj_ckpt_worker_drain(c->w, c->journal));
	if (kj_ckpt_worker_covered(c->w) < kj_mtree_size(c->t)) {
		wait_cadence(c);
		c->last_ms = kj_now_ms();
		KJ_TRY(kj_ckpt_worker_submit(c->w, c->journal, c->t));
		KJ_TRY(kj_ckpt_worker_drain(c->w, c->journal));
	}
	return 0;
}

/* ---- job end ------------------------------------------------------------- */

void kj_checkpointer_stats(const struct kj_checkpointer *c,
			   struct kj_ckpt_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (c->w)
		kj_ckpt_worker_stats(c->w, st);
}

void kj_checkpointer_close(struct kj_checkpointer *c)
{
	/* A worker stuck in the TCTI is detached with the TPM handle: closing
	 * the TPM under it would be a use after free. */
	bool stuck = c->w && kj_ckpt_worker_stuck(c->w) < 0;

	stop_worker(c);
	if (!stuck)
		kj_tpm_close(c->tpm);
	memset(c, 0, sizeof(*c));
}
