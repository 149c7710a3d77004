// SPDX-License-Identifier: Apache-2.0
/*
 * The keeper's side of the privilege split (keeper.c top comment): the
 * dispatch table of what an injector may ask and when, its handlers, and
 * the admission policy they apply.  Apart so that everything an untrusted
 * injector can make the keeper do is in one file.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "base/kinject.h"
#include "base/log.h"
#include "inputs/sites.h"
#include "inputs/workorder.h"
#include "journal/journal.h"
#include "journal/record.h"
#include "wire/devcred.h"
#include "wire/ipc.h"
#include "wire/proto.h"
#include "wire/readback.h"
#include "keeper_int.h"

/* ---- policy ------------------------------------------------------------- */

_Static_assert(offsetof(struct kcred, index) == 0,
	       "kj_index_find reads the index first");

const struct kcred *kj_kp_cred_find(const struct keeper *k, uint64_t index)
{
	return kj_index_find(k->creds, k->n_creds, sizeof(k->creds[0]),
			     index);
}

void kj_kp_update_issuing(struct keeper *k)
{
	if (!k->issuing)
		return;
	if (k->job->stop && *k->job->stop) {
		k->issuing = false;
		k->refuse_reason = KJ_ABORT_STOPPED;
		k->end = KJ_KEEPER_STOPPED;
	} else if (k->failed_total > k->max_failed) {
		k->issuing = false;
		k->refuse_reason = KJ_ABORT_QUOTA;
		k->end = KJ_KEEPER_MAX_FAILED;
		kj_warn("job: %llu failed attempts exceed max_failed %llu: "
			"no more devices are started",
			(unsigned long long)k->failed_total,
			(unsigned long long)k->max_failed);
	} else if (k->ok_total >= k->quantity) {
		k->issuing = false;
		k->refuse_reason = KJ_ABORT_QUOTA;
		k->end = KJ_KEEPER_COMPLETED;
	}
}

static enum kj_result refusal_result(unsigned code)
{
	switch (code) {
	case KJ_ABORT_LOCKED_OUT: return KJ_RES_LOCKED_OUT;
	case KJ_ABORT_QUOTA: return KJ_RES_QUOTA;
	case KJ_ABORT_DUPLICATE: return KJ_RES_DUPLICATE;
	case KJ_ABORT_STOPPED: return KJ_RES_STOPPED;
	case KJ_ABORT_UNAUTHORIZED: return KJ_RES_UNAUTHORIZED;
	case KJ_ABORT_COUNTERFEIT: return KJ_RES_COUNTERFEIT;
	case KJ_ABORT_PROTOCOL: return KJ_RES_PROTOCOL;
	default: return KJ_RES_INTERNAL;
	}
}

/*
 * Inject and issue modes are keyed by the HELLO's device_pubkey
 * (PROTOCOL.md): without one, or with a point not on P-256, the device is
 * refused with ABORT PROTOCOL.
 */
static int key_check(struct keeper *k, const struct kslot *s)
{
	enum kj_cred_mode mode = k->job->wo->cred_mode;
	EVP_PKEY *pk;

	if (mode == KJ_CRED_PLAIN)
		return 0;
	if (!s->pubkey_len) {
		kj_log_ratelimited(&k->rl, KJ_LOG_WARN, "site %s socket %u: "
				   "HELLO without device_pubkey in a job of "
				   "credential_mode %s: ABORT PROTOCOL",
				   s->site, s->socket,
				   kj_cred_mode_name(mode));
		return KJ_ABORT_PROTOCOL;
	}
	pk = kj_p256_from_sec1(s->pubkey);
	if (!pk) {
		kj_log_ratelimited(&k->rl, KJ_LOG_WARN, "site %s socket %u: "
				   "HELLO device_pubkey is not a P-256 point: "
				   "ABORT PROTOCOL", s->site, s->socket);
		return KJ_ABORT_PROTOCOL;
	}
	EVP_PKEY_free(pk);
	return 0;
}

