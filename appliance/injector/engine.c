// SPDX-License-Identifier: Apache-2.0
/*
 * The injector's io_uring engine (engine.h, docs/ENGINE.md).
 *
 * One ring, one loop: submit and wait, reap a batch of CQEs, dispatch on
 * the tag in user_data, advance.  Every connection has at most one socket
 * operation in flight (a receive or a send, each with its linked timeout),
 * so a slow or hostile site only ever delays itself: its send waits in the
 * kernel for socket space while the ring serves everybody else.
 *
 * Per device (PROTOCOL.md "Sequence"):
 *   S_HELLO    recv (provided buffer) + LINK_TIMEOUT at the absolute HELLO
 *              deadline, until a whole HELLO is parsed;
 *   S_ADMIT    ADMIT sent to the keeper, waiting for OFFER or REFUSE;
 *   S_STREAM   SENDMSG of OFFER + DATA frames: 10-byte headers from the
 *              connection's small buffer, payload iovecs straight into the
 *              read-only arena (up to data_frames_per_send per SENDMSG);
 *   S_READBACK recv + LINK_TIMEOUT at the absolute READBACK deadline;
 *   S_VERDICT  OUTCOME sent, waiting for the keeper's VERDICT (sent after
 *              the record is durable);
 *   S_REPLY    sending COMMIT or ABORT, then S_HELLO again (or close after
 *              ABORT PROTOCOL / TIMEOUT).
 */
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "base/log.h"
#include "base/util.h"
#include "wire/ipc.h"
#include "sandbox.h"

#define FRAMES_PER_SEND_MAX 16
#define IOV_MAX_CONN (1 + 2 * FRAMES_PER_SEND_MAX)
#define HBUF_LEN (KJ_OFFER_FRAME_MAX + FRAMES_PER_SEND_MAX * KJ_DATA_HDR_LEN)
#define RBUF_SIZE 1024		 /* a whole HELLO fits (KJ_HELLO_FRAME_MAX) */
#define ABORT_SEND_TIMEOUT_MS 2000
#define COUNTERS_EVERY_MS 200
#define ACCEPT_KICK_MS 200	/* see accept_kick() */
#define STOP_GRACE_MS 1000	/* idle sockets may still get their refusal */
#define BGID 0

/* user_data: slot (32) | generation (24) | op (8). */
enum op {
	OP_ACCEPT = 1, /* slot = listener index */
	OP_RECV,
	OP_SEND,
	OP_LTIMEOUT,
	OP_CANCEL,
	OP_IPC_RECV,
	OP_IPC_SEND,
};
#define NO_SLOT 0xffffffffu

enum state {
	S_FREE = 0,
	S_HELLO,
	S_ADMIT,
	S_STREAM,
	S_READBACK,
	S_VERDICT,
	S_REPLY,
	S_CLOSING,
};


struct conn {
	int fd;
	uint32_t gen;
	uint8_t state;
	uint8_t ops;	      /* socket ops + linked timeouts in flight */
	bool keeper_busy;     /* a request of this slot is unanswered */
	bool attempt_open;    /* OFFERed, OUTCOME not yet sent */
	bool close_after;     /* S_REPLY: close once the frame is out */
	bool rearm;	      /* recv to (re)arm: ENOBUFS */
	uint16_t stash_len;   /* bytes received after the last frame */
	uint32_t next_free;
	uint64_t attempt;
	uint64_t blob_off;
	uint32_t blob_len;
	uint32_t fw_next;     /* next stream offsets to frame */
	uint32_t cred_next;
	uint64_t deadline_ns; /* CLOCK_MONOTONIC, current recv */
	struct __kernel_timespec ts;
	struct msghdr msg;
	unsigned iov_cnt;
	struct iovec iov[IOV_MAX_CONN];
	uint8_t hbuf[HBUF_LEN];
	struct kj_frame_parser parser;
	/*
	 * Bytes that came in the same receive as a HELLO or READBACK (a
	 * site may pipeline its next frame): kept until the connection
	 * receives again, so they are judged in the right state.
	 */
	uint8_t stash[RBUF_SIZE];
};

struct obuf {
	struct obuf *next;
	struct kj_ipc_buf b;
	uint8_t data[KJ_IPC_MSG_MAX];
};

struct kj_engine {
	struct kj_engine_cfg cfg;
	struct io_uring ring;
	bool ring_ok;
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint8_t *bufs;
	unsigned nbufs;
	unsigned bufs_returned; /* to advance at the end of the batch */

