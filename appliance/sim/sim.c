// SPDX-License-Identifier: Apache-2.0
/*
 * kinject sim: simulated programming sockets, one epoll loop per worker
 * (sim.h; the workers, their shared budget and the merged result are
 * sim_workers.c).
 *
 * Each connection is a small state machine fed by kj_frame_feed (site
 * role, DATA streamed straight into the readback hash: nothing buffered
 * beyond one small frame per connection, so 10,000 sockets fit easily).
 * Timers (programming delay, slow reads, slow-loris dribble, reconnects)
 * live in one binary heap (sim_conn.c); a timer is cancelled by bumping its
 * connection's generation.  No file descriptor is opened while a batch of
 * epoll events is being handled: reconnects go through a timer, so a
 * stale event can never reach a new connection.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <unistd.h>

#include "sim.h"
#include "base/clock.h"
#include "base/kinject.h"
#include "base/log.h"
#include "sim_int.h"
#include "sim_tls.h"

/* ---- connecting ---- */

static void hostile_attack(struct sim *s, struct conn *c)
{
	uint8_t b[GARBAGE_BYTES];
	size_t n = sizeof(b);

	s->r->hostile_attempts++;
	c->reacted = false;
	c->state = C_HOSTILE;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
	if (s->o->hostile == KJ_SIM_HUGE_LENGTH) {
		/* length 0xffffffff (4 GiB), type HELLO, then some body */
		memset(b, 0, 64);
		memset(b, 0xff, 4);
		b[4] = KJ_MSG_HELLO;
		n = 64;
	} else {
		for (size_t i = 0; i < n; i += 8) {
			uint64_t x = kj_sim_rnd(s);

			memcpy(b + i, &x, 8);
		}
	}
	(void)!kj_sim_queue_out(c, b, (int)n);
	kj_sim_flush(s, c);
}

static void on_connected(struct sim *s, struct conn *c)
{
	int one = 1;

	c->last_progress_ms = kj_now_ms();
	c->retry_until_ms = 0; /* the start-up window is over */
	c->closed_unanswered = false;
	if (s->o->addr.ss_family != AF_UNIX)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (s->tls) {
		c->state = C_TLS;
		return kj_sim_tls_step(s, c);
	}
	kj_sim_ready(s, c);
}

void kj_sim_ready(struct sim *s, struct conn *c)
{
	if (c->hostile && (s->o->hostile == KJ_SIM_GARBAGE ||
			   s->o->hostile == KJ_SIM_HUGE_LENGTH)) {
		c->state = C_HOSTILE;
		kj_sim_update_events(s, c);
		return hostile_attack(s, c);
	}
	c->state = C_PARKED;
	kj_sim_update_events(s, c);
	kj_sim_start_device(s, c);
}

/* After QUOTA, a closed listener is the job's end (PROTOCOL.md). */
static bool refusal_ends(struct sim *s, struct conn *c)
{
	return (atomic_load(&s->sh->appliance_ending) ||
		c->closed_unanswered) && !s->o->reconnect;
}

static void connect_failed(struct sim *s, struct conn *c, int err)
{
	uint64_t now = kj_now_ms();

	kj_sim_close_fd(s, c, false);
	if (refusal_ends(s, c))
		return kj_sim_finish_socket(s, c, false);
	if (now < c->retry_until_ms) {
		c->state = C_IDLE;
		return kj_sim_arm(s, c, T_CONNECT, RETRY_MS);
	}
	if (atomic_load(&s->sh->appliance_ending))
		return kj_sim_finish_socket(s, c, false);
	kj_log_ratelimited(&s->rl, KJ_LOG_ERR, "sim: %s: connect: %s",
			   s->o->connect, strerror(err));
	s->r->err_connect++;
	kj_sim_finish_socket(s, c, true);
}

/*
 * Connect c (a new socket, or the one that waits in the line below); false
 * when it must wait in line, c left C_IDLE: the listener's backlog is full
 * (EAGAIN on a unix socket: c keeps its socket), or nobody listens yet
 * within --connect-wait.
 */
