// SPDX-License-Identifier: Apache-2.0
/*
 * One device's sequence as the site drives it (PROTOCOL.md "Sequence";
 * the states are in engine_int.h): waiting for HELLO or READBACK, the
 * frames parsed from the provided buffers, and the receive's end by EOF or
 * at its deadline.  Apart from the ring loop (engine.c) because this
 * is where untrusted site bytes are judged.
 */
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/log.h"
#include "wire/ipc.h"
#include "wire/proto.h"
#include "engine_int.h"
#include "tls.h"

static void on_bytes(struct kj_engine *e, struct conn *c, const uint8_t *p,
		     size_t n);

/* Receive: what was stashed first, then from the socket. */
static void receive(struct kj_engine *e, struct conn *c)
{
	size_t n = c->stash_len;

	c->stash_len = 0;
	if (n)
		on_bytes(e, c, c->stash, n);
	else
		kj_eng_recv_arm(e, c);
}

void kj_eng_enter_hello(struct kj_engine *e, struct conn *c)
{
	if (e->stop_swept) {
		kj_eng_send_stop_abort(e, c);
		return;
	}
	/* After a TLS handshake the HELLO limit runs on from the accept. */
	if (c->state != S_TLS)
		c->deadline_ns = kj_eng_mono_ns() +
			(uint64_t)e->cfg.hello_timeout_ms * 1000000ull;
	c->state = S_HELLO;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_HELLO) |
						   KJ_MSG_BIT(KJ_MSG_ABORT));
	receive(e, c);
}

/* Wait for the site's next frame (or ABORT) within the programming limit. */
static void enter_site_turn(struct kj_engine *e, struct conn *c,
			    enum state st, unsigned type)
{
	c->state = st;
	c->deadline_ns = kj_eng_mono_ns() +
			 (uint64_t)e->cfg.program_timeout_ms * 1000000ull;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(type) |
						   KJ_MSG_BIT(KJ_MSG_ABORT));
	receive(e, c);
}

void kj_eng_enter_readback(struct kj_engine *e, struct conn *c)
{
	enter_site_turn(e, c, S_READBACK, KJ_MSG_READBACK);
}

void kj_eng_enter_proof(struct kj_engine *e, struct conn *c)
{
	enter_site_turn(e, c, S_PROOF, KJ_MSG_PROOF);
}

/*
 * No usable PROOF after a CHALLENGE: the keeper records `counterfeit' and
 * answers REFUSE COUNTERFEIT (engine_keeper.c).  Back in S_ADMIT unless
 * the connection is gone, and closed after that ABORT unless the site
 * itself aborted (then the connection stays usable, PROTOCOL.md).
 */
void kj_eng_proof_missing(struct kj_engine *e, struct conn *c,
			  enum kj_ipc_proof_status why)
{
	struct kj_ipc_proof m = { .tag = kj_eng_conn_slot(e, c),
				  .status = (uint8_t)why };

	c->keeper_busy = true;
	c->after_refuse_quiet = why == KJ_PROOF_SITE_ABORT;
	c->after_refuse_close = !c->after_refuse_quiet;
	if (why != KJ_PROOF_DISCONNECTED) {
		c->state = S_ADMIT;
		kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
	}
	kj_eng_ipc_queue(e, KJ_IPC_PROOF, &m, sizeof(m), NULL, 0);
}

static void on_proof(struct kj_engine *e, struct conn *c,
		     const struct kj_frame *f)
{
	struct kj_ipc_proof m = { .tag = kj_eng_conn_slot(e, c) };
	struct kj_proof p;

	if (kj_proof_parse(f->body, f->len, &p, NULL) < 0) {
		kj_eng_proof_missing(e, c, KJ_PROOF_MALFORMED);
		return;
	}
	m.status = KJ_PROOF_GIVEN;
	m.cert_len = p.cert_len;
	memcpy(m.sig, p.sig, sizeof(m.sig));
	c->state = S_ADMIT;
	c->keeper_busy = true;
	c->after_refuse_quiet = false;
	c->after_refuse_close = false;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
	kj_eng_ipc_queue(e, KJ_IPC_PROOF, &m, sizeof(m), p.cert, p.cert_len);
}