	struct conn *conns;
	uint32_t free_head;	/* freed slots */
	uint32_t hiwater;	/* slots [hiwater, max_conns) never touched */
	unsigned open;
	bool *accept_armed;
	uint64_t last_accept_ms;
	uint64_t last_kick_ms;
	bool stopping;
	bool stop_swept;	/* idle sockets told and closed */
	bool final_counters;
	uint64_t stop_at_ms;
	uint16_t stop_reason;
	bool keeper_gone;
	int fatal;

	uint8_t *ipc_in;
	struct obuf *out_cur;	/* filling */
	struct obuf *out_head;	/* full, waiting to be sent */
	struct obuf *out_tail;
	struct obuf *out_flight; /* being sent */
	struct obuf *out_spare;

	struct kj_ipc_counters cnt;
	struct kj_ipc_counters cnt_sent;
	uint64_t cnt_at_ms;
	struct kj_ratelimit rl;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t ud(uint32_t slot, uint32_t gen, enum op op)
{
	return ((uint64_t)slot << 32) | ((uint64_t)(gen & 0xffffff) << 8) |
	       (uint64_t)op;
}

static uint32_t conn_slot(const struct kj_engine *e, const struct conn *c)
{
	return (uint32_t)(c - e->conns);
}

/* An SQE; submits what is queued when the SQ is full. */
static struct io_uring_sqe *get_sqe(struct kj_engine *e)
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

static uint8_t *buf_addr(struct kj_engine *e, unsigned bid)
{
	return e->bufs + (size_t)bid * RBUF_SIZE;
}

static void buf_return(struct kj_engine *e, unsigned bid)
{
	io_uring_buf_ring_add(e->br, buf_addr(e, bid), RBUF_SIZE,
			      (unsigned short)bid,
			      io_uring_buf_ring_mask(e->nbufs),
			      (int)e->bufs_returned);
	e->bufs_returned++;
}

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

static void obuf_put(struct kj_engine *e, struct obuf *o)
{
	o->next = e->out_spare;
	e->out_spare = o;
}

static void ipc_queue(struct kj_engine *e, unsigned type, const void *a,
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

static void ipc_flush(struct kj_engine *e)
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
	sqe = get_sqe(e);
	if (!sqe)
		return;
	io_uring_prep_send(sqe, e->cfg.ipc_fd, o->b.p, o->b.len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud(NO_SLOT, 0, OP_IPC_SEND));
	e->out_flight = o;
}

static void ipc_recv_arm(struct kj_engine *e)
{
	struct io_uring_sqe *sqe = get_sqe(e);

	if (!sqe)
		return;
	io_uring_prep_recv(sqe, e->cfg.ipc_fd, e->ipc_in, KJ_IPC_MSG_MAX, 0);
	io_uring_sqe_set_data64(sqe, ud(NO_SLOT, 0, OP_IPC_RECV));
}

static void counters_maybe_send(struct kj_engine *e, bool force)
{
	uint64_t now = kj_now_ms();

	if (!force && now - e->cnt_at_ms < COUNTERS_EVERY_MS)
		return;
	e->cnt_at_ms = now;
	e->cnt.open = e->open;
	if (!memcmp(&e->cnt, &e->cnt_sent, sizeof(e->cnt)))
		return;
	e->cnt_sent = e->cnt;
	ipc_queue(e, KJ_IPC_COUNTERS, &e->cnt, sizeof(e->cnt), NULL, 0);
}

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

static void accept_arm(struct kj_engine *e, unsigned i);

/* Free the slot once nothing refers to it any more. */
static void conn_maybe_free(struct kj_engine *e, struct conn *c)
{
	if (c->state != S_CLOSING || c->ops)
		return;
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
		e->open--;
		e->cnt.closed++;
	}
	if (c->keeper_busy)
		return;
	c->state = S_FREE;
	c->gen++;
	c->next_free = e->free_head;
	e->free_head = conn_slot(e, c);
	for (unsigned i = 0; i < e->cfg.n_listen; i++)
		if (!e->accept_armed[i] && !e->stopping)
			accept_arm(e, i);
}

static bool accept_full(const struct kj_engine *e)
{
	return (e->free_head == NO_SLOT && e->hiwater == e->cfg.max_conns) ||
	       e->open >= e->cfg.accept_limit;
}