static bool try_connect(struct sim *s, struct conn *c)
{
	if (c->fd < 0) {
		c->fd = socket(s->o->addr.ss_family,
			       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			kj_err("sim: socket: %s", strerror(errno));
			s->r->err_connect++;
			kj_sim_finish_socket(s, c, true);
			return true;
		}
		kj_frame_parser_init(&c->parser, KJ_ROLE_SITE);
	}
	if (connect(c->fd, (const struct sockaddr *)&s->o->addr,
		    s->o->addr_len) == 0) {
		on_connected(s, c);
		return true;
	}
	if (errno == EINPROGRESS) {
		c->state = C_CONNECTING;
		c->last_progress_ms = kj_now_ms();
		kj_sim_update_events(s, c);
		return true;
	}
	if (errno == EAGAIN) {
		c->state = C_IDLE;
		s->line_ms = CONNECT_LINE_MS;
		return false;
	}
	if (!refusal_ends(s, c) && kj_now_ms() < c->retry_until_ms) {
		kj_sim_close_fd(s, c, false);
		c->state = C_IDLE;
		s->line_ms = RETRY_MS;
		return false;
	}
	connect_failed(s, c, errno);
	return true;
}

/*
 * Connects and timers a loop turn takes before it reads again: 10,000
 * sockets connecting at the start took one worker 150-250 ms of socket,
 * connect and HELLO calls in one go, and the OFFERs of the first sockets
 * waited for the last one to connect (a site reads its OFFER whatever the
 * others do).  256 steps are a few milliseconds.
 */
#define STEPS_PER_TURN 256

/*
 * A full backlog, or no listener yet: c joins the worker's line of sockets
 * waiting to connect, and only the line's head tries again (after
 * s->line_ms), the rest following while connects succeed (drain_line).
 * Each socket retrying on its own timer made 85,000-109,000
 * socket/connect/close triples for 10,000 sockets while `kinject run'
 * loaded its credentials (make bench starts both together): 12 us of sim
 * CPU per device of a 40,000-device run.  A site, and the pump's client
 * (its blocking connect waits in the kernel), connects about once.
 */
static void join_line(struct sim *s, struct conn *c)
{
	if (!s->n_line)
		s->line_at_ms = kj_now_ms() + s->line_ms;
	s->line[(s->line_head + s->n_line++) % s->o->sockets] = c->idx;
}

static void drain_line(struct sim *s)
{
	for (unsigned n = 0; s->n_line && !s->stop; n++) {
		struct conn *c = &s->conns[s->line[s->line_head]];

		if (n == STEPS_PER_TURN) {
			s->line_at_ms = kj_now_ms(); /* the rest next turn */
			return;
		}
		s->line_head = (s->line_head + 1) % s->o->sockets;
		s->n_line--;
		if (c->state != C_IDLE || try_connect(s, c))
			continue;
		/* still full: c stays at the head */
		s->line_head = (s->line_head + s->o->sockets - 1) %
			       s->o->sockets;
		s->n_line++;
		s->line_at_ms = kj_now_ms() + s->line_ms;
		return;
	}
}

static void do_connect(struct sim *s, struct conn *c)
{
	/* behind others in line: wait for them */
	if (s->n_line || !try_connect(s, c))
		join_line(s, c);
}

static void connect_done(struct sim *s, struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		return connect_failed(s, c, err);
	on_connected(s, c);
}

/* ---- the loop ---- */

static void on_timer(struct sim *s, struct conn *c, enum timer_kind kind)
{
	switch (kind) {
	case T_CONNECT:
		if (c->state == C_IDLE && !s->stop)
			do_connect(s, c);
		break;
	case T_PROGRAM:
		if (c->state == C_PROGRAM)
			kj_sim_send_readback(s, c);
		break;
	case T_SLOW_READ:
		kj_sim_update_events(s, c);
		break;
	case T_DRIBBLE:
		kj_sim_flush(s, c);
		break;
	case T_RETRY:
		if (c->state == C_PARKED && c->fd >= 0 && !s->stop)
			kj_sim_start_device(s, c);
		break;
	default:
		break;
	}
}

