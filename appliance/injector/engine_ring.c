// SPDX-License-Identifier: Apache-2.0
/*
 * The engine's submission primitives (engine_int.h): an SQE, a provided
 * buffer given back, a receive or a send with its deadline.  The
 * bottom of the engine: every other piece submits through these, and
 * these call nothing of the engine's above them.
 */
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "engine_int.h"

/* An SQE; submits what is queued when the SQ is full. */
struct io_uring_sqe *kj_eng_get_sqe(struct kj_engine *e)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);

	if (!sqe) {
		int rc = io_uring_submit(&e->ring);

		if (rc < 0 && rc != -EBUSY && rc != -EAGAIN)
			kj_err("io_uring: submit: %s", strerror(-rc));
		sqe = io_uring_get_sqe(&e->ring);
	}
	if (!sqe && !e->fatal) {
		kj_err("io_uring: submission queue full");
		e->fatal = -EBUSY;
	}
	return sqe;
}

void kj_eng_buf_return(struct kj_engine *e, unsigned bid)
{
	io_uring_buf_ring_add(e->br, kj_eng_buf_addr(e, bid), RBUF_SIZE,
			      (unsigned short)bid,
			      io_uring_buf_ring_mask(e->nbufs),
			      (int)e->bufs_returned);
	e->bufs_returned++;
}

/* ---- socket operations ------------------------------------------------ */

/* The operation just prepared: counted, tagged, and its deadline set. */
static void armed(struct kj_engine *e, struct conn *c,
		  struct io_uring_sqe *sqe, enum op op, uint64_t dl_ns,
		  unsigned ms)
{
	io_uring_sqe_set_data64(sqe, kj_eng_ud(kj_eng_conn_slot(e, c), c->gen,
					       op));
	c->ops++;
	c->op_live = (uint8_t)op;
	if (dl_ns)
		kj_eng_dl_set(e, c, dl_ns, ms);
	else
		kj_eng_dl_drop(e, c);
}

/* The limit an absolute deadline counts: HELLO, or the programming one. */
static unsigned abs_limit_ms(const struct kj_engine *e, const struct conn *c)
{
	return c->state == S_HELLO || c->state == S_TLS ?
	       e->cfg.hello_timeout_ms : e->cfg.program_timeout_ms;
}

void kj_eng_recv_arm(struct kj_engine *e, struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->tls_user) {
		kj_eng_tls_recv_arm(e, c); /* records decrypted here */
		return;
	}
	if (!(sqe = kj_eng_get_sqe(e)))
		return;
	io_uring_prep_recv(sqe, c->fd, NULL, RBUF_SIZE, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	armed(e, c, sqe, OP_RECV, c->deadline_ns, abs_limit_ms(e, c));
}

void kj_eng_send_arm(struct kj_engine *e, struct conn *c, unsigned tmo_ms)
{
	struct io_uring_sqe *sqe;

	if (c->tls_user) {
		kj_eng_tls_send_arm(e, c, tmo_ms); /* records made here */
		return;
	}
	if (!(sqe = kj_eng_get_sqe(e)))
		return;
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = c->iov_cnt;
	/* kTLS refuses MSG_WAITALL (EOPNOTSUPP): a short send is resumed. */
	io_uring_prep_sendmsg(sqe, c->fd, &c->msg, c->tls ? MSG_NOSIGNAL :
			      MSG_NOSIGNAL | MSG_WAITALL);
	armed(e, c, sqe, OP_SEND,
	      kj_eng_mono_ns() + (uint64_t)tmo_ms * 1000000ull, tmo_ms);
}

void kj_eng_poll_arm(struct kj_engine *e, struct conn *c, unsigned events,
		     enum op op, unsigned tmo_ms)
{
	struct io_uring_sqe *sqe = kj_eng_get_sqe(e);
	uint64_t dl_ns = 0;

	if (!sqe)
		return;
	if (events)
		io_uring_prep_poll_add(sqe, c->fd, events);
	else
		io_uring_prep_nop(sqe);
	if (events && tmo_ms)
		dl_ns = kj_eng_mono_ns() + (uint64_t)tmo_ms * 1000000ull;
	else if (events)
		dl_ns = c->deadline_ns;
	armed(e, c, sqe, op, dl_ns, tmo_ms ? tmo_ms : abs_limit_ms(e, c));
}
