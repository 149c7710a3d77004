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

static int last_ckpt_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	*(uint64_t *)ctx = c->nv_counter;
	return 0;
}

/* 1 and *nv if the journal has a checkpoint, 0 if none. */
static int last_nv(struct kj_journal *j, uint64_t *nv)
{
	uint64_t n = kj_journal_checkpoint_count(j);

	if (!n)
		return 0;
	KJ_TRY(kj_journal_foreach_checkpoint(j, n - 1, last_ckpt_cb, nv));
	return 1;
}

/* 1 and *v if KJ_META_NV_ALLOW is set, 0 if not. */
static int nv_allow_get(struct kj_journal *j, uint64_t *v)
{
	uint8_t *val;
	size_t len;
	int rc;

	rc = kj_journal_meta_get(j, KJ_META_NV_ALLOW, &val, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	rc = kj_parse_u64((const char *)val, 0, UINT64_MAX,
			  "journal meta " KJ_META_NV_ALLOW, v);
	free(val);
	return rc < 0 ? -EBADMSG : 1;
}

static int nv_allow_set(struct kj_journal *j, uint64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);

	return kj_journal_meta_set(j, KJ_META_NV_ALLOW, buf, (size_t)n);
}

int kj_checkpoint_announce(struct kj_journal *j)
{
	uint64_t allow = 0;

	KJ_TRY(nv_allow_get(j, &allow));
	if (allow == UINT64_MAX)
		return -EOVERFLOW;
	return nv_allow_set(j, allow + 1);
}

int kj_checkpoint_check(struct kj_tpm *tpm, struct kj_journal *j)
{
	uint64_t tpm_nv = 0, last = 0, allow = 0;
	int have_last, have_allow, rc;

	if (kj_journal_pending(j)) {
		kj_err("checkpoint: counter check with uncommitted journal writes");
		return -EINVAL;
	}
	rc = kj_tpm_nv_read(tpm, &tpm_nv);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	KJ_TRY(have_last = last_nv(j, &last));
	KJ_TRY(have_allow = nv_allow_get(j, &allow));
	if (have_last && tpm_nv < last) {
		kj_err("checkpoint: the journal's last checkpoint has NV counter %" PRIu64 " but the TPM (%s) is at %" PRIu64 ": this journal is ahead of the TPM (a journal of another TPM, or the counter was redefined); refusing to continue",
		       last, kj_tpm_tcti(tpm), tpm_nv);
		return -EPERM;
	}
	if (have_last && !have_allow)
		allow = last;
	/* A journal without a checkpoint has nothing to protect yet; a fresh
	 * counter may also start above 1 (TPM 2.0 Part 1, NV counters). */
	if (have_last && tpm_nv > allow) {
		kj_err("checkpoint: the TPM (%s) NV counter is %" PRIu64 ", this journal allows at most %" PRIu64 ": %" PRIu64 " checkpoint(s) taken that this journal does not hold (an old copy of the journal restored, or a second journal on the same TPM); refusing to continue",
		       kj_tpm_tcti(tpm), tpm_nv, allow, tpm_nv - allow);
		return -EPERM;
	}
	if (have_last && tpm_nv > last)
		kj_warn("checkpoint: TPM NV counter %" PRIu64 " is ahead of the last stored checkpoint (%" PRIu64 "): a checkpoint was quoted but not stored (crash); going on",
			tpm_nv, last);
	KJ_TRY(nv_allow_set(j, tpm_nv));
	return kj_journal_commit(j);
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
		KJ_TRY(nv_allow_set(j, c->nv_counter));
	return kj_journal_commit(j);
}

/* ---- TPM side ---------------------------------------------------------------- */

int kj_checkpoint_quote(struct kj_tpm *tpm, struct kj_ckpt *c)
{
	uint64_t t0 = kj_now_ms();
	uint8_t qd[32];
	int rc;

	c->attest = c->sig = NULL;
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

int kj_checkpoint_take(struct kj_tpm *tpm, struct kj_journal *j,
		       const struct kj_mtree *t,
		       const struct kj_checkpoint_policy *pol,
		       struct kj_ckpt *out)
{
	struct kj_ckpt c;
	int rc;

	memset(&c, 0, sizeof(c));
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
