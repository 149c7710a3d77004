// SPDX-License-Identifier: Apache-2.0
/*
 * The injector engine's deadlines (engine_deadline.c) on a real ring and
 * real socketpairs: a receive or send is one SQE (no LINK_TIMEOUT), it
 * ends with -ECANCELED at its deadline and never before, a slow-loris
 * receive re-armed after a byte keeps its first deadline, a deadline moved
 * later is not met at the old one, and an operation that completed is not
 * cancelled.  Exit 77 when the kernel has no io_uring.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "injector/engine_int.h"

#define MS 1000000ull
#define NCONN 6

enum { C_HELLO150, C_HELLO600, C_LORIS, C_SEND, C_DONE, C_MOVED };

struct fx {
	struct kj_engine *e;
	int peer[NCONN];
	uint64_t t0;
	uint64_t ended_at[NCONN];	/* ns after t0, 0: not yet */
	int res[NCONN];
	unsigned cqes[NCONN];
	unsigned stray;			/* CQEs of no connection's op */
};

static uint8_t arena[4096];

static struct conn *open_conn(struct fx *f, unsigned i, enum state st,
			      unsigned ms)
{
	struct kj_engine *e = f->e;
	struct conn *c = &e->conns[e->hiwater++];
	int sp[2];

	assert_int_equal(kj_eng_conn_slot(e, c), i);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				    sp), 0);
	c->fd = sp[0];
	f->peer[i] = sp[1];
	c->gen = 1;
	c->dl_cls = DL_NONE;
	c->state = st;
	c->deadline_ns = f->t0 + ms * MS;
	e->open++;
	return c;
}

static void reap(struct fx *f, unsigned wait_ms)
{
	struct __kernel_timespec ts = { .tv_nsec = (long long)wait_ms * MS };
	struct kj_engine *e = f->e;
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int rc;

	kj_eng_dl_sweep(e);
	rc = io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, &ts, NULL);
	assert_true(rc >= 0 || rc == -ETIME || rc == -EINTR);
	io_uring_for_each_cqe(&e->ring, head, cqe) {
		uint64_t u = cqe->user_data;
		uint32_t slot = (uint32_t)(u >> 32);

		n++;
		if ((u & 0xff) == OP_CANCEL)
			continue;
		if (slot >= NCONN || ((u & 0xff) != OP_RECV &&
				      (u & 0xff) != OP_SEND)) {
			f->stray++;
			continue;
		}
		if (cqe->flags & IORING_CQE_F_BUFFER)
			kj_eng_buf_return(e, cqe->flags >>
					  IORING_CQE_BUFFER_SHIFT);
		e->conns[slot].ops--;
		f->cqes[slot]++;
		f->res[slot] = cqe->res;
		f->ended_at[slot] = kj_eng_mono_ns() - f->t0;
	}
	io_uring_cq_advance(&e->ring, n);
	io_uring_buf_ring_advance(e->br, (int)e->bufs_returned);
	e->bufs_returned = 0;
}

