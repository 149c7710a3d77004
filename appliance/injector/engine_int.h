/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the pieces of the injector's engine share (engine.c and
 * engine_*.c): the engine and connection structs, the user_data tags and
 * the functions one piece calls in another.  Not for anyone outside the
 * engine: engine.h is its interface.
 */
#ifndef KINJECT_ENGINE_INT_H
#define KINJECT_ENGINE_INT_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "base/log.h"
#include "wire/ipc.h"
#include "wire/proto.h"
#include "engine.h"

#define FRAMES_PER_SEND_MAX 16
#define IOV_MAX_CONN (1 + 2 * FRAMES_PER_SEND_MAX)
#define HBUF_LEN (KJ_OFFER_FRAME_MAX + FRAMES_PER_SEND_MAX * KJ_DATA_HDR_LEN)
#define RBUF_SIZE 1024		 /* a whole HELLO fits (KJ_HELLO_FRAME_MAX) */
#define BGID 0			 /* the one provided-buffer group */
#define COUNTERS_EVERY_MS 200

/* user_data: slot (32) | generation (24) | op (8). */
enum op {
	OP_ACCEPT = 1, /* slot = listener index */
	OP_RECV,
	OP_SEND,
	OP_CANCEL,
	OP_IPC_RECV,
	OP_IPC_SEND,
	OP_LPOLL,	/* slot = listener: full, is anyone waiting? */
	OP_LWAIT,	/* slot = listener: give a worker with room time */
	OP_REFUSE,	/* slot = listener: accept to refuse */
	OP_TLS,		/* a TLS handshake's POLL_ADD (engine_tls.c) */
};

/* A full worker's watch on a listener's backlog (engine_accept.c). */
enum lwatch { LW_IDLE, LW_POLL, LW_WAIT, LW_CHECK, LW_REFUSE };

struct lref {
	uint8_t st;		/* enum lwatch */
	uint64_t armed_ms;	/* LW_CHECK: when its poll was armed */
};
#define NO_SLOT 0xffffffffu
#define DL_CLASSES 4		/* deadline lists: one per limit */
#define DL_NONE 0xff		/* conn.dl_cls: on none */

/*
 * Per device (PROTOCOL.md "Sequence"):
 *   S_HELLO    recv (provided buffer) with the absolute HELLO deadline
 *              (engine_deadline.c), until a whole HELLO is parsed;
 *   S_ADMIT    ADMIT sent to the keeper, waiting for OFFER or REFUSE
 *              (or CHALLENGE: device authenticity, PROTOCOL.md);
 *   S_CHALLENGE sending the keeper's CHALLENGE, then
 *   S_PROOF    recv with the programming deadline until a
 *              whole PROOF; it goes to the keeper and we are in S_ADMIT
 *              again (every CHALLENGE gets a PROOF entry, given or not);
 *   S_STREAM   SENDMSG of OFFER + DATA frames: 10-byte headers from the
 *              connection's small buffer, payload iovecs straight into the
 *              read-only arena (up to data_frames_per_send per SENDMSG);
 *   S_READBACK recv with the absolute READBACK deadline;
 *   S_VERDICT  OUTCOME sent, waiting for the keeper's VERDICT (sent after
 *              the record is durable);
 *   S_REPLY    sending COMMIT or ABORT, then S_HELLO again (or close after
 *              ABORT PROTOCOL / TIMEOUT).
 * Before the first, on a tls: listener (engine_tls.c):
 *   S_TLS      the TLS 1.3 handshake: POLL_ADD with the HELLO deadline
 *              while OpenSSL wants to read or write, SIGN
 *              to the keeper while it wants the CertificateVerify signed.
 */
enum state {
	S_FREE = 0,
	S_HELLO,
	S_ADMIT,
	S_STREAM,
	S_READBACK,
	S_VERDICT,
	S_REPLY,
	S_CHALLENGE,
	S_PROOF,
	S_CLOSING,
	S_TLS,
};

