// SPDX-License-Identifier: Apache-2.0
/*
 * The checks of EVIDENCE.md §6 over a parsed bundle (verify.h).  Each
 * check keeps its first failing item; all checks run, so the customer sees
 * every problem class at once.  Checks 1-3 (quotes, PCRs, order and clock)
 * are here; 4-8 (the log and the job) are in verify_log.c; both record
 * their outcomes through verify_report.c.
 */
#include <inttypes.h>
#include <string.h>

#include "verify.h"
#include "attest/attest.h"
#include "attest/eventlog.h"
#include "base/log.h"
#include "base/util.h"
#include "verify_int.h"

/* ---- 1: the AK ---------------------------------------------------------- */

static int check_ak(const struct kj_evidence *ev,
		    const struct kj_verify_opts *o, struct kj_ak *ak,
		    struct kj_verify_report *rep)
{
	enum kj_ak_check failed = KJ_AKC_OK;
	EVP_PKEY *pem = NULL;
	BIO *bio;

	if (kj_ak_parse(ev->ak_public, ev->ak_public_len, ak, &failed) < 0 ||
	    kj_ak_check(ak, ev->ak_name, ev->ak_name_len, o->ak, &failed) < 0) {
		kj_vfail(rep, KJ_VC_QUOTES, "appliance.ak_public: AK %s",
			 kj_ak_check_name(failed));
		return -EBADMSG;
	}
	/* The PEM copy in the bundle must be the same key, not another. */
	bio = BIO_new_mem_buf(ev->ak_public_pem, -1);
	if (bio)
		pem = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!pem || EVP_PKEY_eq(pem, ak->pkey) != 1) {
		EVP_PKEY_free(pem);
		kj_err("appliance.ak_public_pem: not the key of ak_public");
		kj_vfail(rep, KJ_VC_QUOTES,
			 "appliance.ak_public_pem: not the AK of ak_public");
		return -EBADMSG;
	}
	EVP_PKEY_free(pem);
	return 0;
}

/* ---- 1, 2: every quote ---------------------------------------------------- */

static bool is_pcr_check(enum kj_quote_check f)
{
	return f == KJ_QC_PCR_SELECT || f == KJ_QC_PCR_DIGEST ||
	       f == KJ_QC_EVENT_LOG;
}

static void check_one_quote(const struct kj_evidence *ev, size_t i,
			    const struct kj_ak *ak, uint32_t mask,
			    struct kj_verify_report *rep)
{
	const struct kj_ev_checkpoint *e = &ev->checkpoints[i];
	uint8_t replay[KJ_TPM_PCR_COUNT][32];
	enum kj_quote_check failed = KJ_QC_OK;
	struct kj_quoted_checkpoint c = {
		.tree_size = e->tree_size, .nv_counter = e->nv_counter,
		.epoch = e->epoch, .event_log_length = e->event_log_length,
		.attest = e->attest, .attest_len = e->attest_len,
		.sig = e->sig, .sig_len = e->sig_len,
	};

	memcpy(c.root, e->root, 32);
	memset(replay, 0, sizeof(replay));
	if (kj_quoted_checkpoint_verify(ak, &c, ev->events, ev->n_events, mask,
				 replay, NULL, &failed) < 0) {
		kj_vfail_ckpt(rep, is_pcr_check(failed) ? KJ_VC_PCRS :
							   KJ_VC_QUOTES, i,
			      "checkpoint %zu: %s", i,
			      kj_quote_check_name(failed));
		return; /* the values shown are not checked again */
	}
	/* The values the bundle shows must be the replayed ones. */
	if (e->pcr_mask != mask) {
		kj_err("checkpoints[%zu].pcrs: PCRs 0x%06x, the policy is 0x%06x",
		       i, e->pcr_mask, mask);
		kj_vfail_ckpt(rep, KJ_VC_PCRS, i,
			      "checkpoint %zu: pcrs lists other PCRs than the policy's",
			      i);
		return;
	}
	for (unsigned p = 0; p < KJ_TPM_PCR_COUNT; p++) {
		if (!(mask & KJ_PCR_BIT(p)) || !memcmp(replay[p], e->pcrs[p], 32))
			continue;
		kj_err("checkpoints[%zu].pcrs.%u: does not equal the replay of the event log (epoch %u, %" PRIu64 " entries)",
		       i, p, e->epoch, e->event_log_length);
		kj_vfail_ckpt(rep, KJ_VC_PCRS, i,
			      "checkpoint %zu: PCR %u does not replay from the event log",
			      i, p);
		return;
	}
}

/* ---- 3: order and clock ------------------------------------------------------ */