static void conn_close(struct kj_engine *e, struct conn *c)
{
	c->state = S_CLOSING;
	/* A receive still armed ends now instead of at its deadline. */
	if (c->ops && c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	conn_maybe_free(e, c);
}

static void outcome(struct kj_engine *e, struct conn *c,
		    enum kj_ipc_outcome_kind kind, uint16_t site_code,
		    const uint8_t *digest)
{
	struct kj_ipc_outcome o = {
		.tag = conn_slot(e, c),
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
	ipc_queue(e, KJ_IPC_OUTCOME, &o, sizeof(o), NULL, 0);
}

/* ---- socket operations ------------------------------------------------ */

static void link_timeout(struct kj_engine *e, struct conn *c, bool absolute)
{
	struct io_uring_sqe *sqe = get_sqe(e);

	if (!sqe)
		return;
	io_uring_prep_link_timeout(sqe, &c->ts,
				   absolute ? IORING_TIMEOUT_ABS : 0);
	io_uring_sqe_set_data64(sqe, ud(conn_slot(e, c), c->gen, OP_LTIMEOUT));
	c->ops++;
}

static void recv_arm(struct kj_engine *e, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(e);

	if (!sqe)
		return;
	io_uring_prep_recv(sqe, c->fd, NULL, RBUF_SIZE, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT | IOSQE_IO_LINK;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, ud(conn_slot(e, c), c->gen, OP_RECV));
	c->ops++;
	c->ts.tv_sec = (long long)(c->deadline_ns / 1000000000ull);
	c->ts.tv_nsec = (long long)(c->deadline_ns % 1000000000ull);
	link_timeout(e, c, true);
}

static void send_arm(struct kj_engine *e, struct conn *c, unsigned tmo_ms)
{
	struct io_uring_sqe *sqe = get_sqe(e);

	if (!sqe)
		return;
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = c->iov_cnt;
	io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL | MSG_WAITALL);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, ud(conn_slot(e, c), c->gen, OP_SEND));
	c->ops++;
	c->ts.tv_sec = tmo_ms / 1000;
	c->ts.tv_nsec = (long long)(tmo_ms % 1000) * 1000000;
	link_timeout(e, c, false);
}

static void on_bytes(struct kj_engine *e, struct conn *c, const uint8_t *p,
		     size_t n);
static void send_stop_abort(struct kj_engine *e, struct conn *c);

/* Receive: what was stashed first, then from the socket. */
static void receive(struct kj_engine *e, struct conn *c)
{
	size_t n = c->stash_len;

	c->stash_len = 0;
	if (n)
		on_bytes(e, c, c->stash, n);
	else
		recv_arm(e, c);
}

static void enter_hello(struct kj_engine *e, struct conn *c)
{
	if (e->stop_swept) {
		send_stop_abort(e, c);
		return;
	}
	c->state = S_HELLO;
	c->deadline_ns = mono_ns() +
			 (uint64_t)e->cfg.hello_timeout_ms * 1000000ull;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_HELLO) |
						   KJ_MSG_BIT(KJ_MSG_ABORT));
	receive(e, c);
}

/* Send one small frame (COMMIT or ABORT) from hbuf. */
static void send_frame(struct kj_engine *e, struct conn *c, int len,
		       bool close_after)
{
	if (len < 0) {
		conn_close(e, c);
		return;
	}
	c->state = S_REPLY;
	c->close_after = close_after;
	c->iov[0].iov_base = c->hbuf;
	c->iov[0].iov_len = (size_t)len;
	c->iov_cnt = 1;
	send_arm(e, c, close_after ? ABORT_SEND_TIMEOUT_MS :
				     e->cfg.program_timeout_ms);
}

static void send_abort(struct kj_engine *e, struct conn *c, unsigned code,
		       const char *msg)
{
	bool close_after = code == KJ_ABORT_PROTOCOL ||
			   code == KJ_ABORT_TIMEOUT;

	send_frame(e, c, kj_abort_build(c->hbuf, sizeof(c->hbuf), code, msg),
		   close_after);
}

/*
 * The job is ending (STOP): an idle connection gets the keeper's reason
 * (QUOTA or STOPPED, PROTOCOL.md) and is closed.
 */
static void send_stop_abort(struct kj_engine *e, struct conn *c)
{
	send_frame(e, c, kj_abort_build(c->hbuf, sizeof(c->hbuf),
					e->stop_reason, "the job is ending"),
		   true);
}

