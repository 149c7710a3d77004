// SPDX-License-Identifier: Apache-2.0
/*
 * The injector engine's side of the keeper channel (wire/ipc.h): entries
 * batched into packets and sent one at a time, the counters, and the
 * keeper's OFFER, REFUSE, VERDICT and STOP applied to the connection they
 * name.  Apart from the ring loop (engine.c) because it is the only way
 * the injector and the keeper meet.
 */
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/util.h"
#include "wire/ipc.h"
#include "wire/proto.h"
#include "engine_int.h"

/* ---- keeper channel: outgoing batches ---------------------------------- */

static struct obuf *obuf_get(struct kj_engine *e)
{
	struct obuf *o = e->out_spare;

	if (o)
		e->out_spare = o->next;
	else if (!(o = malloc(sizeof(*o)))) {
		kj_err("injector: out of memory for a keeper packet");
		e->fatal = -ENOMEM;
		return NULL;
	}
	o->next = NULL;
	o->b.p = o->data;
	o->b.len = 0;
	o->b.n = 0;
	return o;
}

void kj_eng_obuf_put(struct kj_engine *e, struct obuf *o)
{
	o->next = e->out_spare;
	e->out_spare = o;
}

void kj_eng_ipc_queue(struct kj_engine *e, unsigned type, const void *a,
		      size_t alen, const void *b, size_t blen)
{
	if (!e->out_cur && !(e->out_cur = obuf_get(e)))
		return;
	if (kj_ipc_put(&e->out_cur->b, type, a, alen, b, blen) == 0)
		return;
	/* Full: park it for sending, start another. */
	if (e->out_tail)
		e->out_tail->next = e->out_cur;
	else
		e->out_head = e->out_cur;
	e->out_tail = e->out_cur;
	e->out_cur = obuf_get(e);
	if (e->out_cur &&
	    kj_ipc_put(&e->out_cur->b, type, a, alen, b, blen) < 0) {
		kj_err("injector: keeper entry of %zu bytes does not fit",
		       alen + blen);
		e->fatal = -EMSGSIZE;
	}
}

void kj_eng_ipc_flush(struct kj_engine *e)
{
	struct io_uring_sqe *sqe;
	struct obuf *o;

	if (e->out_flight || e->keeper_gone)
		return;
	if (e->out_head) {
		o = e->out_head;
		e->out_head = o->next;
		if (!e->out_head)
			e->out_tail = NULL;
	} else if (e->out_cur && e->out_cur->b.n) {
		o = e->out_cur;
		e->out_cur = NULL;
	} else {
		return;
	}
	o->next = NULL;
	sqe = kj_eng_get_sqe(e);
	if (!sqe)
		return;
	io_uring_prep_send(sqe, e->cfg.ipc_fd, o->b.p, o->b.len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, kj_eng_ud(NO_SLOT, 0, OP_IPC_SEND));
	e->out_flight = o;
}

void kj_eng_ipc_recv_arm(struct kj_engine *e)
{
	struct io_uring_sqe *sqe = kj_eng_get_sqe(e);

	if (!sqe)
		return;
	io_uring_prep_recv(sqe, e->cfg.ipc_fd, e->ipc_in, KJ_IPC_MSG_MAX, 0);
	io_uring_sqe_set_data64(sqe, kj_eng_ud(NO_SLOT, 0, OP_IPC_RECV));
}

void kj_eng_counters_maybe_send(struct kj_engine *e, bool force)
{
	uint64_t now = kj_now_ms();

	/* A change of the open count at once: the others' accept spread. */
	if (!force && now - e->cnt_at_ms < COUNTERS_EVERY_MS &&
	    e->open == e->cnt_sent.open)
		return;
	e->cnt_at_ms = now;
	e->cnt.open = e->open;
	if (!memcmp(&e->cnt, &e->cnt_sent, sizeof(e->cnt)))
		return;
	e->cnt_sent = e->cnt;
	kj_eng_ipc_queue(e, KJ_IPC_COUNTERS, &e->cnt, sizeof(e->cnt), NULL, 0);
}

void kj_eng_outcome(struct kj_engine *e, struct conn *c,
		    enum kj_ipc_outcome_kind kind, uint16_t site_code,
		    const uint8_t *digest)
{
	struct kj_ipc_outcome o = {
		.tag = kj_eng_conn_slot(e, c),
		.kind = (uint8_t)kind,
		.site_code = site_code,
		.attempt = c->attempt,
	};

	if (!c->attempt_open)
		return;
	if (digest)
		memcpy(o.digest, digest, sizeof(o.digest));
	c->attempt_open = false;
	c->keeper_busy = true;
	kj_eng_ipc_queue(e, KJ_IPC_OUTCOME, &o, sizeof(o), NULL, 0);
}