static void test_deadlines(void **state)
{
	struct kj_engine_cfg cfg = {
		.arena = arena, .arena_size = sizeof(arena),
		.ipc_fd = -1, .max_conns = 16,
		.hello_timeout_ms = 150, .program_timeout_ms = 700,
	};
	static uint8_t big[4096];
	struct fx f = { 0 };
	struct conn *c[NCONN];
	bool loris_fed = false;
	uint64_t loris_dl;
	int rc;

	(void)state;
	rc = kj_engine_init(&cfg, &f.e);
	if (rc == -ENOSYS || rc == -EPERM) {
		fprintf(stderr, "no io_uring here: skipped\n");
		exit(77);
	}
	assert_int_equal(rc, 0);
	f.t0 = kj_eng_mono_ns();
	c[C_HELLO150] = open_conn(&f, C_HELLO150, S_HELLO, 150);
	c[C_HELLO600] = open_conn(&f, C_HELLO600, S_HELLO, 600);
	c[C_LORIS] = open_conn(&f, C_LORIS, S_HELLO, 300);
	c[C_SEND] = open_conn(&f, C_SEND, S_REPLY, 0);
	c[C_DONE] = open_conn(&f, C_DONE, S_HELLO, 100);
	c[C_MOVED] = open_conn(&f, C_MOVED, S_HELLO, 100);
	loris_dl = c[C_LORIS]->deadline_ns;

	/* One SQE per receive: no linked timeout beside it. */
	for (unsigned i = 0; i < NCONN; i++) {
		unsigned before = io_uring_sq_ready(&f.e->ring);

		if (i == C_SEND)
			continue;
		kj_eng_recv_arm(f.e, c[i]);
		assert_int_equal(io_uring_sq_ready(&f.e->ring), before + 1);
	}
	/* A send into a full socket, limit 400 ms: one SQE too. */
	while (write(c[C_SEND]->fd, big, sizeof(big)) > 0)
		;
	c[C_SEND]->iov[0].iov_base = big;
	c[C_SEND]->iov[0].iov_len = sizeof(big);
	c[C_SEND]->iov_cnt = 1;
	{
		unsigned before = io_uring_sq_ready(&f.e->ring);

		kj_eng_send_arm(f.e, c[C_SEND], 400);
		assert_int_equal(io_uring_sq_ready(&f.e->ring), before + 1);
	}
	/* C_DONE and C_MOVED get a byte at once. */
	assert_int_equal(write(f.peer[C_DONE], "x", 1), 1);
	assert_int_equal(write(f.peer[C_MOVED], "x", 1), 1);

	while (kj_eng_mono_ns() - f.t0 < 5000 * MS) {
		reap(&f, 5);
		if (f.cqes[C_MOVED] == 1 && c[C_MOVED]->state == S_HELLO) {
			/* READBACK now: its own, later deadline. */
			c[C_MOVED]->state = S_READBACK;
			c[C_MOVED]->deadline_ns = kj_eng_mono_ns() + 700 * MS;
			kj_eng_recv_arm(f.e, c[C_MOVED]);
		}
		if (f.cqes[C_DONE] == 1 && c[C_DONE]->state == S_HELLO)
			c[C_DONE]->state = S_ADMIT;	/* nothing armed */
		if (!loris_fed && kj_eng_mono_ns() - f.t0 >= 200 * MS) {
			/* a byte 100 ms before its deadline: re-armed, the
			 * deadline stays (a relative one would be 500 ms) */
			assert_int_equal(write(f.peer[C_LORIS], "h", 1), 1);
			loris_fed = true;
		}
		if (loris_fed && f.cqes[C_LORIS] == 1 && f.res[C_LORIS] == 1) {
			kj_eng_recv_arm(f.e, c[C_LORIS]);
			assert_true(c[C_LORIS]->dl_ns == loris_dl);
			f.res[C_LORIS] = 0;
		}
		if (f.cqes[C_HELLO600] && f.cqes[C_SEND] &&
		    f.cqes[C_LORIS] == 2 && f.cqes[C_MOVED] == 2 &&
		    f.cqes[C_HELLO150])
			break;
	}
	for (unsigned i = 0; i < NCONN; i++)
		fprintf(stderr, "conn %u: %u CQEs, last %d at %llu ms\n", i,
			f.cqes[i], f.res[i],
			(unsigned long long)(f.ended_at[i] / MS));
	assert_int_equal(f.stray, 0);
	/* Each ends at its deadline, -ECANCELED, never before it. */
	assert_int_equal(f.res[C_HELLO150], -ECANCELED);
	assert_true(f.ended_at[C_HELLO150] >= 150 * MS);
	assert_int_equal(f.res[C_HELLO600], -ECANCELED);
	assert_true(f.ended_at[C_HELLO600] >= 600 * MS);
	assert_int_equal(f.res[C_SEND], -ECANCELED);
	assert_true(f.ended_at[C_SEND] >= 400 * MS);
	/* The slow-loris: its first deadline, before the 600 ms one. */
	assert_int_equal(f.cqes[C_LORIS], 2);
	assert_int_equal(f.res[C_LORIS], -ECANCELED);
	assert_true(f.ended_at[C_LORIS] >= 300 * MS);
	assert_true(f.ended_at[C_LORIS] <= f.ended_at[C_HELLO600]);
	/* Moved: not at 100 ms but at its new deadline (>= 700 ms). */
	assert_int_equal(f.cqes[C_MOVED], 2);
	assert_int_equal(f.res[C_MOVED], -ECANCELED);
	assert_true(f.ended_at[C_MOVED] >= 700 * MS);
	/* Completed: one CQE (the byte), never cancelled. */
	assert_int_equal(f.cqes[C_DONE], 1);
	assert_int_equal(f.res[C_DONE], 1);
	/* Every list empty: expired entries were dropped. */
	kj_eng_dl_sweep(f.e);
	for (unsigned k = 0; k < DL_CLASSES; k++)
		assert_true(f.e->dl[k].head == NO_SLOT &&
			    f.e->dl[k].tail == NO_SLOT);
	for (unsigned i = 0; i < NCONN; i++)
		close(f.peer[i]);
	kj_engine_free(f.e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadlines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