/* Fill iovecs with the next frames of the device's streams. */
static void stream_fill(struct kj_engine *e, struct conn *c, size_t hoff)
{
	unsigned frames = 0, max = e->cfg.data_frames_per_send;
	uint8_t *h = c->hbuf + hoff;

	while (frames < max) {
		const uint8_t *src;
		uint32_t left, n, off;
		uint8_t stream;

		if (c->fw_next < e->cfg.fw_size) {
			stream = 0;
			off = c->fw_next;
			left = e->cfg.fw_size - off;
			src = e->cfg.arena + e->cfg.fw_off + off;
		} else if (c->cred_next < c->blob_len) {
			stream = 1;
			off = c->cred_next;
			left = c->blob_len - off;
			src = e->cfg.arena + c->blob_off + off;
		} else {
			break;
		}
		n = left < KJ_DATA_PAYLOAD_MAX ? left : KJ_DATA_PAYLOAD_MAX;
		if (kj_data_hdr_build(h, stream, off, n) < 0)
			break;
		c->iov[c->iov_cnt].iov_base = h;
		c->iov[c->iov_cnt++].iov_len = KJ_DATA_HDR_LEN;
		c->iov[c->iov_cnt].iov_base = (void *)src;
		c->iov[c->iov_cnt++].iov_len = n;
		h += KJ_DATA_HDR_LEN;
		if (stream == 0)
			c->fw_next += n;
		else
			c->cred_next += n;
		frames++;
	}
}

static bool stream_done(const struct kj_engine *e, const struct conn *c)
{
	return c->fw_next >= e->cfg.fw_size && c->cred_next >= c->blob_len;
}

static void enter_readback(struct kj_engine *e, struct conn *c)
{
	c->state = S_READBACK;
	c->deadline_ns = mono_ns() +
			 (uint64_t)e->cfg.program_timeout_ms * 1000000ull;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_READBACK) |
						   KJ_MSG_BIT(KJ_MSG_ABORT));
	receive(e, c);
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

static int on_offer(struct kj_engine *e, const uint8_t *body, size_t len)
{
	struct kj_ipc_offer m;
	struct kj_offer o = { 0 };
	struct conn *c;
	int n;

	memcpy(&m, body, sizeof(m));
	c = tag_conn(e, m.tag);
	if (!c || c->attempt_open ||
	    (c->state != S_ADMIT && c->state != S_CLOSING))
		return -EPROTO;
	if (m.blob_off > e->cfg.arena_size ||
	    m.blob_len > e->cfg.arena_size - m.blob_off ||
	    len != sizeof(m) + m.serial_len ||
	    !kj_str8_valid(body + sizeof(m), m.serial_len))
		return -EPROTO;
	c->attempt = m.attempt;
	c->attempt_open = true;
	if (c->state == S_CLOSING) {
		/* The site left while the keeper reserved: burned. */
		outcome(e, c, KJ_OUT_DISCONNECTED, 0, NULL);
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
		outcome(e, c, KJ_OUT_INTERNAL, 0, NULL);
		send_abort(e, c, KJ_ABORT_INTERNAL, "cannot build OFFER");
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
	stream_fill(e, c, (size_t)n);
	send_arm(e, c, e->cfg.program_timeout_ms);
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
		conn_maybe_free(e, c);
		return 0;
	}
	send_abort(e, c, m.code, NULL);
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
		conn_maybe_free(e, c);
		return 0;
	}
	if (m.code == 0)
		send_frame(e, c, kj_commit_build(c->hbuf, sizeof(c->hbuf),
						 m.attempt, m.leaf_index),
			   false);
	else if (kj_abort_name(m.code))
		send_abort(e, c, m.code, NULL);
	else
		enter_hello(e, c); /* KJ_VERDICT_SILENT: nothing to send */
	return 0;
}

