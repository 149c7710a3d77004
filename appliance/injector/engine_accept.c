// SPDX-License-Identifier: Apache-2.0
/*
 * The injector engine's connection slots and listeners: a slot taken per
 * accepted socket and given back when nothing refers to it, the multishot
 * accepts paused at the limit and kicked when the backlog is stuck, and
 * the keeper's STOP that ends accepting.  Apart from the ring loop
 * (engine.c) because it is the only code that decides who gets in.
 */
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "wire/proto.h"
#include "engine_int.h"

#define ACCEPT_KICK_MS 200	/* see kj_eng_accept_kick() */
#define STOP_GRACE_MS 1000	/* idle sockets may still get their refusal */

/* ---- connection slots ----------------------------------------------- */

static struct conn *conn_alloc(struct kj_engine *e, int fd)
{
	struct conn *c;
	uint32_t gen;

	if (e->free_head != NO_SLOT) {
		c = &e->conns[e->free_head];
		e->free_head = c->next_free;
	} else if (e->hiwater < e->cfg.max_conns) {
		/* Untouched until now: idle RSS grows per connection only. */
		c = &e->conns[e->hiwater++];
	} else {
		return NULL;
	}
	gen = c->gen + 1;
	memset(c, 0, offsetof(struct conn, iov));
	c->gen = gen;
	c->fd = fd;
	kj_frame_parser_init(&c->parser, KJ_ROLE_APPLIANCE);
	e->open++;
	return c;
}

/* Free the slot once nothing refers to it any more. */
void kj_eng_conn_maybe_free(struct kj_engine *e, struct conn *c)
{
	if (c->state != S_CLOSING || c->ops)
		return;
	/* A paused handshake writes to its fd when it resumes: the number
	 * must not be another connection's by then (engine_tls.c). */
	if (c->tls_signing) {
		shutdown(c->fd, SHUT_RDWR);
		return;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
		e->open--;
		e->cnt.closed++;
	}
	if (c->keeper_busy)
		return;
	kj_eng_tls_free(c);
	c->state = S_FREE;
	c->gen++;
	c->next_free = e->free_head;
	e->free_head = kj_eng_conn_slot(e, c);
	for (unsigned i = 0; i < e->cfg.n_listen; i++)
		if (!e->accept_armed[i] && !e->stopping)
			kj_eng_accept_arm(e, i);
}

static bool accept_full(const struct kj_engine *e)
{
	return (e->free_head == NO_SLOT && e->hiwater == e->cfg.max_conns) ||
	       e->open >= e->cfg.accept_limit;
}

void kj_eng_conn_close(struct kj_engine *e, struct conn *c)
{
	c->state = S_CLOSING;
	/* A receive still armed ends now instead of at its deadline. */
	if (c->ops && c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	kj_eng_conn_maybe_free(e, c);
}

/* ---- accept -------------------------------------------------------------- */

void kj_eng_accept_arm(struct kj_engine *e, unsigned i)
{
	struct io_uring_sqe *sqe;

	if (accept_full(e) || !(sqe = kj_eng_get_sqe(e)))
		return;
	io_uring_prep_multishot_accept(sqe, e->cfg.listen_fds[i], NULL, NULL,
				       SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, kj_eng_ud(i, 0, OP_ACCEPT));
	e->accept_armed[i] = true;
}

/* At the connection limit: stop accepting until a slot frees. */
static void accept_pause(struct kj_engine *e)
{
	struct io_uring_sqe *sqe;

	for (unsigned i = 0; i < e->cfg.n_listen; i++) {
		if (!e->accept_armed[i] || !(sqe = kj_eng_get_sqe(e)))
			continue;
		io_uring_prep_cancel64(sqe, kj_eng_ud(i, 0, OP_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, kj_eng_ud(NO_SLOT, 0, OP_CANCEL));
	}
}

void kj_eng_on_accept(struct kj_engine *e, unsigned i,
		      const struct io_uring_cqe *cqe)
{
	struct conn *c;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		e->accept_armed[i] = false;
	if (cqe->res < 0) {
		if (cqe->res != -ECANCELED)
			kj_log_ratelimited(&e->rl, KJ_LOG_WARN,
					   "injector %u: accept: %s",
					   e->cfg.worker, strerror(-cqe->res));
	} else if (e->stopping || !(c = conn_alloc(e, cqe->res))) {
		close(cqe->res);
		e->cnt.over_limit += !e->stopping;
	} else {
		e->cnt.accepted++;
		e->last_accept_ms = kj_now_ms();
		if (i < 64 && (e->cfg.listen_tls >> i & 1))
			kj_eng_tls_start(e, c); /* handshake, then HELLO */
		else
			kj_eng_enter_hello(e, c);
	}
	if (accept_full(e))
		accept_pause(e);
	else if (!e->accept_armed[i] && !e->stopping)
		kj_eng_accept_arm(e, i);
}

/*
 * Workers share a listener, and io_uring waits for accept exclusively:
 * one connection wakes one ring.  When the ring that took a burst pauses
 * at its share, the connections left in the backlog wake nobody.  So a
 * ring with room that accepted nothing for a while restarts its multishot
 * accept (cancel; kj_eng_on_accept() re-arms it), and arming tries the backlog
 * at once.
 */
void kj_eng_accept_kick(struct kj_engine *e)
{
	struct io_uring_sqe *sqe;
	uint64_t now = kj_now_ms();

	if (e->stopping || accept_full(e) || now - e->last_kick_ms <
						     ACCEPT_KICK_MS ||
	    now - e->last_accept_ms < ACCEPT_KICK_MS)
		return;
	e->last_kick_ms = now;
	for (unsigned i = 0; i < e->cfg.n_listen; i++) {
		if (!e->accept_armed[i] || !(sqe = kj_eng_get_sqe(e)))
			continue;
		io_uring_prep_cancel64(sqe, kj_eng_ud(i, 0, OP_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, kj_eng_ud(NO_SLOT, 0, OP_CANCEL));
	}
}

/* ---- the job's end ------------------------------------------------------- */

void kj_eng_stop_all(struct kj_engine *e, uint16_t reason)
{
	struct io_uring_sqe *sqe;

	e->stopping = true;
	e->stop_reason = reason;
	e->stop_at_ms = kj_now_ms() + STOP_GRACE_MS;
	for (unsigned i = 0; i < e->cfg.n_listen; i++) {
		if (!e->accept_armed[i] || !(sqe = kj_eng_get_sqe(e)))
			continue;
		io_uring_prep_cancel64(sqe, kj_eng_ud(i, 0, OP_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, kj_eng_ud(NO_SLOT, 0, OP_CANCEL));
	}
}

/*
 * After the grace period, idle sockets are told why (QUOTA or STOPPED)
 * and closed; HELLOs that arrived before got the keeper's refusal.
 */
void kj_eng_stop_sweep(struct kj_engine *e)
{
	if (!e->stopping || e->stop_swept || kj_now_ms() < e->stop_at_ms)
		return;
	e->stop_swept = true;
	for (unsigned i = 0; i < e->hiwater; i++) {
		struct conn *c = &e->conns[i];

		if (c->state == S_HELLO && c->fd >= 0)
			kj_eng_send_stop_abort(e, c);
		else if (c->state == S_TLS)
			kj_eng_conn_close(e, c); /* no HELLO yet: no frame */
	}
}