/* ---- keeper answers ---------------------------------------------------- */

static struct conn *tag_conn(struct kj_engine *e, uint32_t tag)
{
	struct conn *c;

	if (tag >= e->cfg.max_conns)
		return NULL;
	c = &e->conns[tag];
	if (!c->keeper_busy)
		return NULL;
	c->keeper_busy = false;
	return c;
}

/* The connection an answer to ADMIT (or PROOF) names, or NULL. */
static struct conn *admit_conn(struct kj_engine *e, uint32_t tag)
{
	struct conn *c = tag_conn(e, tag);

	if (!c || c->attempt_open ||
	    (c->state != S_ADMIT && c->state != S_CLOSING))
		return NULL;
	return c;
}

static int on_offer(struct kj_engine *e, const uint8_t *body, size_t len)
{
	struct kj_ipc_offer m;
	struct kj_offer o = { 0 };
	struct conn *c;
	int n;

	memcpy(&m, body, sizeof(m));
	c = admit_conn(e, m.tag);
	if (!c)
		return -EPROTO;
	if (m.blob_off > e->cfg.arena_size ||
	    m.blob_len > e->cfg.arena_size - m.blob_off ||
	    len != sizeof(m) + m.serial_len ||
	    !kj_str8_valid(body + sizeof(m), m.serial_len))
		return -EPROTO;
	c->attempt = m.attempt;
	c->attempt_open = true;
	c->refusals = 0;
	if (c->state == S_CLOSING) {
		/* The site left while the keeper reserved: burned. */
		kj_eng_outcome(e, c, KJ_OUT_DISCONNECTED, 0, NULL);
		return 0;
	}
	o.attempt = m.attempt;
	memcpy(o.serial, body + sizeof(m), m.serial_len);
	memcpy(o.fw_version, e->cfg.fw_version, sizeof(o.fw_version));
	memcpy(o.fw_sha256, e->cfg.fw_sha256, 32);
	o.fw_size = e->cfg.fw_size;
	o.cred_size = m.blob_len;
	n = kj_offer_build(c->hbuf, sizeof(c->hbuf), &o);
	if (n < 0) {
		kj_eng_outcome(e, c, KJ_OUT_INTERNAL, 0, NULL);
		kj_eng_send_abort(e, c, KJ_ABORT_INTERNAL,
				  "cannot build OFFER");
		return 0;
	}
	c->blob_off = m.blob_off;
	c->blob_len = m.blob_len;
	c->fw_next = 0;
	c->cred_next = 0;
	c->state = S_STREAM;
	c->iov[0].iov_base = c->hbuf;
	c->iov[0].iov_len = (size_t)n;
	c->iov_cnt = 1;
	kj_eng_stream_fill(e, c, (size_t)n);
	kj_eng_send_arm(e, c, e->cfg.program_timeout_ms);
	return 0;
}

static int on_refuse(struct kj_engine *e, const uint8_t *body)
{
	struct kj_ipc_refuse m;
	struct conn *c;

	memcpy(&m, body, sizeof(m));
	c = tag_conn(e, m.tag);
	if (!c || (c->state != S_ADMIT && c->state != S_CLOSING) ||
	    !kj_abort_name(m.code))
		return -EPROTO;
	if (c->state == S_CLOSING) {
		kj_eng_conn_maybe_free(e, c);
		return 0;
	}
	if (c->after_refuse_quiet) {
		/* The site ABORTed the CHALLENGE itself. */
		c->after_refuse_quiet = false;
		kj_eng_enter_hello(e, c);
		return 0;
	}
	if (c->after_refuse_close) {
		c->after_refuse_close = false;
		kj_eng_send_frame(e, c, kj_abort_build(c->hbuf,
				  sizeof(c->hbuf), m.code,
				  "no usable PROOF"), true);
		return 0;
	}
	/*
	 * Every refusal is a journal record: one site must not append them
	 * without end.  PROTOCOL.md lets the connection go on after an
	 * ABORT, up to KJ_REFUSAL_BUDGET in a row; then it is closed.
	 */
	if (++c->refusals >= KJ_REFUSAL_BUDGET) {
		e->cnt.refusal_closed++;
		kj_log_ratelimited(&e->rl, KJ_LOG_WARN,
				   "injector %u: connection %u: %u refusals "
				   "in a row (last %s): closing it",
				   e->cfg.worker, m.tag, c->refusals,
				   kj_abort_name(m.code));
		kj_eng_send_frame(e, c, kj_abort_build(c->hbuf,
			sizeof(c->hbuf), m.code,
			"too many refusals on this connection"), true);
		return 0;
	}
	/* The keeper refuses a HELLO with PROTOCOL for one reason only. */
	kj_eng_send_abort(e, c, m.code, m.code == KJ_ABORT_PROTOCOL ?
			  "HELLO device_pubkey missing or not a P-256 point: "
			  "this job's credentials are keyed to the device" :
			  NULL);
	return 0;
}