/* PROTOCOL.md: which ABORT (0: none) a valid HELLO gets before OFFER. */
static int admit_check(struct keeper *k, const struct kslot *s)
{
	const struct kj_job *job = k->job;
	int rc;

	if (job->sites && !kj_sites_allowed(job->sites, s->site,
					    strlen(s->site), s->socket))
		return KJ_ABORT_UNAUTHORIZED;
	if (!kj_order_hwrev_allowed(job->wo, s->hwrev, strlen(s->hwrev)))
		return KJ_ABORT_LOCKED_OUT;
	if (kj_kp_uid_in_flight(k, s->uid, s->uid_len))
		return KJ_ABORT_DUPLICATE;
	rc = kj_journal_uid_done(job->journal, s->uid, s->uid_len);
	if (rc < 0)
		return rc;
	if (rc > 0)
		return KJ_ABORT_DUPLICATE;
	kj_kp_update_issuing(k);
	if (!k->issuing)
		return k->refuse_reason;
	if (k->ok_total + k->in_flight >= k->quantity)
		return KJ_ABORT_QUOTA;
	return 0;
}

static int refuse(struct keeper *k, struct inj *in, uint32_t tag,
		  struct kslot *s, unsigned code)
{
	struct reply r = { .inj = (unsigned)(in - k->inj), .gen = in->gen,
			   .type = KJ_IPC_REFUSE, .tag = tag };
	struct kj_record rec;

	kj_kp_device_record(s, &rec, refusal_result(code));
	KJ_TRY(kj_kp_append(k, &rec));
	s->state = K_REFUSING;
	r.u.refuse.tag = tag;
	r.u.refuse.code = (uint16_t)code;
	return kj_kp_rq_push(&k->pend, &r);
}

static int reserve(struct keeper *k, struct inj *in, uint32_t tag,
		   struct kslot *s)
{
	struct reply r = { .inj = (unsigned)(in - k->inj), .gen = in->gen,
			   .type = KJ_IPC_OFFER, .tag = tag };
	const struct kcred *c;
	struct kj_record hello;
	size_t slen;
	int rc;

	kj_kp_device_record(s, &hello, KJ_RES_NONE);
	rc = kj_journal_reserve(k->job->journal, &hello, &s->res);
	if (rc == -ENOBUFS) {
		k->issuing = false;
		k->refuse_reason = KJ_ABORT_QUOTA;
		k->end = KJ_KEEPER_EXHAUSTED;
		return refuse(k, in, tag, s, KJ_ABORT_INTERNAL);
	}
	if (rc < 0)
		return rc;
	c = kj_kp_cred_find(k, s->res.cred_index);
	if (!c) {
		kj_err("keeper: credential index %llu reserved but not in the "
		       "batch table", (unsigned long long)s->res.cred_index);
		return -EIO;
	}
	s->state = K_RESERVED;
	s->offer_sent = false;
	kj_kp_uid_add(k, s);
	k->in_flight++;
	rc = kj_kp_cred_blob(k, s, c);
	if (rc < 0) {
		/* Logged; this device's credential is burned (PROTOCOL.md).
		 * An HSM that is gone stops the job: no more are burned. */
		if (rc == -ENODEV)
			kj_kp_hsm_lost(k);
		r.type = KJ_IPC_REFUSE;
		r.u.refuse.tag = tag;
		r.u.refuse.code = KJ_ABORT_INTERNAL;
		KJ_TRY(kj_kp_close_attempt(k, s, KJ_RES_INTERNAL, 0, NULL));
		return kj_kp_rq_push(&k->pend, &r);
	}
	if (k->job->hooks.offered)
		k->job->hooks.offered(k->job->hooks.ctx, &hello);
	slen = strlen(s->res.serial);
	r.u.offer.o.tag = tag;
	r.u.offer.o.blob_len = s->blob_len;
	r.u.offer.o.attempt = s->res.attempt;
	r.u.offer.o.blob_off = s->blob_off;
	r.u.offer.o.serial_len = (uint8_t)slen;
	memcpy(r.u.offer.serial, s->res.serial, slen);
	return kj_kp_rq_push(&k->pend, &r);
}

/* ---- requests (the dispatch table) ---------------------------------------- */

static int on_ready(struct keeper *k, struct inj *in, const uint8_t *b,
		    size_t len)
{
	struct kj_ipc_ready m;

	(void)k;
	(void)len;
	memcpy(&m, b, sizeof(m));
	if (m.worker != in->worker || m.max_conns != in->max_conns ||
	    (pid_t)m.pid != in->pid)
		return -EPROTO;
	in->state = I_RUN;
	kj_debug("keeper: injector %u (pid %d) ready", in->worker, in->pid);
	return 0;
}

static struct kslot *slot_of(struct inj *in, uint32_t tag)
{
	return tag < in->max_conns ? &in->slots[tag] : NULL;
}