static bool fw_allowed(const struct kj_verify_opts *o, uint64_t fw)
{
	for (size_t i = 0; i < o->n_fw_allow; i++)
		if (o->fw_allow[i] == fw)
			return true;
	return false;
}

/*
 * Beyond §6.3, what the same order implies for the event log: it only
 * grows, and an epoch (a PCR lifetime) can only start with a TPM reset or
 * restart, i.e. a new clock run (a restart may also keep the PCRs).
 */
static int check_epoch(const struct kj_evidence *ev, size_t i, bool new_run,
		       struct kj_verify_report *rep)
{
	const struct kj_ev_checkpoint *e = &ev->checkpoints[i], *p;

	if (!i)
		return 0;
	p = &ev->checkpoints[i - 1];
	if (e->event_log_length < p->event_log_length) {
		kj_vfail(rep, KJ_VC_CLOCK,
			 "checkpoint %zu: event_log_length %" PRIu64 " after %" PRIu64 ": the event log shrank",
			 i, e->event_log_length, p->event_log_length);
		return -EBADMSG;
	}
	if (e->epoch < p->epoch || (e->epoch != p->epoch && !new_run)) {
		kj_vfail(rep, KJ_VC_CLOCK,
			 "checkpoint %zu: epoch %u after epoch %u without a TPM reset or restart",
			 i, e->epoch, p->epoch);
		return -EBADMSG;
	}
	return 0;
}

/* One checkpoint's §6.3 flags: shown once each kind, details for --json. */
static void clock_note(const struct kj_evidence *ev, size_t i,
		       const struct kj_quote_info *qi,
		       const struct kj_clock_run *run, unsigned flags,
		       uint64_t *jumps, uint64_t *unseen, uint64_t *unsafe,
		       struct kj_verify_report *rep)
{
	if (flags & KJ_ORDER_NEW_RUN) {
		char fw[24];

		rep->clock_runs++;
		kj_info("checkpoint %zu: clock run %" PRIu64 ": resetCount %u, restartCount %u, TPM firmware 0x%016" PRIx64,
			i, rep->clock_runs, qi->reset_count,
			qi->restart_count, qi->firmware_version);
		snprintf(fw, sizeof(fw), "0x%016" PRIx64, qi->firmware_version);
		kj_vdetail_push(rep, KJ_VC_CLOCK, "clock_runs",
			json_pack("{s:I,s:I,s:I,s:s}", "checkpoint",
				  (json_int_t)i, "reset_count",
				  (json_int_t)qi->reset_count, "restart_count",
				  (json_int_t)qi->restart_count, "firmware", fw));
	}
	if (flags & KJ_ORDER_JUMP) {
		if (!(*jumps)++)
			kj_warn("checkpoint %zu: nv_counter %" PRIu64 " after %" PRIu64 " (a TPM power loss): up to %" PRIu64 " checkpoints not seen",
				i, ev->checkpoints[i].nv_counter,
				ev->checkpoints[i].nv_counter - run->jump,
				run->jump - 1);
		*unseen += run->jump - 1;
		kj_vdetail_push(rep, KJ_VC_CLOCK, "counter_jumps",
			json_pack("{s:I,s:I,s:I,s:I,s:I}", "checkpoint",
				  (json_int_t)i, "from",
				  (json_int_t)(ev->checkpoints[i].nv_counter -
					       run->jump),
				  "to", (json_int_t)ev->checkpoints[i].nv_counter,
				  "jump", (json_int_t)run->jump,
				  "not_seen_max", (json_int_t)(run->jump - 1)));
	}
	if (flags & KJ_ORDER_UNSAFE) {
		if (!(*unsafe)++)
			kj_warn("checkpoint %zu: clockInfo.safe = 0: the TPM was stopped without an orderly shutdown, its clock may have gone back",
				i);
		kj_vdetail_push(rep, KJ_VC_CLOCK, "unsafe_quotes",
				json_integer((json_int_t)i));
	}
}

static void check_clock(const struct kj_evidence *ev,
			const struct kj_verify_opts *o,
			struct kj_verify_report *rep)
{
	struct kj_clock_run run = { .orderly = ev->tpm_orderly_count };
	uint64_t unsafe = 0, jumps = 0, unseen = 0;
	char warn[200] = "";
	size_t i;