/* ---- site bytes ---------------------------------------------------------- */

static void pre_hello_fail(struct kj_engine *e, struct conn *c,
			   const char *why)
{
	e->cnt.pre_hello_protocol++;
	kj_log_ratelimited(&e->rl, KJ_LOG_WARN,
			   "injector %u: connection %u: before HELLO: %s",
			   e->cfg.worker, kj_eng_conn_slot(e, c), why);
	kj_eng_send_abort(e, c, KJ_ABORT_PROTOCOL, why);
}

static void on_hello(struct kj_engine *e, struct conn *c,
		     const struct kj_frame *f)
{
	struct kj_hello h;
	struct kj_ipc_admit a = { 0 };
	uint8_t var[KJ_IPC_ADMIT_MAX];
	const char *why = NULL;
	size_t n = 0;

	if (kj_hello_parse(f->body, f->len, &h, &why) < 0) {
		pre_hello_fail(e, c, why);
		return;
	}
	a.tag = kj_eng_conn_slot(e, c);
	a.socket = h.socket;
	a.site_len = (uint8_t)strlen(h.site_id);
	a.uid_len = h.uid_len;
	a.hwrev_len = (uint8_t)strlen(h.hwrev);
	a.pubkey_len = h.pubkey_len;
	memcpy(var + n, h.site_id, a.site_len);
	n += a.site_len;
	memcpy(var + n, h.uid, a.uid_len);
	n += a.uid_len;
	memcpy(var + n, h.hwrev, a.hwrev_len);
	n += a.hwrev_len;
	memcpy(var + n, h.pubkey, a.pubkey_len);
	n += a.pubkey_len;
	if (c->tls) {
		/* The keeper holds site_id to the certificate's CN. */
		const char *cn = kj_tls_peer_cn(c->tls);

		a.cn_len = (uint8_t)strnlen(cn, KJ_STR8_MAX);
		memcpy(var + n, cn, a.cn_len);
		n += a.cn_len;
	}
	c->state = S_ADMIT;
	c->keeper_busy = true;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
	kj_eng_ipc_queue(e, KJ_IPC_ADMIT, &a, sizeof(a), var, n);
}

/*
 * One complete frame.  Returns false when the connection left the
 * receiving state (the rest of the buffer is then only checked).
 */
static bool on_frame(struct kj_engine *e, struct conn *c,
		     const struct kj_frame *f)
{
	uint8_t digest[KJ_DIGEST_LEN];
	struct kj_abort ab;
	const char *why = NULL;

	switch (f->type) {
	case KJ_MSG_HELLO:
		on_hello(e, c, f);
		return false;
	case KJ_MSG_PROOF:
		on_proof(e, c, f);
		return false;
	case KJ_MSG_READBACK:
		if (kj_readback_parse(f->body, f->len, digest, &why) < 0)
			break;
		c->state = S_VERDICT;
		kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
		kj_eng_outcome(e, c, KJ_OUT_READBACK, 0, digest);
		return false;
	case KJ_MSG_ABORT:
		if (kj_abort_parse(f->body, f->len, &ab, &why) < 0)
			break;
		if (c->state == S_HELLO)
			return true; /* no device in progress: nothing to end */
		if (c->state == S_PROOF) {
			kj_eng_proof_missing(e, c, KJ_PROOF_SITE_ABORT);
			return false;
		}
		c->state = S_VERDICT;
		kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
		kj_eng_outcome(e, c, KJ_OUT_SITE_ABORT, ab.code, NULL);
		return false;
	default:
		why = "unexpected frame type";
		break;
	}
	/* A body that does not parse. */
	if (c->state == S_HELLO) {
		pre_hello_fail(e, c, why);
	} else if (c->state == S_PROOF) {
		kj_eng_proof_missing(e, c, KJ_PROOF_MALFORMED);
	} else {
		kj_eng_outcome(e, c, KJ_OUT_PROTOCOL, 0, NULL);
		kj_eng_send_abort(e, c, KJ_ABORT_PROTOCOL, why);
	}
	return false;
}