static int on_admit(struct keeper *k, struct inj *in, const uint8_t *b,
		    size_t len)
{
	struct kj_ipc_admit m;
	struct kslot *s;
	const uint8_t *v = b + sizeof(m);
	int code;

	(void)len;
	memcpy(&m, b, sizeof(m));
	s = slot_of(in, m.tag);
	if (!s || s->state != K_FREE)
		return -EPROTO;
	/* The injector is not trusted: the HELLO rules again (str8). */
	if (!kj_str8_valid(v, m.site_len) ||
	    !kj_str8_valid(v + m.site_len + m.uid_len, m.hwrev_len))
		return -EPROTO;
	memcpy(s->site, v, m.site_len);
	s->site[m.site_len] = 0;
	v += m.site_len;
	memcpy(s->uid, v, m.uid_len);
	s->uid_len = m.uid_len;
	v += m.uid_len;
	memcpy(s->hwrev, v, m.hwrev_len);
	s->hwrev[m.hwrev_len] = 0;
	v += m.hwrev_len;
	memcpy(s->pubkey, v, m.pubkey_len);
	s->pubkey_len = m.pubkey_len;
	v += m.pubkey_len;
	s->socket = m.socket;
	k->st.hellos++;
	/* TLS: site_id = the client certificate's CN (keeper_tls.c) */
	code = kj_kp_site_cn_check(k, s, v, m.cn_len);
	if (code < 0)
		return -EPROTO; /* a CN without a tls: listener, not str8 */
	if (!code)
		code = key_check(k, s);
	if (!code)
		code = admit_check(k, s);
	if (code < 0)
		return code == -EPROTO ? -EIO : code;
	if (code > 0)
		return refuse(k, in, m.tag, s, (unsigned)code);
	if (k->dev_store)
		return kj_kp_challenge(k, in, m.tag, s);
	return reserve(k, in, m.tag, s);
}

static const char *const proof_missing[] = {
	[KJ_PROOF_MALFORMED] = "PROOF malformed",
	[KJ_PROOF_SITE_ABORT] = "the site answered the CHALLENGE with ABORT",
	[KJ_PROOF_TIMEOUT] = "no PROOF within the programming limit",
	[KJ_PROOF_DISCONNECTED] = "the site left before its PROOF",
};

/* The answer to a CHALLENGE (keeper_auth.c checks it). */
static int on_proof(struct keeper *k, struct inj *in, const uint8_t *b,
		    size_t len)
{
	struct kj_ipc_proof m;
	const char *why = NULL;
	struct kslot *s;
	int code;

	(void)len;
	memcpy(&m, b, sizeof(m));
	s = slot_of(in, m.tag);
	if (!s || s->state != K_CHALLENGED)
		return -EPROTO;
	if (m.status != KJ_PROOF_GIVEN)
		why = proof_missing[m.status];
	else if (kj_kp_proof_check(k, s, b + sizeof(m), m.cert_len, m.sig,
				   &why) == 0)
		why = NULL;
	if (why) {
		kj_log_ratelimited(&k->rl, KJ_LOG_WARN, "site %s socket %u: "
				   "device refused as counterfeit: %s",
				   s->site, s->socket, why);
		return refuse(k, in, m.tag, s, KJ_ABORT_COUNTERFEIT);
	}
	/* Proven; the state may have moved meanwhile (quota, stop, uid). */
	code = admit_check(k, s);
	if (code < 0)
		return code == -EPROTO ? -EIO : code;
	if (code > 0)
		return refuse(k, in, m.tag, s, (unsigned)code);
	return reserve(k, in, m.tag, s);
}

static enum kj_result outcome_result(unsigned kind)
{
	switch (kind) {
	case KJ_OUT_TIMEOUT: return KJ_RES_TIMEOUT;
	case KJ_OUT_DISCONNECTED: return KJ_RES_DISCONNECTED;
	case KJ_OUT_PROTOCOL: return KJ_RES_PROTOCOL;
	case KJ_OUT_SITE_ABORT: return KJ_RES_SITE_ABORT;
	default: return KJ_RES_INTERNAL;
	}
}