static void stop_all(struct kj_engine *e, uint16_t reason)
{
	struct io_uring_sqe *sqe;

	e->stopping = true;
	e->stop_reason = reason;
	e->stop_at_ms = kj_now_ms() + STOP_GRACE_MS;
	for (unsigned i = 0; i < e->cfg.n_listen; i++) {
		if (!e->accept_armed[i] || !(sqe = get_sqe(e)))
			continue;
		io_uring_prep_cancel64(sqe, ud(i, 0, OP_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, ud(NO_SLOT, 0, OP_CANCEL));
	}
}

/*
 * After the grace period, idle sockets are told why (QUOTA or STOPPED)
 * and closed; HELLOs that arrived before got the keeper's refusal.
 */
static void stop_sweep(struct kj_engine *e)
{
	if (!e->stopping || e->stop_swept || kj_now_ms() < e->stop_at_ms)
		return;
	e->stop_swept = true;
	for (unsigned i = 0; i < e->hiwater; i++) {
		struct conn *c = &e->conns[i];

		if (c->state == S_HELLO && c->fd >= 0)
			send_stop_abort(e, c);
	}
}

static int on_keeper_packet(struct kj_engine *e, size_t len)
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
		case KJ_IPC_STOP: {
			struct kj_ipc_stop s;

			memcpy(&s, body, sizeof(s));
			stop_all(e, (uint16_t)s.reason);
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

/* ---- site bytes ---------------------------------------------------------- */

static void pre_hello_fail(struct kj_engine *e, struct conn *c,
			   const char *why)
{
	e->cnt.pre_hello_protocol++;
	kj_log_ratelimited(&e->rl, KJ_LOG_WARN,
			   "injector %u: connection %u: before HELLO: %s",
			   e->cfg.worker, conn_slot(e, c), why);
	send_abort(e, c, KJ_ABORT_PROTOCOL, why);
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
	a.tag = conn_slot(e, c);
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
	c->state = S_ADMIT;
	c->keeper_busy = true;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
	ipc_queue(e, KJ_IPC_ADMIT, &a, sizeof(a), var, n);
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
	case KJ_MSG_READBACK:
		if (kj_readback_parse(f->body, f->len, digest, &why) < 0)
			break;
		c->state = S_VERDICT;
		kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
		outcome(e, c, KJ_OUT_READBACK, 0, digest);
		return false;
	case KJ_MSG_ABORT:
		if (kj_abort_parse(f->body, f->len, &ab, &why) < 0)
			break;
		if (c->state == S_HELLO)
			return true; /* no device in progress: nothing to end */
		c->state = S_VERDICT;
		kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
		outcome(e, c, KJ_OUT_SITE_ABORT, ab.code, NULL);
		return false;
	default:
		why = "unexpected frame type";
		break;
	}
	/* A body that does not parse. */
	if (c->state == S_HELLO) {
		pre_hello_fail(e, c, why);
	} else {
		outcome(e, c, KJ_OUT_PROTOCOL, 0, NULL);
		send_abort(e, c, KJ_ABORT_PROTOCOL, why);
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
		} else {
			outcome(e, c, KJ_OUT_PROTOCOL, 0, NULL);
			send_abort(e, c, KJ_ABORT_PROTOCOL,
				   rc < 0 ? c->parser.why : "DATA from a site");
		}
		return;
	}
	if (c->state == st0) {
		recv_arm(e, c); /* the rest of a frame is still to come */
	} else if (n && (c->state == S_ADMIT || c->state == S_VERDICT)) {
		/* Pipelined bytes: judged once we receive again. */
		memmove(c->stash, p, n);
		c->stash_len = (uint16_t)n;
	}
}

static void on_recv(struct kj_engine *e, struct conn *c,
		    const struct io_uring_cqe *cqe)
{
	unsigned bid;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (c->state == S_HELLO || c->state == S_READBACK) {
			if (cqe->res > 0)
				on_bytes(e, c, buf_addr(e, bid),
					 (size_t)cqe->res);
		}
		buf_return(e, bid);
		if (cqe->res > 0)
			return;
	}
	if (c->state != S_HELLO && c->state != S_READBACK)
		return;
	if (cqe->res == -ENOBUFS) {
		c->rearm = true; /* buffers come back at the end of the batch */
		return;
	}
	if (cqe->res == -ECANCELED || cqe->res == -ETIME) {
		/* The linked timeout fired: PROTOCOL.md Limits. */
		if (c->state == S_HELLO) {
			e->cnt.pre_hello_timeout++;
			kj_log_ratelimited(&e->rl, KJ_LOG_WARN,
					   "injector %u: connection %u: no "
					   "HELLO within %u ms", e->cfg.worker,
					   conn_slot(e, c),
					   e->cfg.hello_timeout_ms);
		} else {
			outcome(e, c, KJ_OUT_TIMEOUT, 0, NULL);
		}
		send_abort(e, c, KJ_ABORT_TIMEOUT, NULL);
		return;
	}
	/* EOF or a socket error. */
	if (c->state == S_HELLO) {
		if (!kj_frame_parser_idle(&c->parser))
			e->cnt.pre_hello_eof++;
	} else {
		outcome(e, c, KJ_OUT_DISCONNECTED, 0, NULL);
	}
	conn_close(e, c);
}