static void fire_timers(struct sim *s)
{
	uint64_t now = kj_now_ms();
	unsigned n = 0;

	while (s->n_heap && s->heap[0].at_ms <= now && !s->stop &&
	       n++ < STEPS_PER_TURN) {
		struct timer t = kj_sim_timer_pop(s);
		struct conn *c = &s->conns[t.idx];
		enum timer_kind kind = c->timer_kind;

		if (t.gen != c->timer_gen)
			continue;
		c->timer_kind = T_NONE;
		on_timer(s, c, kind);
	}
	if (s->n_line && s->line_at_ms <= now && !s->stop)
		drain_line(s);
}

static int next_timeout_ms(struct sim *s)
{
	uint64_t now = kj_now_ms(), at = now + 1000;

	if (s->n_heap && s->heap[0].at_ms < at)
		at = s->heap[0].at_ms;
	if (s->n_line && s->line_at_ms < at)
		at = s->line_at_ms;
	return at <= now ? 0 : (int)(at - now);
}

/* Waiting on the appliance for longer than --timeout is an error. */
static void scan_stalls(struct sim *s)
{
	uint64_t now = kj_now_ms(), limit = (uint64_t)s->o->timeout_s * 1000;

	for (unsigned i = 0; i < s->o->sockets; i++) {
		struct conn *c = &s->conns[i];
		bool waiting = c->state == C_CONNECTING ||
			       c->state == C_WAIT_OFFER ||
			       c->state == C_DATA ||
			       c->state == C_WAIT_RESULT ||
			       c->state == C_HOSTILE;

		if (!waiting || c->fd < 0 || now - c->last_progress_ms < limit)
			continue;
		kj_log_ratelimited(&s->rl, KJ_LOG_ERR,
				   "sim: socket %u: no progress for %u s",
				   s->o->socket_base + i, s->o->timeout_s);
		s->r->err_stalled++;
		if (c->state == C_HOSTILE && !c->reacted)
			kj_sim_hostile_answered(s, false);
		kj_sim_fail_device(s, c, "stalled");
	}
}

/* Over all workers (struct sim_shared). */
static bool target_reached(const struct sim *s)
{
	return s->o->devices && s->sh->normal_sockets &&
	       atomic_load(&s->sh->committed) >= s->o->devices;
}

static bool finished(struct sim *s)
{
	unsigned live = 0;

	/* --devices 0: until a signal (background noise for tests) */
	if (target_reached(s) || atomic_load(&s->sh->stop))
		return true;
	/* all hostile: that many attacks answered (or half-open held) */
	if (s->o->devices && !s->sh->normal_sockets &&
	    atomic_load(&s->sh->hostile_done) >= s->o->devices)
		return true;
	/* hostile sockets go on while any worker's normal ones do */
	if (s->sh->normal_sockets)
		return !atomic_load(&s->sh->normal_live);
	for (unsigned i = 0; i < s->o->sockets; i++) {
		const struct conn *c = &s->conns[i];

		/* --devices 0 holds half-open sockets until a signal */
		if (c->state != C_DONE &&
		    (c->state != C_SILENT || !s->o->devices))
			live++;
	}
	return live == 0;
}

static void handle(struct sim *s, struct conn *c, uint32_t ev)
{
	if (c->fd < 0)
		return;
	if (c->state == C_CONNECTING) {
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			connect_done(s, c);
		return;
	}
	if (c->state == C_TLS)
		return kj_sim_tls_step(s, c);
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		kj_sim_do_read(s, c);
	if (c->fd >= 0 && (ev & EPOLLOUT))
		kj_sim_flush(s, c);
}

/* Another worker or a signal: the run may have ended, a unit be free. */
static void on_wake(struct sim *s)
{
	uint64_t n;

	(void)!read(s->wake_fd, &n, sizeof(n));
	s->socket_ended = true; /* look at the end condition now */
	if (!s->stop)
		kj_sim_wake_parked(s);
}