/* Device authenticity (PROTOCOL.md): the keeper's nonce to the site. */
static int on_challenge(struct kj_engine *e, const uint8_t *body)
{
	struct kj_ipc_challenge m;
	struct conn *c;
	int n;

	memcpy(&m, body, sizeof(m));
	c = admit_conn(e, m.tag);
	if (!c)
		return -EPROTO;
	if (c->state == S_CLOSING) {
		/* The site left meanwhile: the keeper still gets its answer. */
		kj_eng_proof_missing(e, c, KJ_PROOF_DISCONNECTED);
		return 0;
	}
	n = kj_challenge_build(c->hbuf, sizeof(c->hbuf), m.nonce);
	if (n < 0)
		return n;
	c->state = S_CHALLENGE;
	c->iov[0].iov_base = c->hbuf;
	c->iov[0].iov_len = (size_t)n;
	c->iov_cnt = 1;
	kj_eng_send_arm(e, c, e->cfg.program_timeout_ms);
	return 0;
}

static int on_verdict(struct kj_engine *e, const uint8_t *body)
{
	struct kj_ipc_verdict m;
	struct conn *c;

	memcpy(&m, body, sizeof(m));
	c = tag_conn(e, m.tag);
	if (!c || c->attempt_open || m.attempt != c->attempt)
		return -EPROTO;
	if (c->state != S_VERDICT) {
		/* The connection failed meanwhile; nothing to tell it. */
		kj_eng_conn_maybe_free(e, c);
		return 0;
	}
	if (m.code == 0)
		kj_eng_send_frame(e, c,
				  kj_commit_build(c->hbuf, sizeof(c->hbuf),
				  m.attempt, m.leaf_index),
				  false);
	else if (kj_abort_name(m.code))
		kj_eng_send_abort(e, c, m.code, NULL);
	else
		kj_eng_enter_hello(e, c); /* KJ_VERDICT_SILENT: no frame */
	return 0;
}

int kj_eng_on_keeper_packet(struct kj_engine *e, size_t len)
{
	struct kj_ipc_iter it;
	const uint8_t *body;
	const char *why = NULL;
	unsigned type;
	size_t blen;
	int rc;

	kj_ipc_iter_init(&it, e->ipc_in, len);
	while ((rc = kj_ipc_next(&it, &type, &body, &blen, &why)) > 0) {
		switch (type) {
		case KJ_IPC_OFFER:
			rc = on_offer(e, body, blen);
			break;
		case KJ_IPC_REFUSE:
			rc = on_refuse(e, body);
			break;
		case KJ_IPC_VERDICT:
			rc = on_verdict(e, body);
			break;
		case KJ_IPC_CHALLENGE:
			rc = on_challenge(e, body);
			break;
		case KJ_IPC_SIGNED:
			rc = kj_eng_tls_on_signed(e, body);
			break;
		case KJ_IPC_LOAD:
			memcpy(&e->load, body, sizeof(e->load));
			for (unsigned i = 0; i < e->cfg.n_listen &&
			     !e->stopping; i++)
				kj_eng_accept_arm(e, i);
			rc = 0;
			break;
		case KJ_IPC_STOP: {
			struct kj_ipc_stop s;

			memcpy(&s, body, sizeof(s));
			kj_eng_stop_all(e, (uint16_t)s.reason);
			rc = 0;
			break;
		}
		default:
			rc = -EPROTO;
			break;
		}
		if (rc < 0) {
			kj_err("injector %u: keeper sent a %s that does not fit "
			       "the connection's state", e->cfg.worker,
			       kj_ipc_type_name(type));
			return rc;
		}
	}
	if (rc < 0)
		kj_err("injector %u: bad keeper packet: %s", e->cfg.worker,
		       why);
	return rc;
}