static void on_send(struct kj_engine *e, struct conn *c,
		    const struct io_uring_cqe *cqe)
{
	size_t total = 0, done;

	for (unsigned i = 0; i < c->iov_cnt; i++)
		total += c->iov[i].iov_len;
	if (cqe->res < 0 || (size_t)cqe->res > total) {
		if (c->state == S_STREAM)
			outcome(e, c, cqe->res == -ECANCELED ? KJ_OUT_TIMEOUT :
				KJ_OUT_DISCONNECTED, 0, NULL);
		conn_close(e, c);
		return;
	}
	e->cnt.bytes_sent += (uint64_t)cqe->res;
	if ((size_t)cqe->res < total) {
		/* Short send: go on from where the socket stopped. */
		unsigned i = 0, k = 0;

		done = (size_t)cqe->res;
		while (done >= c->iov[i].iov_len) {
			done -= c->iov[i].iov_len;
			i++;
		}
		for (; i < c->iov_cnt; i++, k++)
			c->iov[k] = c->iov[i];
		c->iov[0].iov_base = (uint8_t *)c->iov[0].iov_base + done;
		c->iov[0].iov_len -= done;
		c->iov_cnt = k;
		send_arm(e, c, e->cfg.program_timeout_ms);
		return;
	}
	if (c->state == S_STREAM) {
		if (stream_done(e, c)) {
			enter_readback(e, c);
			return;
		}
		c->iov_cnt = 0;
		stream_fill(e, c, 0);
		send_arm(e, c, e->cfg.program_timeout_ms);
		return;
	}
	if (c->state == S_REPLY) {
		if (c->close_after)
			conn_close(e, c);
		else
			enter_hello(e, c);
	}
}

/* ---- accept -------------------------------------------------------------- */

static void accept_arm(struct kj_engine *e, unsigned i)
{
	struct io_uring_sqe *sqe;

	if (accept_full(e) || !(sqe = get_sqe(e)))
		return;
	io_uring_prep_multishot_accept(sqe, e->cfg.listen_fds[i], NULL, NULL,
				       SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud(i, 0, OP_ACCEPT));
	e->accept_armed[i] = true;
}

/* At the connection limit: stop accepting until a slot frees. */
static void accept_pause(struct kj_engine *e)
{
	struct io_uring_sqe *sqe;

	for (unsigned i = 0; i < e->cfg.n_listen; i++) {
		if (!e->accept_armed[i] || !(sqe = get_sqe(e)))
			continue;
		io_uring_prep_cancel64(sqe, ud(i, 0, OP_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, ud(NO_SLOT, 0, OP_CANCEL));
	}
}

static void on_accept(struct kj_engine *e, unsigned i,
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
		enter_hello(e, c);
	}
	if (accept_full(e))
		accept_pause(e);
	else if (!e->accept_armed[i] && !e->stopping)
		accept_arm(e, i);
}

/*
 * Workers share a listener, and io_uring waits for accept exclusively:
 * one connection wakes one ring.  When the ring that took a burst pauses
 * at its share, the connections left in the backlog wake nobody.  So a
 * ring with room that accepted nothing for a while restarts its multishot
 * accept (cancel; on_accept() re-arms it), and arming tries the backlog at
 * once.
 */