static int loop(struct sim *s)
{
	struct epoll_event ev[512];
	uint64_t last_scan = kj_now_ms(), last_check = 0;

	while (!s->stop && !kj_sim_signalled) {
		int n = epoll_wait(s->ep, ev, KJ_ARRAY_SIZE(ev),
				   next_timeout_ms(s));
		uint64_t now;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			kj_err("sim: epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n && !s->stop; i++) {
			if (ev[i].data.ptr == s)
				on_wake(s);
			else
				handle(s, ev[i].data.ptr, ev[i].events);
		}
		fire_timers(s);
		now = kj_now_ms();
		if (now - last_scan >= 1000) {
			scan_stalls(s);
			last_scan = now;
		}
		/* cheap test first; the full scan at most every 10 ms */
		if (target_reached(s))
			break;
		if (now - last_check >= 10 || !n || s->socket_ended) {
			last_check = now;
			s->socket_ended = false;
			if (finished(s))
				break;
		}
	}
	s->r->interrupted = kj_sim_signalled;
	return 0;
}

static int sim_setup(struct sim *s)
{
	const struct kj_sim_opts *o = s->o;
	struct epoll_event wake = { .events = EPOLLIN, .data.ptr = s };

	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (s->ep < 0) {
		kj_err("sim: epoll_create1: %s", strerror(errno));
		return -errno;
	}
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake_fd, &wake) < 0) {
		kj_err("sim: epoll_ctl(eventfd): %s", strerror(errno));
		return -errno;
	}
	s->conns = calloc(o->sockets, sizeof(*s->conns));
	s->parked = calloc(o->sockets, sizeof(*s->parked));
	s->line = calloc(o->sockets, sizeof(*s->line));
	s->rx = malloc(RX_BUF);
	s->cap_latency = o->devices && o->devices < (1u << 26) ?
				 o->devices : (1u << 22);
	s->r->latency_us = calloc(s->cap_latency + 1, sizeof(uint32_t));
	if (!s->conns || !s->parked || !s->line || !s->rx ||
	    !s->r->latency_us) {
		kj_err("sim: out of memory for %u sockets", o->sockets);
		free(s->conns); /* its fds are not set: nothing to close */
		s->conns = NULL;
		return -ENOMEM;
	}
	s->rng = o->rng_seed;
	s->rl = (struct kj_ratelimit)KJ_RATELIMIT_INIT(1000, 10);
	s->normal_sockets = o->hostile ? o->sockets - o->hostile_sockets
				       : o->sockets;
	s->t0_ms = kj_now_ms();
	s->t0_us = kj_sim_now_us();
	for (unsigned i = 0; i < o->sockets; i++) {
		struct conn *c = &s->conns[i];

		c->fd = -1;
		c->idx = i;
		c->slow = i < o->slow_sockets;
		c->hostile = o->hostile && i >= s->normal_sockets;
		c->state = C_IDLE;
		c->retry_until_ms = s->t0_ms + (uint64_t)o->connect_wait_s * 1000;
		/* spread the initial connects over a few milliseconds */
		kj_sim_arm(s, c, T_CONNECT, i / 512);
	}
	return 0;
}

int kj_sim_worker_run(struct sim *s)
{
	int rc = sim_setup(s);

	if (rc < 0) {
		kj_sim_halt(s);
		return rc;
	}
	rc = loop(s);
	if (s->offered)
		kj_sim_busy_end(s);
	return rc;
}

void kj_sim_worker_free(struct sim *s)
{
	for (unsigned i = 0; s->conns && i < s->o->sockets; i++) {
		kj_sim_close_fd(s, &s->conns[i], false);
		kj_sim_dev_end(&s->conns[i]);
	}
	if (s->ep >= 0)
		close(s->ep);
	free(s->conns);
	free(s->parked);
	free(s->line);
	free(s->rx);
	free(s->heap);
	free(s->busy);
	s->conns = NULL;
	s->ep = -1;
}

