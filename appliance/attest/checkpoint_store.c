// SPDX-License-Identifier: Apache-2.0
/*
 * The store of the checkpoint module (checkpoint_int.h): NV increment +
 * quote + PCR read on the TPM side, add + commit on the journal side, and
 * the counter discipline that refuses an old or foreign journal.  Apart
 * from the front because the quote runs on the worker thread
 * (checkpoint_worker.c) and the rest on the keeper's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "journal/journal.h"
#include "attest.h"
#include "checkpoint_int.h"
#include "mtree.h"
#include "tpm.h"

void kj_checkpoint_release(struct kj_ckpt *c)
{
	free(c->attest);
	free(c->sig);
	c->attest = NULL;
	c->sig = NULL;
}

static uint32_t policy_mask(const struct kj_checkpoint_policy *pol)
{
	return pol && pol->pcr_mask ? pol->pcr_mask : KJ_PCR_DEFAULT_MASK;
}

/* ---- journal side --------------------------------------------------------- */

/* The journal's last checkpoint: its counter and clock run. */
struct last_ckpt {
	uint64_t nv;
	uint32_t reset, restart;
	int parsed;
};

static int last_ckpt_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	struct last_ckpt *l = ctx;
	struct kj_quote_info qi;

	l->nv = c->nv_counter;
	l->parsed = kj_quote_parse(c->quote_attest, c->attest_len, &qi, NULL);
	l->reset = qi.reset_count;
	l->restart = qi.restart_count;
	return 0;
}

/* 1 and *l if the journal has a checkpoint, 0 if none. */
static int last_ckpt(struct kj_journal *j, struct last_ckpt *l)
{
	uint64_t n = kj_journal_checkpoint_count(j);

	if (!n)
		return 0;
	KJ_TRY(kj_journal_foreach_checkpoint(j, n - 1, last_ckpt_cb, l));
	if (l->parsed < 0) {
		kj_err("journal: the last checkpoint's quote does not parse");
		return -EBADMSG;
	}
	return 1;
}

/* 1 and *v if the meta key holds a decimal u64, 0 if absent. */
static int meta_u64(struct kj_journal *j, const char *key, uint64_t *v)
{
	char what[64];
	uint8_t *val;
	size_t len;
	int rc;

	rc = kj_journal_meta_get(j, key, &val, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	snprintf(what, sizeof(what), "journal meta %s", key);
	rc = kj_parse_u64((const char *)val, 0, UINT64_MAX, what, v);
	free(val);
	return rc < 0 ? -EBADMSG : 1;
}

static int meta_set_u64(struct kj_journal *j, const char *key, uint64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);

	return kj_journal_meta_set(j, key, buf, (size_t)n);
}

static int nv_allow_get(struct kj_journal *j, uint64_t *v)
{
	return meta_u64(j, KJ_META_NV_ALLOW, v);
}

int kj_checkpoint_announce(struct kj_journal *j)
{
	uint64_t allow = 0;

	KJ_TRY(nv_allow_get(j, &allow));
	if (allow == UINT64_MAX)
		return -EOVERFLOW;
	return meta_set_u64(j, KJ_META_NV_ALLOW, allow + 1);
}

int kj_checkpoint_allow_fresh(struct kj_journal *j, const char *approval)
{
	if (kj_journal_checkpoint_count(j)) {
		kj_err("checkpoint: this journal has checkpoints already: a fresh start applies to a journal without any");
		return -EINVAL;
	}
	KJ_TRY(kj_journal_meta_set(j, KJ_META_NV_FRESH, approval,
				   strlen(approval)));
	return kj_journal_commit(j);
}

/*
 * A journal that never took a checkpoint (§4 and issue 12 item 5): on a
 * TPM whose counter exists it would be a second journal, the same work
 * done twice with each bundle verifying alone, unless the officers
 * approved a fresh journal.  The value it starts from is recorded.
 */
static int check_first(struct kj_tpm *tpm, struct kj_journal *j,
		       bool defined, uint64_t tpm_nv)
{
	uint64_t start = 0, allow = 0;
	uint8_t *ok = NULL;
	size_t len;
	int have_start, rc;

	KJ_TRY(have_start = meta_u64(j, KJ_META_NV_START, &start));
	if (have_start) {
		/* Our own start, not yet a checkpoint stored. */
		KJ_TRY(nv_allow_get(j, &allow));
		if (defined && start && tpm_nv < start) {
			kj_err("checkpoint: the TPM (%s) NV counter is %" PRIu64 ", below %" PRIu64 " where this journal started: the counter was redefined; refusing to continue",
			       kj_tpm_tcti(tpm), tpm_nv, start);
			return -EPERM;
		}
		return meta_set_u64(j, KJ_META_NV_ALLOW,
				    tpm_nv > allow ? tpm_nv : allow);
	}
	if (defined) {
		rc = kj_journal_meta_get(j, KJ_META_NV_FRESH, &ok, &len);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		free(ok);
		if (rc == -ENOENT) {
			kj_err("checkpoint: the TPM (%s) NV counter 0x%08x is in use (value %" PRIu64 ") but this journal has no checkpoint: a second journal on this appliance (a new or renamed state dir) could do the same work again, each bundle verifying alone. A fresh journal needs the officers' approval: kinject ceremony request reset-journal, then kinject ceremony apply with their signatures",
			       kj_tpm_tcti(tpm), KJ_TPM_NV_COUNTER, tpm_nv);
			return -EPERM;
		}
		kj_warn("checkpoint: a fresh journal on a TPM whose NV counter is at %" PRIu64 ", as the officers approved",
			tpm_nv);
	}
	KJ_TRY(meta_set_u64(j, KJ_META_NV_START, defined ? tpm_nv : 0));
	return meta_set_u64(j, KJ_META_NV_ALLOW, defined ? tpm_nv : 0);
}