struct conn {
	int fd;
	uint32_t gen;
	uint8_t state;
	uint8_t ops;	      /* socket ops in flight (0 or 1) */
	uint8_t op_live;      /* enum op of the last one: what a deadline
			       * cancels */
	uint8_t dl_cls;       /* deadline list (engine_deadline.c) */
	bool keeper_busy;     /* a request of this slot is unanswered */
	bool attempt_open;    /* OFFERed, OUTCOME not yet sent */
	bool close_after;     /* S_REPLY: close once the frame is out */
	bool rearm;	      /* recv to (re)arm: ENOBUFS */
	bool after_refuse_close; /* no usable PROOF: close after the ABORT */
	bool after_refuse_quiet; /* the site ABORTed the CHALLENGE: no frame */
	uint16_t stash_len;   /* bytes received after the last frame */
	uint16_t refusals;    /* REFUSEs since the last OFFER (budget) */
	bool tls_user;	      /* TLS records in user space (no kTLS) */
	bool tls_signing;     /* SIGN sent, SIGNED not yet in: OpenSSL
			       * still holds the fd (its number) */
	struct kj_tls_conn *tls; /* tls: listener; NULL otherwise */
	uint32_t next_free;
	uint64_t attempt;
	uint64_t blob_off;
	uint32_t blob_len;
	uint32_t fw_next;     /* next stream offsets to frame */
	uint32_t cred_next;
	uint64_t deadline_ns; /* CLOCK_MONOTONIC, current recv */
	uint64_t dl_ns;	      /* the deadline listed (dl_cls != DL_NONE) */
	uint32_t dl_prev, dl_next;
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

/* Deadlines: one list per limit, in deadline order (engine_deadline.c). */
struct kj_dlist {
	uint32_t head, tail;	/* slots, NO_SLOT: empty */
	unsigned ms;		/* the limit its deadlines are now + */
	bool used;
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
	struct lref *lref;	/* per listener */
	struct kj_dlist dl[DL_CLASSES];
	struct kj_ipc_load load; /* the others, as the keeper last said */
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

	uint8_t *tls_buf;	/* RBUF_SIZE: user-space TLS records read */
	bool tls_said;		/* kTLS or user space: logged once */