void kj_sim_result_free(struct kj_sim_result *r)
{
	free(r->latency_us);
	r->latency_us = NULL;
	r->n_latency = 0;
}

static int cmp_lat(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a & ~KJ_SIM_LAT_FIRST,
		 y = *(const uint32_t *)b & ~KJ_SIM_LAT_FIRST;

	return x < y ? -1 : x > y;
}

/* nearest rank, 1..n */
static size_t rank_of(double p, size_t n)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	return rank < 1 ? 1 : rank > n ? n : rank;
}

uint32_t kj_sim_percentile(struct kj_sim_result *r, double p)
{
	if (!r->n_latency)
		return 0;
	qsort(r->latency_us, r->n_latency, sizeof(uint32_t), cmp_lat);
	return r->latency_us[rank_of(p, r->n_latency) - 1] &
	       ~KJ_SIM_LAT_FIRST;
}

uint32_t kj_sim_percentile_steady(struct kj_sim_result *r, double p,
				  size_t *n)
{
	size_t steady = 0, rank, seen = 0;

	for (size_t i = 0; i < r->n_latency; i++)
		steady += !(r->latency_us[i] & KJ_SIM_LAT_FIRST);
	*n = steady;
	if (!steady)
		return 0;
	qsort(r->latency_us, r->n_latency, sizeof(uint32_t), cmp_lat);
	rank = rank_of(p, steady);
	for (size_t i = 0; i < r->n_latency; i++)
		if (!(r->latency_us[i] & KJ_SIM_LAT_FIRST) && ++seen == rank)
			return r->latency_us[i];
	return 0; /* not reached: rank <= steady */
}

int kj_sim_parse_addr(const char *spec, struct kj_sim_opts *o)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char host[256], *port;
	int rc;

	o->connect = spec;
	memset(&o->addr, 0, sizeof(o->addr));
	if (!strncmp(spec, "unix:", 5)) {
		struct sockaddr_un *un = (struct sockaddr_un *)&o->addr;
		size_t n = strlen(spec + 5);

		if (!n || n >= sizeof(un->sun_path)) {
			kj_err("--connect: `%s': unix socket path must be "
			       "1..%zu bytes", spec, sizeof(un->sun_path) - 1);
			return -EINVAL;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, spec + 5, n);
		o->addr_len = (socklen_t)(offsetof(struct sockaddr_un,
						   sun_path) + n + 1);
		return 0;
	}
	/* tls:HOST:PORT: any address (PROTOCOL.md "TLS"). */
	o->tls = !strncmp(spec, "tls:", 4);
	if ((strncmp(spec, "tcp:", 4) && !o->tls) ||
	    strlen(spec + 4) >= sizeof(host))
		goto usage;
	strcpy(host, spec + 4);
	port = strrchr(host, ':');
	if (!port || port == host || !port[1])
		goto usage;
	*port++ = '\0';
	if (host[0] == '[' && port[-2] == ']') {
		port[-2] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		kj_err("--connect: `%s': %s", spec, gai_strerror(rc));
		return -EINVAL;
	}
	memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
	o->addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	if (!o->tls && !(o->addr.ss_family == AF_INET &&
	      (ntohl(((struct sockaddr_in *)&o->addr)->sin_addr.s_addr) >>
	       24) == 127) &&
	    !(o->addr.ss_family == AF_INET6 &&
	      IN6_IS_ADDR_LOOPBACK(
		      &((struct sockaddr_in6 *)&o->addr)->sin6_addr))) {
		kj_err("--connect: `%s': plain TCP is only for loopback; "
		       "other addresses need TLS 1.3: --connect tls:HOST:PORT "
		       "with --cert, --key, --ca (PROTOCOL.md)", spec);
		return -EINVAL;
	}
	return 0;
usage:
	kj_err("--connect: `%s': expected unix:PATH, tcp:HOST:PORT or "
	       "tls:HOST:PORT", spec);
	return -EINVAL;
}