/* §4's rule against the journal's last checkpoint; 1: repair (header). */
static int check_last(struct kj_tpm *tpm, struct kj_journal *j,
		      const struct last_ckpt *l, uint64_t tpm_nv,
		      uint32_t orderly)
{
	uint64_t allow = 0, max;
	uint32_t reset, restart;
	bool same;
	int have;

	KJ_TRY(have = nv_allow_get(j, &allow));
	if (!have || allow < l->nv)
		allow = l->nv;
	KJ_TRY(kj_tpm_clock_run(tpm, &reset, &restart));
	same = reset == l->reset && restart == l->restart;
	max = same ? allow : allow + orderly + 1;
	if (tpm_nv < l->nv) {
		kj_err("checkpoint: the journal's last checkpoint has NV counter %" PRIu64 " but the TPM (%s) is at %" PRIu64 ": this journal is ahead of the TPM (a journal of another TPM, or the counter was redefined); refusing to continue",
		       l->nv, kj_tpm_tcti(tpm), tpm_nv);
		return -EPERM;
	}
	if (tpm_nv > max) {
		char want[48];

		if (max > l->nv)
			snprintf(want, sizeof(want), "%" PRIu64 " to %" PRIu64,
				 l->nv, max);
		else
			snprintf(want, sizeof(want), "%" PRIu64, l->nv);
		kj_err("checkpoint: the TPM (%s) NV counter is %" PRIu64 ", this journal expects %s (%s): at least %" PRIu64 " checkpoint(s) taken that this journal does not hold (an old copy of the journal restored, or a second journal on the same TPM); refusing to continue",
		       kj_tpm_tcti(tpm), tpm_nv, want,
		       same ? "the same TPM clock run" :
			      "a new TPM clock run: up to tpm_orderly_count + 1 more",
		       tpm_nv - max);
		return -EPERM;
	}
	if (tpm_nv > l->nv && !same && tpm_nv > allow)
		kj_warn("checkpoint: the TPM's NV counter jumped from %" PRIu64 " to %" PRIu64 " across a TPM reset (a power loss): up to %" PRIu64 " checkpoint value(s) skipped, as an ORDERLY counter does",
			allow, tpm_nv, tpm_nv - allow);
	KJ_TRY(meta_set_u64(j, KJ_META_NV_ALLOW, tpm_nv));
	return tpm_nv == l->nv + 1;
}

int kj_checkpoint_check(struct kj_tpm *tpm, struct kj_journal *j)
{
	struct last_ckpt last = { 0 };
	uint64_t tpm_nv = 0;
	uint32_t orderly;
	int have_last, defined, rc;

	if (kj_journal_pending(j)) {
		kj_err("checkpoint: counter check with uncommitted journal writes");
		return -EINVAL;
	}
	KJ_TRY(kj_tpm_orderly_count(tpm, &orderly));
	rc = kj_tpm_nv_read(tpm, &tpm_nv);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	defined = rc == 0;
	if (!defined)
		KJ_TRY(defined = kj_tpm_nv_defined(tpm));
	if (defined && rc == -ENOENT)
		tpm_nv = 0; /* defined, never incremented */
	KJ_TRY(have_last = last_ckpt(j, &last));
	KJ_TRY(meta_set_u64(j, KJ_META_TPM_ORDERLY, orderly));
	if (!have_last)
		rc = check_first(tpm, j, defined, tpm_nv);
	else if (!defined)
		rc = (kj_err("checkpoint: the TPM (%s) has no NV counter but this journal has checkpoints (last %" PRIu64 "): a journal of another TPM, or the counter was removed; refusing to continue",
			     kj_tpm_tcti(tpm), last.nv), -EPERM);
	else
		rc = check_last(tpm, j, &last, tpm_nv, orderly);
	if (rc < 0)
		return rc; /* nothing committed: the close rolls it back */
	KJ_TRY(kj_journal_commit(j));
	return rc;
}

struct epoch_ctx {
	uint32_t epoch;
};

static int epoch_cb(void *ctx, uint64_t index, uint32_t epoch, uint32_t pcr,
		    const char *name, const uint8_t digest[32], bool is_void)
{
	(void)index, (void)pcr, (void)name, (void)digest, (void)is_void;
	((struct epoch_ctx *)ctx)->epoch = epoch;
	return 0;
}

