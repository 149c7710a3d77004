// SPDX-License-Identifier: Apache-2.0
/*
 * The injector's io_uring engine (engine.h, docs/ENGINE.md).
 *
 * One ring, one loop: cancel what is past its deadline, submit and wait
 * (until the nearest deadline at most), reap a batch of CQEs, dispatch on
 * the tag in user_data, advance.  Every connection has at most one socket
 * operation in flight (a receive or a send, each with a deadline), so a
 * slow or hostile site only ever delays itself: its send waits in the
 * kernel for socket space while the ring serves everybody else.
 *
 * The pieces: this file has the loop, its dispatch and the set-up, and
 * calls down into the others; engine_ring.c the submission primitives
 * every piece uses (SQEs, provided buffers, receive and send with their
 * deadlines); engine_deadline.c the deadlines' sweep; engine_accept.c the
 * connection slots and the
 * listeners; engine_device.c the per-device states driven by what the
 * site sends; engine_send.c the frames to the site (DATA from the arena);
 * engine_keeper.c the keeper channel.  Those four are the sides of one
 * state machine (engine_int.h has its states) and call each other; none
 * calls back up into this file.
 */
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "wire/ipc.h"
#include "engine_int.h"
#include "sandbox.h"
#include "tls.h"

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
			kj_eng_on_accept(e, slot, cqe);
		return;
	case OP_IPC_RECV:
		if (cqe->res <= 0) {
			e->keeper_gone = true;
			return;
		}
		if (kj_eng_on_keeper_packet(e, (size_t)cqe->res) < 0)
			e->fatal = -EPROTO;
		else
			kj_eng_ipc_recv_arm(e);
		return;
	case OP_IPC_SEND:
		if (cqe->res < 0) {
			e->keeper_gone = true;
			return;
		}
		if (e->out_flight)
			kj_eng_obuf_put(e, e->out_flight);
		e->out_flight = NULL;
		return;
	case OP_CANCEL:
		return;
	case OP_LPOLL:
	case OP_LWAIT:
	case OP_REFUSE:
		if (slot < e->cfg.n_listen)
			kj_eng_on_lwatch(e, op, slot, cqe);
		return;
	case OP_RECV:
	case OP_SEND:
	case OP_TLS:
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
	if (op == OP_RECV && c->tls_user)
		kj_eng_tls_on_recv(e, c, cqe);
	else if (op == OP_RECV)
		kj_eng_on_recv(e, c, cqe);
	else if (op == OP_SEND && c->tls_user)
		kj_eng_tls_on_send(e, c, cqe);
	else if (op == OP_SEND)
		kj_eng_on_send(e, c, cqe);
	else if (op == OP_TLS)
		kj_eng_tls_on_poll(e, c, cqe);
	kj_eng_conn_maybe_free(e, c);
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
		if (c->state == S_HELLO || c->state == S_READBACK ||
		    c->state == S_PROOF)
			kj_eng_recv_arm(e, c);
	}
}

/* Wait at most a counters' period, and not past the nearest deadline. */
static void wait_for(struct __kernel_timespec *ts, uint64_t next_ns)
{
	uint64_t now = kj_eng_mono_ns(), ns = COUNTERS_EVERY_MS * 1000000ull;

	if (next_ns != UINT64_MAX) {
		/* rounded up to a whole millisecond: never early */
		uint64_t d = next_ns > now ? next_ns - now : 0;

		d = (d + 999999) / 1000000 * 1000000;
		if (d < 1000000)
			d = 1000000;
		if (d < ns)
			ns = d;
	}
	ts->tv_sec = (long long)(ns / 1000000000ull);
	ts->tv_nsec = (long long)(ns % 1000000000ull);
}

int kj_engine_run(struct kj_engine *e)
{
	struct __kernel_timespec tick;
	struct kj_ipc_ready r = { .worker = e->cfg.worker,
				  .max_conns = e->cfg.max_conns,
				  .pid = (uint32_t)getpid() };
	bool nobufs;

	kj_eng_ipc_queue(e, KJ_IPC_READY, &r, sizeof(r), NULL, 0);
	kj_eng_ipc_recv_arm(e);
	for (unsigned i = 0; i < e->cfg.n_listen; i++)
		kj_eng_accept_arm(e, i);
	while (!finished(e)) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int rc;

		kj_eng_stop_sweep(e);
		if (e->stopping && !e->open && !e->final_counters) {
			kj_eng_counters_maybe_send(e, true);
			e->final_counters = true;
		}
		kj_eng_counters_maybe_send(e, false);
		kj_eng_ipc_flush(e);
		wait_for(&tick, kj_eng_dl_sweep(e));
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

/* ---- set-up -------------------------------------------------------- */

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
		kj_eng_buf_return(e, i);
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
	/* Until the keeper's first LOAD: the others started with none. */
	if (e->cfg.workers > 1 && e->cfg.workers <= UINT16_MAX) {
		e->load.workers = (uint16_t)e->cfg.workers;
		e->load.others_room = (uint16_t)(e->cfg.workers - 1);
	}
	if (!e->cfg.accept_limit || e->cfg.accept_limit > e->cfg.max_conns)
		e->cfg.accept_limit = e->cfg.max_conns;
	/* Slots are touched only when used: RSS grows per connection. */
	e->conns = calloc(e->cfg.max_conns, sizeof(*e->conns));
	e->accept_armed = calloc(e->cfg.n_listen + 1, sizeof(bool));
	e->lref = calloc(e->cfg.n_listen + 1, sizeof(*e->lref));
	e->ipc_in = malloc(KJ_IPC_MSG_MAX);
	e->tls_buf = cfg->tls ? malloc(RBUF_SIZE) : NULL;
	if (!e->conns || !e->accept_armed || !e->lref || !e->ipc_in ||
	    (cfg->tls && !e->tls_buf))
		goto err;
	e->free_head = NO_SLOT;
	e->hiwater = 0;
	for (unsigned k = 0; k < DL_CLASSES; k++)
		e->dl[k].head = e->dl[k].tail = NO_SLOT;
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
		for (unsigned i = 0; i < e->hiwater; i++) {
			if (e->conns[i].fd >= 0 && e->conns[i].state != S_FREE)
				close(e->conns[i].fd);
			kj_eng_tls_free(&e->conns[i]);
		}
	kj_tls_server_free(e->cfg.tls);
	free(e->tls_buf);
	free(e->bufs);
	free(e->conns);
	free(e->accept_armed);
	free(e->lref);
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
