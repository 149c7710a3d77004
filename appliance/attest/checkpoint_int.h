/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the checkpoint module (checkpoint.h): what the front
 * (checkpoint.c), the worker thread (checkpoint_worker.c) and the store
 * (checkpoint_store.c) share.  Not for other modules; white-box tests
 * build states with it.
 *
 * Counter discipline (EVIDENCE.md §4: an old journal restored, or a second
 * journal on the same TPM, must be refused):  the journal keeps in its
 * meta table KJ_META_NV_ALLOW, the highest counter value this journal may
 * have seen.  Before every increment it is raised by one and committed,
 * so a crash between the increment and the store leaves the TPM at most
 * that far ahead.  kj_checkpoint_check() on start refuses, saying which
 * value it expected:
 *   no checkpoint yet     the counter exists and the journal never started
 *                         one (KJ_META_NV_START absent): a second journal,
 *                         unless the officers approved a fresh one
 *                         (KJ_META_NV_FRESH, kj_checkpoint_allow_fresh);
 *                         the start value is recorded in KJ_META_NV_START
 *   same clock run        TPM counter in [last, allow];
 *   new clock run         TPM counter in [last, allow + orderly + 1] (an
 *                         ORDERLY counter's jump at a power loss);
 *   TPM counter < last    the journal's last checkpoint is ahead of the
 *                         TPM: a journal of another TPM, or the counter
 *                         was redefined.
 * and otherwise resynchronises allow to the TPM's value.  When the TPM
 * holds last + 1 (a quote taken but not stored before a crash), the next
 * checkpoint re-quotes that value without an increment, so the sequence
 * stays +1 (kj_checkpoint_take with reuse_nv).
 *
 * Two ways to take checkpoints:
 *  - kj_checkpoint_take(): synchronous (job end, tests, `kinject demo`).
 *  - struct kj_ckpt_worker: pipelined.  A thread owns the TPM and takes a
 *    quote of a given (tree_size, root) while the keeper's loop goes on;
 *    the loop stores the result (its own journal handle, one thread) and
 *    then COMMITs for leaves < kj_ckpt_worker_covered() may be released
 *    (commit_after_checkpoint).  At most one quote is in flight: the quote
 *    rate is bounded by the cadence and the TPM, never the device rate.
 */
#ifndef KINJECT_CHECKPOINT_INT_H
#define KINJECT_CHECKPOINT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "journal/journal.h"
#include "checkpoint.h"
#include "mtree.h"
#include "tpm.h"

/* journal meta keys: decimal u64, see above. */
#define KJ_META_NV_ALLOW "checkpoint_nv_allow"
#define KJ_META_NV_START "checkpoint_nv_start"

/* One quoted checkpoint, before it is stored.  attest/sig malloc'd. */
struct kj_ckpt {
	uint64_t tree_size;
	uint8_t root[32];
	uint64_t nv_counter;
	uint32_t epoch;
	uint64_t event_log_length;
	uint32_t pcr_mask;
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32];
	uint8_t *attest;
	size_t attest_len;
	uint8_t *sig;
	size_t sig_len;
	uint64_t quote_ms;     /* increment + quote + PCR read, monotonic */
	bool reuse_nv;         /* quote nv_counter as it is: no increment */
};
void kj_checkpoint_release(struct kj_ckpt *c);

/*
 * Cadence (§4): due when the tree grew since the last checkpoint and
 * interval_ms passed since it (now, last_ms: kj_now_ms()).
 */
bool kj_checkpoint_due(uint64_t now_ms, uint64_t last_ms,
		       uint64_t interval_ms, bool tree_grew);

/*
 * On start, before any checkpoint: compare the TPM's NV counter with the
 * journal (rules above) and record the TPM's TPM_PT_ORDERLY_COUNT
 * (KJ_META_TPM_ORDERLY).  -EPERM (logged, saying which value was
 * expected) to refuse, nothing committed; else KJ_META_NV_ALLOW is set and
 * committed (the journal must have nothing pending: -EINVAL), and the
 * result is 1 when the TPM holds the last checkpoint's value + 1 (re-quote
 * it: reuse_nv), else 0.
 */
KJ_MUST_CHECK int kj_checkpoint_check(struct kj_tpm *tpm,
				      struct kj_journal *j);

/*
 * The journal's current epoch (the last event log entry's; 0 if none) and
 * event log length, for the next checkpoint.
 */
KJ_MUST_CHECK int kj_checkpoint_epoch(struct kj_journal *j, uint32_t *epoch,
				      uint64_t *event_log_length);

/*
 * Raise KJ_META_NV_ALLOW by one in the open transaction; the caller's next
 * kj_journal_commit() must return before the increment is sent.
 */