	struct kj_ipc_counters cnt;
	struct kj_ipc_counters cnt_sent;
	uint64_t cnt_at_ms;
	struct kj_ratelimit rl;
};

static inline uint64_t kj_eng_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t kj_eng_ud(uint32_t slot, uint32_t gen, enum op op)
{
	return ((uint64_t)slot << 32) | ((uint64_t)(gen & 0xffffff) << 8) |
	       (uint64_t)op;
}

static inline uint32_t kj_eng_conn_slot(const struct kj_engine *e,
					const struct conn *c)
{
	return (uint32_t)(c - e->conns);
}

static inline uint8_t *kj_eng_buf_addr(struct kj_engine *e, unsigned bid)
{
	return e->bufs + (size_t)bid * RBUF_SIZE;
}

/* engine_ring.c: the submission primitives */
struct io_uring_sqe *kj_eng_get_sqe(struct kj_engine *e);
void kj_eng_buf_return(struct kj_engine *e, unsigned bid);
/* A receive until the absolute c->deadline_ns, a send for tmo_ms. */
void kj_eng_recv_arm(struct kj_engine *e, struct conn *c);
void kj_eng_send_arm(struct kj_engine *e, struct conn *c, unsigned tmo_ms);
/* POLL_ADD for events (0: a NOP, completes at once) tagged op, with a
 * deadline: tmo_ms relative, 0: the absolute c->deadline_ns. */
void kj_eng_poll_arm(struct kj_engine *e, struct conn *c, unsigned events,
		     enum op op, unsigned tmo_ms);

/* engine_deadline.c: a connection's operation ends with -ECANCELED at
 * ns (CLOCK_MONOTONIC), which is now + the limit ms */
void kj_eng_dl_set(struct kj_engine *e, struct conn *c, uint64_t ns,
		   unsigned ms);
void kj_eng_dl_drop(struct kj_engine *e, struct conn *c);
uint64_t kj_eng_dl_sweep(struct kj_engine *e);

/* engine_accept.c: connection slots, accepting, stopping */
void kj_eng_conn_maybe_free(struct kj_engine *e, struct conn *c);
void kj_eng_conn_close(struct kj_engine *e, struct conn *c);
void kj_eng_accept_arm(struct kj_engine *e, unsigned i);
void kj_eng_on_lwatch(struct kj_engine *e, enum op op, unsigned i,
		      const struct io_uring_cqe *cqe);
void kj_eng_on_accept(struct kj_engine *e, unsigned i,
		      const struct io_uring_cqe *cqe);
void kj_eng_stop_all(struct kj_engine *e, uint16_t reason);
void kj_eng_stop_sweep(struct kj_engine *e);

/* engine_device.c: what the site sends, per device state */
void kj_eng_enter_hello(struct kj_engine *e, struct conn *c);
void kj_eng_enter_readback(struct kj_engine *e, struct conn *c);
void kj_eng_enter_proof(struct kj_engine *e, struct conn *c);
void kj_eng_proof_missing(struct kj_engine *e, struct conn *c,
			  enum kj_ipc_proof_status why);
void kj_eng_on_recv(struct kj_engine *e, struct conn *c,
		    const struct io_uring_cqe *cqe);
/* Bytes the site sent, however they came (TLS: engine_tls.c). */
void kj_eng_on_site_bytes(struct kj_engine *e, struct conn *c,
			  const uint8_t *p, size_t n);

/* engine_send.c: frames to the site, DATA from the arena */
void kj_eng_send_frame(struct kj_engine *e, struct conn *c, int len,
		       bool close_after);
void kj_eng_send_abort(struct kj_engine *e, struct conn *c, unsigned code,
		       const char *msg);
void kj_eng_send_stop_abort(struct kj_engine *e, struct conn *c);
void kj_eng_stream_fill(struct kj_engine *e, struct conn *c, size_t hoff);
void kj_eng_on_send(struct kj_engine *e, struct conn *c,
		    const struct io_uring_cqe *cqe);

/* engine_tls.c: tls: listeners (docs/TLS.md) */
void kj_eng_tls_start(struct kj_engine *e, struct conn *c);
void kj_eng_tls_on_poll(struct kj_engine *e, struct conn *c,
			const struct io_uring_cqe *cqe);
int kj_eng_tls_on_signed(struct kj_engine *e, const uint8_t *body);
void kj_eng_tls_recv_arm(struct kj_engine *e, struct conn *c);
void kj_eng_tls_send_arm(struct kj_engine *e, struct conn *c,
			 unsigned tmo_ms);
void kj_eng_tls_on_recv(struct kj_engine *e, struct conn *c,
			const struct io_uring_cqe *cqe);
void kj_eng_tls_on_send(struct kj_engine *e, struct conn *c,
			const struct io_uring_cqe *cqe);
void kj_eng_tls_free(struct conn *c);

/* engine_keeper.c: the keeper channel */
void kj_eng_obuf_put(struct kj_engine *e, struct obuf *o);
void kj_eng_ipc_queue(struct kj_engine *e, unsigned type, const void *a,
		      size_t alen, const void *b, size_t blen);
void kj_eng_ipc_flush(struct kj_engine *e);
void kj_eng_ipc_recv_arm(struct kj_engine *e);
void kj_eng_counters_maybe_send(struct kj_engine *e, bool force);
void kj_eng_outcome(struct kj_engine *e, struct conn *c,
		    enum kj_ipc_outcome_kind kind, uint16_t site_code,
		    const uint8_t *digest);
int kj_eng_on_keeper_packet(struct kj_engine *e, size_t len);

#endif
