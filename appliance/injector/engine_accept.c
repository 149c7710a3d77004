// SPDX-License-Identifier: Apache-2.0
/*
 * The injector engine's connection slots and listeners: a slot taken per
 * accepted socket and given back when nothing refers to it, one accept
 * armed per listener while there is room, and the keeper's STOP that ends
 * accepting.  Apart from the ring loop
 * (engine.c) because it is the only code that decides who gets in.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
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

#define STOP_GRACE_MS 1000	/* idle sockets may still get their refusal */
#define REFUSE_AFTER_MS 50	/* left in the backlog: every worker is full */
#define SPREAD_SLACK 4		/* connections above the share, and */
#define SPREAD_SLACK_DIV 32	/* 1/32 of all open, so a burst spreads in
				 * few LOAD round trips */

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
	c->dl_cls = DL_NONE;
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
	kj_eng_dl_drop(e, c);	/* nothing in flight to cancel */
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

/*
 * Above this worker's share of the line's open connections (its own and
 * the others' as the keeper last said, LOAD), plus a slack: the next ones
 * are left to the others, unless none of them has room.  The keeper's
 * count lags behind, never ahead of, the others' accepts, so the workers
 * leapfrog: none gets more than 2 x slack ahead of another however the
 * scheduler runs them.  A connection none of them takes is still served
 * (lwatch below): the rule spreads, it never refuses or strands.
 */
static bool over_share(const struct kj_engine *e)
{
	const struct kj_ipc_load *l = &e->load;
	uint64_t all = (uint64_t)e->open + l->others_open;

	if (l->workers <= 1 || !l->others_room)
		return false;
	/* open >= all / workers + slack, in integers */
	return (uint64_t)e->open * l->workers >=
	       all + (uint64_t)l->workers * (SPREAD_SLACK +
					     all / SPREAD_SLACK_DIV);
}

static bool paused(const struct kj_engine *e)
{
	return accept_full(e) || over_share(e);
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

/*
 * One single-shot ACCEPT per listener, re-armed after each connection
 * while this worker has room.  Workers share a listener and io_uring waits
 * for accept exclusively, first waiter first: a multishot accept keeps its
 * place at the head of the wait queue and takes every connection (and a
 * whole burst in the backlog) until it is cancelled, which left the other
 * rings idle and needed a timed restart to reach what was left in the
 * backlog.  A single-shot accept leaves the queue when it completes and
 * re-queues behind the others, so connections arriving one by one go round
 * the workers, a backlog is drained by all of them in turn (arming tries it
 * at once), and a worker at its share simply does not re-arm: nothing is
 * left waiting while a worker with room is armed.  Beyond every worker's
 * share, a connection is refused at once (lwatch below).  One SQE per
 * connection: nothing next to a device's ten.
 */
static void lwatch_poll(struct kj_engine *e, unsigned i, enum lwatch st);

void kj_eng_accept_arm(struct kj_engine *e, unsigned i)
{
	struct io_uring_sqe *sqe;

	if (accept_full(e) || e->accept_armed[i])
		return;
	if (over_share(e)) {
		/* a connection the others leave is served after all */
		if (e->lref[i].st == LW_IDLE && !e->stopping)
			lwatch_poll(e, i, LW_POLL);
		return;
	}
	if (!(sqe = kj_eng_get_sqe(e)))
		return;
	io_uring_prep_accept(sqe, e->cfg.listen_fds[i], NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, kj_eng_ud(i, 0, OP_ACCEPT));
	e->accept_armed[i] = true;
}

static void lwatch_start(struct kj_engine *e);

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
	lwatch_start(e);
}

/*
 * A connection this worker has no slot for (accepts on several listeners
 * completing together): told why at once, not left to guess from a reset.
 * A fresh socket's send buffer is empty, so the frame goes in one call.
 */
static bool listener_tls(const struct kj_engine *e, unsigned i)
{
	return i < 64 && (e->cfg.listen_tls >> i & 1);
}

/* On a TLS listener the handshake comes first, then HELLO. */
static void conn_begin(struct kj_engine *e, struct conn *c, unsigned i)
{
	e->cnt.accepted++;
	if (listener_tls(e, i))
		kj_eng_tls_start(e, c);
	else
		kj_eng_enter_hello(e, c);
}

/*
 * A TLS site could not read a plain ABORT before its handshake: it only
 * sees the connection close (and logs that), and the refusal is counted.
 */
static void refuse_over_limit(struct kj_engine *e, unsigned i, int fd)
{
	uint8_t f[96];
	int n = kj_abort_build(f, sizeof(f), KJ_ABORT_INTERNAL,
			       "connection limit reached (--max-connections)");

	if (n > 0 && !listener_tls(e, i))
		(void)send(fd, f, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
	e->cnt.over_limit++;
	kj_log_ratelimited(&e->rl, KJ_LOG_WARN,
			   "injector %u: a connection over --max-connections "
			   "(%u) refused with ABORT INTERNAL",
			   e->cfg.worker, e->cfg.max_conns);
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
	} else if (e->stopping) {
		close(cqe->res);
	} else if (!(c = conn_alloc(e, cqe->res))) {
		refuse_over_limit(e, i, cqe->res);
	} else {
		conn_begin(e, c, i);
	}
	if (accept_full(e))
		accept_pause(e);
	else if (cqe->res == -EMFILE || cqe->res == -ENFILE)
		return; /* out of fds: re-armed when a connection closes */
	else if (!e->accept_armed[i] && !e->stopping)
		kj_eng_accept_arm(e, i);
}

