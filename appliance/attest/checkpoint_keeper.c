// SPDX-License-Identifier: Apache-2.0
/*
 * The checkpointer as the keeper uses it (checkpoint.h, keeper.h hooks):
 * the Merkle tree of every record, the cadence, and commit_after_checkpoint.
 */
#include "base/log.h"
#include "base/util.h"
#include "checkpoint_int.h"

#include <inttypes.h>
#include <string.h>

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
static int catch_up(struct kj_ckpt_keeper *k)
{
	if (kj_mtree_size(k->t) >= kj_journal_record_count(k->j))
		return 0;
	return kj_journal_foreach_record(k->j, kj_mtree_size(k->t), NULL,
					 tree_cb, k->t);
}

int kj_ckpt_keeper_init(struct kj_ckpt_keeper *k, struct kj_tpm *tpm,
			struct kj_journal *j,
			const struct kj_checkpoint_policy *pol,
			bool commit_after_checkpoint)
{
	struct last_ckpt last = { 0 };
	uint64_t n = kj_journal_checkpoint_count(j);
	int rc;

	memset(k, 0, sizeof(*k));
	k->j = j;
	k->interval_ms = pol && pol->interval_ms ? pol->interval_ms :
						   KJ_CHECKPOINT_INTERVAL_MS;
	k->commit_after_checkpoint = commit_after_checkpoint;
	k->t = kj_mtree_new();
	if (!k->t)
		return -ENOMEM;
	KJ_TRY_GOTO(rc, kj_checkpoint_check(tpm, j), err);
	KJ_TRY_GOTO(rc, catch_up(k), err);
	if (n)
		KJ_TRY_GOTO(rc, kj_journal_foreach_checkpoint(j, n - 1,
							      last_cb, &last),
			    err);
	KJ_TRY_GOTO(rc, kj_ckpt_worker_start(tpm, pol, last.tree_size, &k->w),
		    err);
	k->last_ms = kj_now_ms();
	return 0;
err:
	kj_ckpt_keeper_destroy(k);
	return rc;
}

int kj_ckpt_keeper_record(struct kj_ckpt_keeper *k, uint64_t seq,
			  const uint8_t *jcs, size_t len)
{
	/* A record the hook missed comes first, from the journal. */
	if (seq > kj_mtree_size(k->t))
		KJ_TRY(catch_up(k));
	if (seq < kj_mtree_size(k->t))
		return 0; /* already read back */
	return tree_cb(k->t, seq, jcs, len);
}

int kj_ckpt_keeper_committed(struct kj_ckpt_keeper *k, uint64_t tree_size,
			     uint64_t *covered)
{
	uint64_t now = kj_now_ms();
	int rc;

	KJ_TRY(catch_up(k));
	KJ_TRY(kj_ckpt_worker_collect(k->w, k->j));
	KJ_TRY(kj_ckpt_worker_stuck(k->w));
	if (kj_checkpoint_due(now, k->last_ms, k->interval_ms,
			      kj_mtree_size(k->t) >
				      kj_ckpt_worker_covered(k->w))) {
		KJ_TRY(rc = kj_ckpt_worker_submit(k->w, k->j, k->t));
		if (rc == 1)
			k->last_ms = now;
	}
	if (covered)
		*covered = k->commit_after_checkpoint ?
				   kj_ckpt_worker_covered(k->w) : tree_size;
	return 0;
}

int kj_ckpt_keeper_finish(struct kj_ckpt_keeper *k)
{
	KJ_TRY(catch_up(k));
	KJ_TRY(kj_ckpt_worker_drain(k->w, k->j));
	if (kj_ckpt_worker_covered(k->w) < kj_mtree_size(k->t)) {
		KJ_TRY(kj_ckpt_worker_submit(k->w, k->j, k->t));
		KJ_TRY(kj_ckpt_worker_drain(k->w, k->j));
	}
	return 0;
}

void kj_ckpt_keeper_destroy(struct kj_ckpt_keeper *k)
{
	kj_ckpt_worker_stop(k->w);
	kj_mtree_free(k->t);
	k->w = NULL;
	k->t = NULL;
}