	for (i = 0; i < ev->n_checkpoints; i++) {
		const struct kj_ev_checkpoint *e = &ev->checkpoints[i];
		enum kj_quote_check failed;
		struct kj_quote_info qi;
		unsigned flags;

		if (kj_quote_parse(e->attest, e->attest_len, &qi, &failed) < 0) {
			kj_vfail(rep, KJ_VC_CLOCK,
				 "checkpoint %zu: quote does not parse", i);
			return;
		}
		if (kj_quote_order(&run, e->nv_counter, &qi, &flags) < 0) {
			kj_vfail(rep, KJ_VC_CLOCK,
				 "checkpoint %zu: nv_counter %" PRIu64 " or the TPM clock breaks the order of §4 (tpm_orderly_count %" PRIu64 ")",
				 i, e->nv_counter, ev->tpm_orderly_count);
			return;
		}
		if (check_epoch(ev, i, flags & KJ_ORDER_NEW_RUN, rep) < 0)
			return;
		clock_note(ev, i, &qi, &run, flags, &jumps, &unseen, &unsafe,
			   rep);
		rep->tpm_firmware = qi.firmware_version;
		if (o->n_fw_allow && !fw_allowed(o, qi.firmware_version)) {
			kj_err("checkpoint %zu: TPM firmwareVersion 0x%016" PRIx64 " is not in --tpm-firmware-allow",
			       i, qi.firmware_version);
			kj_vfail(rep, KJ_VC_CLOCK,
				 "checkpoint %zu: TPM firmware 0x%016" PRIx64 " not allowed",
				 i, qi.firmware_version);
			return;
		}
	}
	if (jumps)
		snprintf(warn, sizeof(warn),
			 "; WARNING: %" PRIu64 " nv_counter jump(s): up to %" PRIu64 " checkpoints not seen",
			 jumps, unseen);
	if (unsafe)
		snprintf(warn + strlen(warn), sizeof(warn) - strlen(warn),
			 "; WARNING: %" PRIu64 " quote(s) with clockInfo.safe = 0",
			 unsafe);
	if ((jumps || unsafe) && o->strict_clock) {
		kj_vfail(rep, KJ_VC_CLOCK, "--strict-clock%s", warn);
		return;
	}
	if (jumps || unsafe)
		rep->check[KJ_VC_CLOCK].status = KJ_VS_WARN;
	kj_vpass(rep, KJ_VC_CLOCK,
		 "nv_counter +1 per checkpoint within a clock run over %zu checkpoints; %" PRIu64 " clock run(s); TPM firmware 0x%016" PRIx64 "%s",
		 ev->n_checkpoints, rep->clock_runs, rep->tpm_firmware, warn);
}

int kj_verify(const struct kj_evidence *ev, const struct kj_verify_opts *o,
	      struct kj_verify_report *rep)
{
	uint32_t mask = o->pcr_mask ? o->pcr_mask : KJ_PCR_DEFAULT_MASK;
	struct kj_ak ak;
	char name[2 * KJ_TPM_NAME_LEN + 1];
	int rc;

	memset(rep, 0, sizeof(*rep));
	memset(&ak, 0, sizeof(ak));
	rep->n_checkpoints = ev->n_checkpoints;
	if (check_ak(ev, o, &ak, rep) == 0) {
		/* One message per fault: once a quote failed, the rest are
		 * checked and listed in the details, but not told again. */
		for (size_t i = 0; i < ev->n_checkpoints; i++) {
			kj_log_mute(rep->check[KJ_VC_QUOTES].status ==
					    KJ_VS_FAIL ||
				    rep->check[KJ_VC_PCRS].status ==
					    KJ_VS_FAIL);
			check_one_quote(ev, i, &ak, mask, rep);
		}
		kj_log_mute(false);
	} else {
		kj_vfail(rep, KJ_VC_PCRS, "not checked: the AK is not valid");
	}
	kj_hex_encode(ev->ak_name, KJ_TPM_NAME_LEN, name);
	kj_vpass(rep, KJ_VC_QUOTES,
		 "%zu quotes: strict TPMS_ATTEST, ECDSA-SHA256 under the AK (name %s), extraData = qualifying data",
		 ev->n_checkpoints, name);
	kj_vpass(rep, KJ_VC_PCRS,
		 "pcrSelect = policy (SHA-256: 0x%06x); the event log (%zu entries) replays to every quoted pcrDigest",
		 mask, ev->n_events);
	check_clock(ev, o, rep);
	rc = kj_verify_log(ev, o, rep);
	if (rc >= 0 || rc == -EBADMSG)
		kj_verify_ceremony(ev, o, rep);
	kj_ak_free(&ak);
	if (rc < 0 && rc != -EBADMSG)
		return rc;
	for (int c = 0; c < KJ_VC_COUNT_; c++)
		if (rep->check[c].status == KJ_VS_FAIL)
			return -EBADMSG;
	return 0;
}