static void on_bytes(struct kj_engine *e, struct conn *c, const uint8_t *p,
		     size_t n)
{
	enum state st0 = c->state;
	struct kj_frame f;
	size_t used;
	int rc;

	while (n) {
		rc = kj_frame_feed(&c->parser, p, n, &used, &f);
		p += used;
		n -= used;
		if (rc == KJ_FEED_FRAME) {
			on_frame(e, c, &f);
			if (c->state != st0)
				break;
			continue;
		}
		if (rc == KJ_FEED_MORE)
			break;
		/* Malformed (or DATA, which a site never sends). */
		if (st0 == S_HELLO) {
			pre_hello_fail(e, c, rc < 0 ? c->parser.why :
						      "DATA from a site");
		} else if (st0 == S_PROOF) {
			kj_eng_proof_missing(e, c, KJ_PROOF_MALFORMED);
		} else {
			kj_eng_outcome(e, c, KJ_OUT_PROTOCOL, 0, NULL);
			kj_eng_send_abort(e, c, KJ_ABORT_PROTOCOL,
					  rc < 0 ? c->parser.why :
					  "DATA from a site");
		}
		return;
	}
	if (c->state == st0) {
		/* the rest of a frame is still to come */
		kj_eng_recv_arm(e, c);
	} else if (n && c->state == S_ADMIT && st0 == S_PROOF &&
		   c->after_refuse_close) {
		/* malformed: the rest is not judged, the connection closes */
	} else if (n && (c->state == S_ADMIT || c->state == S_VERDICT)) {
		/* Pipelined bytes: judged once we receive again. */
		memmove(c->stash, p, n);
		c->stash_len = (uint16_t)n;
	}
}

void kj_eng_on_site_bytes(struct kj_engine *e, struct conn *c,
			  const uint8_t *p, size_t n)
{
	if (c->state == S_HELLO || c->state == S_READBACK ||
	    c->state == S_PROOF)
		on_bytes(e, c, p, n);
}

void kj_eng_on_recv(struct kj_engine *e, struct conn *c,
		    const struct io_uring_cqe *cqe)
{
	unsigned bid;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (c->state == S_HELLO || c->state == S_READBACK ||
		    c->state == S_PROOF) {
			if (cqe->res > 0)
				on_bytes(e, c, kj_eng_buf_addr(e, bid),
					 (size_t)cqe->res);
		}
		kj_eng_buf_return(e, bid);
		if (cqe->res > 0)
			return;
	}
	if (c->state != S_HELLO && c->state != S_READBACK &&
	    c->state != S_PROOF)
		return;
	if (cqe->res == -ENOBUFS) {
		c->rearm = true; /* buffers come back at the end of the batch */
		return;
	}
	if (cqe->res == -ECANCELED || cqe->res == -ETIME) {
		/* Cancelled at its deadline: PROTOCOL.md Limits. */
		if (c->state == S_HELLO) {
			e->cnt.pre_hello_timeout++;
			kj_log_ratelimited(&e->rl, KJ_LOG_WARN,
					   "injector %u: connection %u: no "
					   "HELLO within %u ms", e->cfg.worker,
					   kj_eng_conn_slot(e, c),
					   e->cfg.hello_timeout_ms);
		} else if (c->state == S_PROOF) {
			/* Counterfeit, not TIMEOUT: the keeper answers. */
			kj_eng_proof_missing(e, c, KJ_PROOF_TIMEOUT);
			return;
		} else {
			kj_eng_outcome(e, c, KJ_OUT_TIMEOUT, 0, NULL);
		}
		kj_eng_send_abort(e, c, KJ_ABORT_TIMEOUT, NULL);
		return;
	}
	/* EOF or a socket error. */
	if (c->state == S_HELLO) {
		if (!kj_frame_parser_idle(&c->parser))
			e->cnt.pre_hello_eof++;
	} else if (c->state == S_PROOF) {
		kj_eng_proof_missing(e, c, KJ_PROOF_DISCONNECTED);
	} else {
		kj_eng_outcome(e, c, KJ_OUT_DISCONNECTED, 0, NULL);
	}
	kj_eng_conn_close(e, c);
}
