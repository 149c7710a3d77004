// SPDX-License-Identifier: Apache-2.0
/*
 * kinject sim: the plumbing under both the event loop (sim.c) and the
 * site (sim_site.c): clock, randomness, the timer heap, epoll interest,
 * closing and queued output.  It calls neither of them, so both depend on
 * it and the site needs nothing back from the loop.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/array.h"
#include "base/clock.h"
#include "base/log.h"
#include "wire/proto.h"
#include "wire/readback.h"
#include "sim_int.h"

uint64_t kj_sim_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void kj_sim_stamp(const struct sim *s, struct conn *c, unsigned which)
{
	struct timespec ts;

	if (!s->o->device_log)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->t_wall_us[which] = (uint64_t)ts.tv_sec * 1000000u +
			      (uint64_t)ts.tv_nsec / 1000u;
}

/* splitmix64: fault draws and garbage bytes, reproducible from a seed. */
uint64_t kj_sim_rnd(struct sim *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double kj_sim_rnd_unit(struct sim *s)
{
	return (double)(kj_sim_rnd(s) >> 11) * 0x1p-53;
}

/* ---- timers ---- */

static bool timer_less(const struct timer *a, const struct timer *b)
{
	return a->at_ms < b->at_ms;
}

static int heap_push(struct sim *s, struct timer t)
{
	size_t i;

	if (kj_grow(&s->heap, &s->cap_heap, s->n_heap + 1, 1024)) {
		kj_err("sim: out of memory for timers");
		return -ENOMEM;
	}
	i = s->n_heap++;
	while (i && timer_less(&t, &s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = t;
	return 0;
}

struct timer kj_sim_timer_pop(struct sim *s)
{
	struct timer top = s->heap[0], last = s->heap[--s->n_heap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->n_heap)
			break;
		if (c + 1 < s->n_heap &&
		    timer_less(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!timer_less(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->n_heap)
		s->heap[i] = last;
	return top;
}

void kj_sim_arm(struct sim *s, struct conn *c, enum timer_kind kind,
		unsigned ms)
{
	struct timer t = { kj_now_ms() + ms, c->idx, ++c->timer_gen };

	c->timer_kind = (uint8_t)kind;
	if (heap_push(s, t) < 0)
		kj_sim_halt(s);
}

static void disarm(struct conn *c)
{
	c->timer_gen++;
	c->timer_kind = T_NONE;
}

/* ---- connection plumbing ---- */

static void set_events(struct sim *s, struct conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	if (c->registered && c->events == ev)
		return;
	if (epoll_ctl(s->ep, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
		      c->fd, &e) < 0) {
		kj_err("sim: epoll_ctl: %s", strerror(errno));
		return kj_sim_halt(s);
	}
	c->registered = true;
	c->events = ev;
}

/* Epoll interest for the connection's state. */
void kj_sim_update_events(struct sim *s, struct conn *c)
{
	uint32_t ev = EPOLLIN;

	if (c->fd < 0 || c->state == C_SILENT)
		return;
	if (c->state == C_CONNECTING)
		ev = EPOLLOUT;
	else if (c->state == C_TLS)
		ev = c->tls_want;
	else if (c->timer_kind == T_SLOW_READ)
		ev = 0;
	if (c->out_off < c->out_len && c->timer_kind != T_DRIBBLE)
		ev |= EPOLLOUT;
	set_events(s, c, ev);
}

void kj_sim_close_fd(struct sim *s, struct conn *c, bool reset)
{
	(void)s;
	if (c->fd < 0)
		return;
	if (reset) {
		/* Vanish abruptly: RST on TCP instead of an orderly FIN. */
		struct linger lg = { 1, 0 };

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	kj_sim_tls_end(c);
	close(c->fd);
	c->fd = -1;
	c->registered = false;
	c->events = 0;
	c->out_len = c->out_off = 0;
	kj_readback_wipe(&c->rb);
	kj_frame_parser_init(&c->parser, KJ_ROLE_SITE);
	disarm(c);
}

/* Drop the connection and connect again after delay_ms. */
void kj_sim_reconnect(struct sim *s, struct conn *c, bool reset,
		      unsigned delay_ms)
{
	kj_sim_close_fd(s, c, reset);
	c->state = C_IDLE;
	kj_sim_arm(s, c, T_CONNECT, delay_ms);
}

void kj_sim_finish_socket(struct sim *s, struct conn *c, bool failed)
{
	kj_sim_close_fd(s, c, false);
	/* the last normal socket of the run: every worker ends */
	if (!c->hostile && c->state != C_DONE &&
	    atomic_fetch_sub(&s->sh->normal_live, 1) == 1)
		kj_sim_poke_all(s);
	c->state = C_DONE;
	s->socket_ended = true;
	if (failed)
		s->r->sockets_failed++;
	else
		s->r->sockets_ended++;
}

int kj_sim_queue_out(struct conn *c, const uint8_t *b, int n)
{
	if (n < 0)
		return n;
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if ((size_t)c->out_len + (size_t)n > OUT_CAP)
		return -ENOSPC;
	memcpy(c->out + c->out_len, b, (size_t)n);
	c->out_len += (uint16_t)n;
	return 0;
}

/* ---- what the workers share (struct sim_shared) ---- */

bool kj_sim_take_unit(struct sim *s)
{
	uint64_t had = atomic_fetch_add(&s->sh->reserved, 1);

	if (!s->o->devices || had < s->o->devices)
		return true;
	atomic_fetch_sub(&s->sh->reserved, 1);
	return false;
}

void kj_sim_put_unit(struct sim *s)
{
	atomic_fetch_sub(&s->sh->reserved, 1);
	kj_sim_wake_parked(s);
	/* Left over: parked sockets of other workers may take it. */
	if (s->sh->n_workers > 1 && s->o->devices &&
	    atomic_load(&s->sh->reserved) < s->o->devices)
		kj_sim_poke_all(s);
}

void kj_sim_hostile_answered(struct sim *s, bool intended)
{
	if (intended)
		s->r->hostile_intended++;
	else
		s->r->hostile_unexpected++;
	atomic_fetch_add(&s->sh->hostile_done, 1);
}

void kj_sim_halt(struct sim *s)
{
	s->stop = true;
	atomic_store(&s->sh->stop, true);
	kj_sim_poke_all(s);
}

/* An eventfd write cannot fail but for an overflowing counter: ignored. */
void kj_sim_poke_all(struct sim *s)
{
	uint64_t one = 1;

	for (unsigned i = 0; i < s->sh->n_workers; i++)
		if (&s->sh->workers[i] != s && s->sh->workers[i].wake_fd >= 0)
			(void)!write(s->sh->workers[i].wake_fd, &one,
				     sizeof(one));
}

void kj_sim_busy_begin(struct sim *s)
{
	s->busy_since_us = kj_sim_now_us();
}

void kj_sim_busy_end(struct sim *s)
{
	struct busy_span b = { s->busy_since_us, kj_sim_now_us() };

	/* one loop: its spans never overlap, their sum is their union */
	if (s->sh->n_workers == 1) {
		s->busy_us += b.to_us - b.from_us;
		return;
	}
	if (kj_grow(&s->busy, &s->cap_busy, s->n_busy + 1, 64)) {
		kj_err("sim: out of memory for busy spans");
		return kj_sim_halt(s);
	}
	s->busy[s->n_busy++] = b;
}