static int on_outcome(struct keeper *k, struct inj *in, const uint8_t *b,
		      size_t len)
{
	struct reply r = { .inj = (unsigned)(in - k->inj), .gen = in->gen,
			   .type = KJ_IPC_VERDICT };
	struct kj_ipc_outcome m;
	uint8_t want[KJ_DIGEST_LEN];
	struct kslot *s;
	bool ok;

	(void)len;
	memcpy(&m, b, sizeof(m));
	s = slot_of(in, m.tag);
	if (!s || s->state != K_RESERVED || !s->offer_sent ||
	    m.attempt != s->res.attempt || m.kind < KJ_OUT_READBACK ||
	    m.kind > KJ_OUT_MAX_)
		return -EPROTO;
	r.tag = m.tag;
	r.u.verdict.tag = m.tag;
	r.u.verdict.attempt = m.attempt;
	if (m.kind == KJ_OUT_READBACK) {
		kj_readback_device(k->fw_rb, s->uid, s->uid_len,
				   k->job->arena->base + s->blob_off,
				   s->blob_len, want);
		ok = kj_readback_equal(want, m.digest);
		explicit_bzero(want, sizeof(want));
		KJ_TRY(kj_kp_close_attempt(k, s,
					   ok ? KJ_RES_OK : KJ_RES_READBACK, 0,
					   m.digest));
		r.u.verdict.code = ok ? 0 : KJ_ABORT_READBACK;
		r.u.verdict.leaf_index = kj_journal_record_count(
						 k->job->journal) - 1;
		r.cover = r.u.verdict.leaf_index + 1;
	} else {
		if (m.kind == KJ_OUT_SITE_ABORT &&
		    (m.site_code < KJ_ABORT_MIN || m.site_code > KJ_ABORT_MAX))
			return -EPROTO;
		KJ_TRY(kj_kp_close_attempt(k, s, outcome_result(m.kind),
					   m.kind == KJ_OUT_SITE_ABORT ?
					   m.site_code : 0, NULL));
		r.u.verdict.code = KJ_VERDICT_SILENT;
	}
	return kj_kp_rq_push(&k->pend, &r);
}

static int on_counters(struct keeper *k, struct inj *in, const uint8_t *b,
		       size_t len)
{
	(void)len;
	memcpy(&in->cnt, b, sizeof(in->cnt));
	if (in->cnt.accepted > k->st.conns_accepted_max)
		k->st.conns_accepted_max = in->cnt.accepted;
	return 0;
}

typedef int (*handler_fn)(struct keeper *, struct inj *, const uint8_t *,
			  size_t);

/* What an injector may ask, and when (OpenSSH monitor.c style). */
static const struct {
	unsigned type;
	unsigned states;
	handler_fn fn;
} dispatch[] = {
	{ KJ_IPC_READY, IS(I_START), on_ready },
	{ KJ_IPC_ADMIT, IS(I_RUN) | IS(I_STOPPING), on_admit },
	{ KJ_IPC_PROOF, IS(I_RUN) | IS(I_STOPPING), on_proof },
	{ KJ_IPC_OUTCOME, IS(I_RUN) | IS(I_STOPPING), on_outcome },
	{ KJ_IPC_COUNTERS, IS(I_RUN) | IS(I_STOPPING), on_counters },
	{ KJ_IPC_SIGN, IS(I_RUN) | IS(I_STOPPING), kj_kp_on_sign },
};

int kj_kp_on_packet(struct keeper *k, struct inj *in, const uint8_t *p,
		    size_t len)
{
	struct kj_ipc_iter it;
	const uint8_t *body;
	const char *why = "request not permitted now";
	unsigned type = 0;
	size_t blen;
	int rc;

	kj_ipc_iter_init(&it, p, len);
	while ((rc = kj_ipc_next(&it, &type, &body, &blen, &why)) > 0) {
		size_t i;

		for (i = 0; i < KJ_ARRAY_SIZE(dispatch); i++)
			if (dispatch[i].type == type)
				break;
		if (i == KJ_ARRAY_SIZE(dispatch) ||
		    !(dispatch[i].states & IS(in->state))) {
			why = "request not permitted in this state";
			rc = -EPROTO;
			break;
		}
		rc = dispatch[i].fn(k, in, body, blen);
		if (rc < 0) {
			why = "request does not fit the connection's state";
			break;
		}
	}
	if (rc == -EPROTO || rc == -EBADMSG) {
		kj_err("keeper: injector %u (pid %d): %s %s: killing it",
		       in->worker, in->pid, kj_ipc_type_name(type), why);
		return -EPROTO;
	}
	return rc < 0 ? rc : 0;
}