/*
 * A full worker watches each listener's backlog, so that a connection
 * beyond --max-connections is refused at once with a reason instead of
 * waiting, perhaps for ever on a line whose sites stay connected, for a
 * slot.  A worker cannot see the others' room, but the kernel shows it:
 * a worker with room has its accept armed and takes a new connection at
 * once, so one still in the backlog REFUSE_AFTER_MS after it came was
 * taken by nobody.  POLL_ADD (non-exclusive: it takes no connection) sees
 * the arrival, a TIMEOUT waits, a second POLL_ADD that completes at once
 * says the backlog is still not empty, and an ACCEPT takes the oldest
 * connection to refuse it (or to serve it, if a slot freed meanwhile).
 * After a refusal the check repeats at once: a backlog of N connections is
 * refused in N loop turns, not N waits.  A worker held back by the accept
 * spread (over_share) watches the same way, but serves what it takes and
 * then gives the others their REFUSE_AFTER_MS again.
 */
static void lwatch_poll(struct kj_engine *e, unsigned i, enum lwatch st)
{
	struct io_uring_sqe *sqe = kj_eng_get_sqe(e);

	e->lref[i].st = LW_IDLE;
	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, e->cfg.listen_fds[i], POLLIN);
	io_uring_sqe_set_data64(sqe, kj_eng_ud(i, 0, OP_LPOLL));
	e->lref[i].st = (uint8_t)st;
	e->lref[i].armed_ms = kj_now_ms();
}

static void lwatch_start(struct kj_engine *e)
{
	for (unsigned i = 0; i < e->cfg.n_listen; i++)
		if (e->lref[i].st == LW_IDLE && !e->stopping)
			lwatch_poll(e, i, LW_POLL);
}

static void lwatch_wait(struct kj_engine *e, unsigned i)
{
	static struct __kernel_timespec wait = {
		.tv_nsec = REFUSE_AFTER_MS * 1000000LL };
	struct io_uring_sqe *sqe = kj_eng_get_sqe(e);

	e->lref[i].st = LW_IDLE;
	if (!sqe)
		return;
	io_uring_prep_timeout(sqe, &wait, 0, 0);
	io_uring_sqe_set_data64(sqe, kj_eng_ud(i, 0, OP_LWAIT));
	e->lref[i].st = LW_WAIT;
}

static void lwatch_take(struct kj_engine *e, unsigned i)
{
	struct io_uring_sqe *sqe = kj_eng_get_sqe(e);

	e->lref[i].st = LW_IDLE;
	if (!sqe)
		return;
	io_uring_prep_accept(sqe, e->cfg.listen_fds[i], NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, kj_eng_ud(i, 0, OP_REFUSE));
	e->lref[i].st = LW_REFUSE;
}

static void lwatch_taken(struct kj_engine *e, unsigned i, int fd)
{
	struct conn *c;

	if (e->stopping)
		close(fd);
	else if (!accept_full(e) && (c = conn_alloc(e, fd)))
		conn_begin(e, c, i);
	else
		refuse_over_limit(e, i, fd);
}

void kj_eng_on_lwatch(struct kj_engine *e, enum op op, unsigned i,
		      const struct io_uring_cqe *cqe)
{
	struct lref *l = &e->lref[i];
	bool check = l->st == LW_CHECK && kj_now_ms() - l->armed_ms <= 2;

	l->st = LW_IDLE;
	if (op == OP_REFUSE && cqe->res >= 0)
		lwatch_taken(e, i, cqe->res);
	if (e->stopping)
		return;
	if (!paused(e)) {
		kj_eng_accept_arm(e, i);
		return;
	}
	if (op == OP_REFUSE && (cqe->res < 0 || !accept_full(e)))
		lwatch_poll(e, i, LW_POLL);	/* EMFILE…: not in a loop;
						 * served above the share: the
						 * others get their time again */
	else if (op != OP_LPOLL)
		lwatch_poll(e, i, LW_CHECK);	/* waited, or refused one */
	else if (cqe->res < 0)
		return;				/* cancelled, or failed */
	else if (check)
		lwatch_take(e, i);		/* still there after the wait */
	else
		lwatch_wait(e, i);		/* arrived: others have time */
}

/* ---- the job's end ------------------------------------------------------- */

void kj_eng_stop_all(struct kj_engine *e, uint16_t reason)
{
	struct io_uring_sqe *sqe;

	e->stopping = true;
	e->stop_reason = reason;
	e->stop_at_ms = kj_now_ms() + STOP_GRACE_MS;
	for (unsigned i = 0; i < e->cfg.n_listen; i++) {
		static const enum op ops[] = { OP_ACCEPT, OP_LPOLL, OP_LWAIT,
					       OP_REFUSE };

		for (size_t k = 0; k < KJ_ARRAY_SIZE(ops); k++) {
			if ((k ? e->lref[i].st == LW_IDLE :
				 !e->accept_armed[i]) ||
			    !(sqe = kj_eng_get_sqe(e)))
				continue;
			io_uring_prep_cancel64(sqe, kj_eng_ud(i, 0, ops[k]),
					       0);
			io_uring_sqe_set_data64(sqe, kj_eng_ud(NO_SLOT, 0,
								OP_CANCEL));
		}
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