int kj_checkpoint_epoch(struct kj_journal *j, uint32_t *epoch,
			uint64_t *event_log_length)
{
	struct epoch_ctx e = { 0 };

	KJ_TRY(kj_journal_foreach_event(j, epoch_cb, &e));
	*epoch = e.epoch;
	*event_log_length = kj_journal_event_count(j);
	return 0;
}

int kj_checkpoint_store(struct kj_journal *j, const struct kj_ckpt *c)
{
	struct kj_journal_checkpoint jc;
	uint64_t allow = 0;
	int have;

	memset(&jc, 0, sizeof(jc));
	jc.tree_size = c->tree_size;
	memcpy(jc.root, c->root, 32);
	jc.nv_counter = c->nv_counter;
	jc.epoch = c->epoch;
	jc.event_log_length = c->event_log_length;
	jc.quote_attest = c->attest;
	jc.attest_len = c->attest_len;
	jc.quote_sig = c->sig;
	jc.sig_len = c->sig_len;
	jc.pcr_mask = c->pcr_mask;
	memcpy(jc.pcrs, c->pcrs, sizeof(jc.pcrs));
	KJ_TRY(kj_journal_add_checkpoint(j, &jc));
	KJ_TRY(have = nv_allow_get(j, &allow));
	if (!have || allow < c->nv_counter)
		KJ_TRY(meta_set_u64(j, KJ_META_NV_ALLOW, c->nv_counter));
	return kj_journal_commit(j);
}

/* ---- TPM side ---------------------------------------------------------------- */

int kj_checkpoint_quote(struct kj_tpm *tpm, struct kj_ckpt *c)
{
	uint64_t t0 = kj_now_ms();
	uint8_t qd[32];
	int rc;

	c->attest = c->sig = NULL;
	if (c->reuse_nv)
		KJ_TRY(kj_tpm_nv_read(tpm, &c->nv_counter));
	else
		KJ_TRY(kj_tpm_nv_increment(tpm, &c->nv_counter));
	/* EVIDENCE.md §4: the quote binds tree, root and this counter value */
	kj_checkpoint_qd(c->tree_size, c->root, c->nv_counter, qd);
	KJ_TRY(kj_tpm_quote(tpm, c->pcr_mask, qd, &c->attest, &c->attest_len,
			    &c->sig, &c->sig_len));
	/*
	 * The values stored are read after the quote: nothing extends the
	 * policy PCRs while a job runs (measurements happen before the first
	 * checkpoint), and the verifier replays the event log anyway.
	 */
	rc = kj_tpm_pcr_read(tpm, c->pcr_mask, c->pcrs);
	if (rc < 0) {
		kj_checkpoint_release(c);
		return rc;
	}
	c->quote_ms = kj_now_ms() - t0;
	return 0;
}

static int take(struct kj_tpm *tpm, struct kj_journal *j,
		const struct kj_mtree *t, const struct kj_checkpoint_policy *pol,
		bool reuse_nv, struct kj_ckpt *out)
{
	struct kj_ckpt c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.reuse_nv = reuse_nv;
	c.pcr_mask = policy_mask(pol);
	c.tree_size = kj_mtree_size(t);
	if (c.tree_size != kj_journal_record_count(j)) {
		kj_err("checkpoint: Merkle tree has %" PRIu64 " leaves, the journal %" PRIu64 " records",
		       c.tree_size, kj_journal_record_count(j));
		return -EINVAL;
	}
	KJ_TRY(kj_mtree_root(t, c.tree_size, c.root));
	KJ_TRY(kj_checkpoint_epoch(j, &c.epoch, &c.event_log_length));
	/* The counter bound is durable before the increment (see header);
	 * this commit also makes every leaf of t durable before its quote. */
	if (!reuse_nv)
		KJ_TRY(kj_checkpoint_announce(j));
	KJ_TRY(kj_journal_commit(j));
	KJ_TRY(kj_checkpoint_quote(tpm, &c));
	rc = kj_checkpoint_store(j, &c);
	if (!rc && out) {
		*out = c;
		out->attest = out->sig = NULL;
	}
	kj_checkpoint_release(&c);
	return rc;
}

int kj_checkpoint_take(struct kj_tpm *tpm, struct kj_journal *j,
		       const struct kj_mtree *t,
		       const struct kj_checkpoint_policy *pol,
		       struct kj_ckpt *out)
{
	return take(tpm, j, t, pol, false, out);
}

int kj_checkpoint_requote(struct kj_tpm *tpm, struct kj_journal *j,
			  const struct kj_mtree *t,
			  const struct kj_checkpoint_policy *pol)
{
	struct kj_ckpt c;

	KJ_TRY(take(tpm, j, t, pol, true, &c));
	kj_info("checkpoint: re-quoted NV counter %" PRIu64 " (its quote was taken but not stored before a stop)",
		c.nv_counter);
	return 0;
}