KJ_MUST_CHECK int kj_checkpoint_announce(struct kj_journal *j);

/*
 * TPM part only (no journal: safe on the worker thread): NV increment,
 * quote over c->tree_size / c->root with c->pcr_mask, PCR read.  The
 * caller fills tree_size, root, epoch, event_log_length, pcr_mask.
 */
KJ_MUST_CHECK int kj_checkpoint_quote(struct kj_tpm *tpm,
				      struct kj_ckpt *c);

/* Journal part: add the checkpoint and commit (then it is durable). */
KJ_MUST_CHECK int kj_checkpoint_store(struct kj_journal *j,
				      const struct kj_ckpt *c);

/*
 * Synchronous checkpoint of the whole tree t (every leaf of t must be
 * appended to j; they are committed here before the quote): announce,
 * commit, quote, store, commit.  *out (may be NULL) gets tree_size,
 * nv_counter and quote_ms (attest/sig are not kept).
 */
KJ_MUST_CHECK int kj_checkpoint_take(struct kj_tpm *tpm, struct kj_journal *j,
				     const struct kj_mtree *t,
				     const struct kj_checkpoint_policy *pol,
				     struct kj_ckpt *out);
/* The same without the increment: quote the TPM's current value (the
 * repair after kj_checkpoint_check returned 1). */
KJ_MUST_CHECK int kj_checkpoint_requote(struct kj_tpm *tpm,
					struct kj_journal *j,
					const struct kj_mtree *t,
					const struct kj_checkpoint_policy *pol);

/* ---- pipelined ------------------------------------------------------------ */

struct kj_ckpt_worker;

/*
 * Start the worker thread; from now on only it uses tpm (until stop).
 * covered starts at the journal's last checkpoint tree_size (pass it).
 */
KJ_MUST_CHECK int kj_ckpt_worker_start(struct kj_tpm *tpm,
				       const struct kj_checkpoint_policy *pol,
				       uint64_t covered,
				       struct kj_ckpt_worker **out);
/* Join the thread (waits for a quote in flight; its result is dropped:
 * call kj_ckpt_worker_drain first to keep it).  A worker whose quote is
 * stuck (kj_ckpt_worker_stuck) is detached, not waited for: it keeps the
 * TPM handle (do not kj_tpm_close it) and frees itself if the TPM ever
 * answers; the process is about to exit.  NULL is fine. */
void kj_ckpt_worker_stop(struct kj_ckpt_worker *w);

/* An eventfd, readable when a result waits for kj_ckpt_worker_collect
 * (a keeper loop that can poll may wait on it). */
int kj_ckpt_worker_fd(const struct kj_ckpt_worker *w);

/* True while a quote is in flight or its result is not collected. */
bool kj_ckpt_worker_busy(const struct kj_ckpt_worker *w);

/*
 * -ETIMEDOUT (logged, naming the TCTI) once the quote in flight has taken
 * more than stuck_ms: the TPM stopped answering, the keeper must stop
 * issuing; else 0.  kj_ckpt_worker_drain does not wait for a stuck quote.
 */
KJ_MUST_CHECK int kj_ckpt_worker_stuck(struct kj_ckpt_worker *w);

/*
 * Keeper thread: if idle, announce + commit (this also makes every record
 * appended so far durable) and hand (size of t, its root) to the worker.
 * Returns 1 if submitted, 0 if busy or t has not grown past the last
 * submission.
 */
KJ_MUST_CHECK int kj_ckpt_worker_submit(struct kj_ckpt_worker *w,
					struct kj_journal *j,
					const struct kj_mtree *t);

/*
 * Keeper thread, non-blocking: if a result is ready, store + commit it and
 * advance covered.  Returns 1 if a checkpoint was stored, 0 if none was
 * ready, or the worker's / journal's error (the keeper must stop).
 */
KJ_MUST_CHECK int kj_ckpt_worker_collect(struct kj_ckpt_worker *w,
					 struct kj_journal *j);

/* True once the TPM side of a checkpoint failed (its error was logged):
 * the error kj_ckpt_worker_collect returned is the TPM's. */
bool kj_ckpt_worker_failed(const struct kj_ckpt_worker *w);

/* Blocking: wait for the quote in flight (if any) and collect it. */
KJ_MUST_CHECK int kj_ckpt_worker_drain(struct kj_ckpt_worker *w,
				       struct kj_journal *j);

/*
 * Leaves with index < covered_tree_size are under a durable quoted
 * checkpoint: their COMMITs may go (commit_after_checkpoint).
 */
uint64_t kj_ckpt_worker_covered(const struct kj_ckpt_worker *w);

void kj_ckpt_worker_stats(const struct kj_ckpt_worker *w,
			  struct kj_ckpt_stats *st);

#endif