static void accept_kick(struct kj_engine *e)
{
	struct io_uring_sqe *sqe;
	uint64_t now = kj_now_ms();

	if (e->stopping || accept_full(e) || now - e->last_kick_ms <
						     ACCEPT_KICK_MS ||
	    now - e->last_accept_ms < ACCEPT_KICK_MS)
		return;
	e->last_kick_ms = now;
	for (unsigned i = 0; i < e->cfg.n_listen; i++) {
		if (!e->accept_armed[i] || !(sqe = get_sqe(e)))
			continue;
		io_uring_prep_cancel64(sqe, ud(i, 0, OP_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, ud(NO_SLOT, 0, OP_CANCEL));
	}
}

/* ---- the loop ------------------------------------------------------------ */

static void on_cqe(struct kj_engine *e, const struct io_uring_cqe *cqe)
{
	uint64_t u = cqe->user_data;
	enum op op = (enum op)(u & 0xff);
	uint32_t slot = (uint32_t)(u >> 32);
	struct conn *c = NULL;

	if (cqe->res == -EACCES && op != OP_RECV && op != OP_SEND) {
		kj_err("io_uring: -EACCES: an operation outside the ring's "
		       "restrictions (policy violation)");
		e->fatal = -EACCES;
		return;
	}
	switch (op) {
	case OP_ACCEPT:
		if (slot < e->cfg.n_listen)
			on_accept(e, slot, cqe);
		return;
	case OP_IPC_RECV:
		if (cqe->res <= 0) {
			e->keeper_gone = true;
			return;
		}
		if (on_keeper_packet(e, (size_t)cqe->res) < 0)
			e->fatal = -EPROTO;
		else
			ipc_recv_arm(e);
		return;
	case OP_IPC_SEND:
		if (cqe->res < 0) {
			e->keeper_gone = true;
			return;
		}
		if (e->out_flight)
			obuf_put(e, e->out_flight);
		e->out_flight = NULL;
		return;
	case OP_CANCEL:
		return;
	case OP_RECV:
	case OP_SEND:
	case OP_LTIMEOUT:
		break;
	default:
		return;
	}
	if (slot >= e->cfg.max_conns)
		return;
	c = &e->conns[slot];
	if ((c->gen & 0xffffff) != ((u >> 8) & 0xffffff) || !c->ops)
		return;
	c->ops--;
	if (op == OP_RECV)
		on_recv(e, c, cqe);
	else if (op == OP_SEND)
		on_send(e, c, cqe);
	conn_maybe_free(e, c);
}

static bool finished(const struct kj_engine *e)
{
	if (e->keeper_gone || e->fatal)
		return true;
	return e->stopping && e->open == 0 && e->final_counters &&
	       !e->out_flight &&
	       !e->out_head && (!e->out_cur || !e->out_cur->b.n);
}

static void rearm_nobufs(struct kj_engine *e)
{
	for (unsigned i = 0; i < e->hiwater; i++) {
		struct conn *c = &e->conns[i];

		if (!c->rearm)
			continue;
		c->rearm = false;
		if (c->state == S_HELLO || c->state == S_READBACK)
			recv_arm(e, c);
	}
}

int kj_engine_run(struct kj_engine *e)
{
	struct __kernel_timespec tick = { .tv_sec = 0,
					  .tv_nsec = COUNTERS_EVERY_MS *
						     1000000LL };
	struct kj_ipc_ready r = { .worker = e->cfg.worker,
				  .max_conns = e->cfg.max_conns,
				  .pid = (uint32_t)getpid() };
	bool nobufs;

	ipc_queue(e, KJ_IPC_READY, &r, sizeof(r), NULL, 0);
	ipc_recv_arm(e);
	for (unsigned i = 0; i < e->cfg.n_listen; i++)
		accept_arm(e, i);
	while (!finished(e)) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int rc;

		stop_sweep(e);
		accept_kick(e);
		if (e->stopping && !e->open && !e->final_counters) {
			counters_maybe_send(e, true);
			e->final_counters = true;
		}
		counters_maybe_send(e, false);
		ipc_flush(e);
		rc = io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, &tick,
						      NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) {
			kj_err("io_uring: io_uring_enter: %s", strerror(-rc));
			return rc;
		}
		nobufs = false;
		io_uring_for_each_cqe(&e->ring, head, cqe) {
			on_cqe(e, cqe);
			nobufs |= cqe->res == -ENOBUFS;
			n++;
		}
		io_uring_cq_advance(&e->ring, n);
		if (e->bufs_returned) {
			io_uring_buf_ring_advance(e->br, (int)e->bufs_returned);
			e->bufs_returned = 0;
		}
		if (nobufs)
			rearm_nobufs(e);
	}
	if (e->fatal)
		return e->fatal;
	if (e->keeper_gone && !e->stopping) {
		kj_err("injector %u: the keeper channel closed", e->cfg.worker);
		return -EPIPE;
	}
	return 0;
}

/* ---- set-up ---------------------------------------------------------------- */

static int setup_ring(struct kj_engine *e)
{
	struct io_uring_params p;
	unsigned entries = e->cfg.ring_entries ? e->cfg.ring_entries : 4096;
	int rc;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
		  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
		  IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = entries * 4;
	rc = kj_uring_init_restricted(&e->ring, entries, &p);
	if (rc == -EINVAL) {
		/* Older kernels: the plain ring is fine, only slower. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		rc = kj_uring_init_restricted(&e->ring, entries, &p);
	}
	if (rc < 0)
		return rc;
	e->ring_ok = true;
	return 0;
}

static int setup_bufs(struct kj_engine *e)
{
	struct io_uring_buf_reg reg = { 0 };
	unsigned n = 64;
	int rc;

	while (n < e->cfg.max_conns && n < 4096)
		n <<= 1;
	e->nbufs = n;
	e->br_bytes = n * sizeof(struct io_uring_buf);
	e->br = mmap(NULL, e->br_bytes, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (e->br == MAP_FAILED) {
		e->br = NULL;
		kj_err("injector: mmap buffer ring: %s", strerror(errno));
		return -ENOMEM;
	}
	e->bufs = malloc((size_t)n * RBUF_SIZE);
	if (!e->bufs)
		return -ENOMEM;
	io_uring_buf_ring_init(e->br);
	reg.ring_addr = (uint64_t)(uintptr_t)e->br;
	reg.ring_entries = n;
	reg.bgid = BGID;
	rc = io_uring_register_buf_ring(&e->ring, &reg, 0);
	if (rc < 0) {
		kj_err("io_uring: IORING_REGISTER_PBUF_RING: %s",
		       strerror(-rc));
		return rc;
	}
	for (unsigned i = 0; i < n; i++)
		buf_return(e, i);
	io_uring_buf_ring_advance(e->br, (int)e->bufs_returned);
	e->bufs_returned = 0;
	return 0;
}

int kj_engine_init(const struct kj_engine_cfg *cfg, struct kj_engine **out)
{
	struct kj_engine *e = calloc(1, sizeof(*e));
	int rc = -ENOMEM;

	*out = NULL;
	if (!e)
		return -ENOMEM;
	e->cfg = *cfg;
	if (!e->cfg.data_frames_per_send ||
	    e->cfg.data_frames_per_send > FRAMES_PER_SEND_MAX)
		e->cfg.data_frames_per_send = FRAMES_PER_SEND_MAX;
	if (!e->cfg.max_conns || e->cfg.max_conns >= NO_SLOT ||
	    cfg->fw_off > cfg->arena_size ||
	    cfg->fw_size > cfg->arena_size - cfg->fw_off) {
		kj_err("injector: bad engine configuration");
		free(e);
		return -EINVAL;
	}
	e->rl = (struct kj_ratelimit)KJ_RATELIMIT_INIT(5000, 10);
	if (!e->cfg.accept_limit || e->cfg.accept_limit > e->cfg.max_conns)
		e->cfg.accept_limit = e->cfg.max_conns;
	/* Slots are touched only when used: RSS grows per connection. */
	e->conns = calloc(e->cfg.max_conns, sizeof(*e->conns));
	e->accept_armed = calloc(e->cfg.n_listen + 1, sizeof(bool));
	e->ipc_in = malloc(KJ_IPC_MSG_MAX);
	if (!e->conns || !e->accept_armed || !e->ipc_in)
		goto err;
	e->free_head = NO_SLOT;
	e->hiwater = 0;
	KJ_TRY_GOTO(rc, setup_ring(e), err);
	KJ_TRY_GOTO(rc, setup_bufs(e), err);
	*out = e;
	return 0;
err:
	if (rc == -ENOMEM)
		kj_err("injector: out of memory for %u connections",
		       e->cfg.max_conns);
	kj_engine_free(e);
	return rc;
}

void kj_engine_free(struct kj_engine *e)
{
	struct obuf *o, *n;

	if (!e)
		return;
	if (e->ring_ok)
		io_uring_queue_exit(&e->ring);
	if (e->br)
		munmap(e->br, e->br_bytes);
	if (e->conns)
		for (unsigned i = 0; i < e->hiwater; i++)
			if (e->conns[i].fd >= 0 && e->conns[i].state != S_FREE)
				close(e->conns[i].fd);
	free(e->bufs);
	free(e->conns);
	free(e->accept_armed);
	free(e->ipc_in);
	struct obuf *lists[] = { e->out_cur, e->out_head, e->out_flight,
				 e->out_spare };
	for (size_t i = 0; i < KJ_ARRAY_SIZE(lists); i++)
		for (o = lists[i]; o; o = n) {
			n = o->next;
			free(o);
		}
	free(e);
}
