// SPDX-License-Identifier: Apache-2.0
/*
 * kinject sim: simulated programming sockets, one epoll loop (sim.h).
 *
 * Each connection is a small state machine fed by kj_frame_feed (site
 * role, DATA streamed straight into the readback hash: nothing buffered
 * beyond one small frame per connection, so 10,000 sockets fit easily).
 * Timers (programming delay, slow reads, slow-loris dribble, reconnects)
 * live in one binary heap; a timer is cancelled by bumping its
 * connection's generation.  No file descriptor is opened while a batch of
 * epoll events is being handled: reconnects go through a timer, so a
 * stale event can never reach a new connection.
 */
#include "sim.h"
#include "log.h"
#include "readback.h"
#include "util.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RX_BUF (256 * 1024)
#define SLOW_READ_BYTES 4096
#define OUT_CAP 1024
#define GARBAGE_BYTES 1024
#define RECONNECT_MS 20
#define RETRY_MS 50
#define SIM_ABORT_MSG "kinject sim: simulated programming failure"

enum conn_state {
	C_IDLE,	       /* no connection; a T_CONNECT timer is pending */
	C_CONNECTING,  /* non-blocking connect in progress */
	C_PARKED,      /* connected, no device: the COMMIT budget is taken */
	C_WAIT_OFFER,  /* HELLO sent */
	C_DATA,	       /* receiving DATA */
	C_PROGRAM,     /* all bytes in, simulated programming time */
	C_WAIT_RESULT, /* READBACK sent */
	C_HOSTILE,     /* attack sent, waiting for the appliance to react */
	C_SILENT,      /* half-open: never looked at again */
	C_DONE,	       /* socket finished */
};

enum fault {
	F_NONE,
	F_WRONG_HWREV,
	F_DUPLICATE,
	F_DISCONNECT,
	F_SITE_ABORT,
	F_BAD_READBACK,
};

enum timer_kind { T_NONE, T_CONNECT, T_PROGRAM, T_SLOW_READ, T_DRIBBLE };

struct conn {
	int fd;
	uint32_t idx;
	uint8_t state, fault, timer_kind;
	bool hostile;	  /* one of the last --hostile-sockets */
	bool slow;	  /* one of the first --slow-sockets */
	bool ever_connected;
	bool in_device;	  /* a device attempt is open */
	bool surprise;	  /* appliance accepted what it should refuse */
	bool reacted;	  /* hostile: appliance reacted this attempt */
	bool parked_listed;
	bool registered;  /* fd is in the epoll set */
	uint32_t events;  /* current epoll interest */
	uint32_t timer_gen;
	uint32_t dev_seq;
	uint64_t t_hello_us;
	uint64_t last_progress_ms;
	uint64_t attempt;
	uint32_t fw_size, cred_size, fw_got, cred_got;
	uint64_t cut_at;
	uint8_t uid_len;
	uint8_t uid[KJ_UID_MAX];
	uint8_t digest[KJ_DIGEST_LEN];
	uint16_t out_len, out_off;
	uint8_t out[OUT_CAP];
	char serial[KJ_STR8_MAX + 1];
	struct kj_readback rb;
	struct kj_frame_parser parser;
};

struct timer {
	uint64_t at_ms;
	uint32_t idx, gen;
};

struct sim {
	const struct kj_sim_opts *o;
	struct kj_sim_result *r;
	int ep;
	struct conn *conns;
	uint8_t *rx;
	struct timer *heap;
	size_t n_heap, cap_heap;
	uint32_t *parked;
	size_t n_parked;
	size_t cap_latency;
	uint64_t inflight; /* normal devices open */
	uint64_t rng;
	uint64_t t0_ms, t0_us;
	unsigned normal_sockets;
	bool stop;
	bool appliance_ending; /* a QUOTA or STOPPED was seen */
	bool have_last_uid;
	uint8_t last_uid_len;
	uint8_t last_uid[KJ_UID_MAX];
	struct kj_ratelimit rl;
};

static volatile sig_atomic_t sim_signalled;

static void on_signal(int sig)
{
	(void)sig;
	sim_signalled = 1;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* splitmix64: fault draws and garbage bytes, reproducible from a seed. */
static uint64_t rnd(struct sim *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rnd_unit(struct sim *s)
{
	return (double)(rnd(s) >> 11) * 0x1p-53;
}

/* ---- timers ---- */

static bool timer_less(const struct timer *a, const struct timer *b)
{
	return a->at_ms < b->at_ms;
}

static int heap_push(struct sim *s, struct timer t)
{
	size_t i;

	if (s->n_heap == s->cap_heap) {
		size_t cap = s->cap_heap ? 2 * s->cap_heap : 1024;
		struct timer *h = realloc(s->heap, cap * sizeof(*h));

		if (!h) {
			kj_err("sim: out of memory for timers");
			return -ENOMEM;
		}
		s->heap = h;
		s->cap_heap = cap;
	}
	i = s->n_heap++;
	while (i && timer_less(&t, &s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = t;
	return 0;
}

static struct timer heap_pop(struct sim *s)
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

static void arm(struct sim *s, struct conn *c, enum timer_kind kind,
		unsigned ms)
{
	struct timer t = { kj_now_ms() + ms, c->idx, ++c->timer_gen };

	c->timer_kind = (uint8_t)kind;
	if (heap_push(s, t) < 0)
		s->stop = true;
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
		s->stop = true;
		return;
	}
	c->registered = true;
	c->events = ev;
}

/* Epoll interest for the connection's state. */
static void update_events(struct sim *s, struct conn *c)
{
	uint32_t ev = EPOLLIN;

	if (c->fd < 0 || c->state == C_SILENT)
		return;
	if (c->state == C_CONNECTING)
		ev = EPOLLOUT;
	else if (c->timer_kind == T_SLOW_READ)
		ev = 0;
	if (c->out_off < c->out_len && c->timer_kind != T_DRIBBLE)
		ev |= EPOLLOUT;
	set_events(s, c, ev);
}

static void close_fd(struct sim *s, struct conn *c, bool reset)
{
	(void)s;
	if (c->fd < 0)
		return;
	if (reset) {
		/* Vanish abruptly: RST on TCP instead of an orderly FIN. */
		struct linger lg = { 1, 0 };

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
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
static void reconnect(struct sim *s, struct conn *c, bool reset,
		      unsigned delay_ms)
{
	close_fd(s, c, reset);
	c->state = C_IDLE;
	arm(s, c, T_CONNECT, delay_ms);
}

static void finish_socket(struct sim *s, struct conn *c, bool failed)
{
	close_fd(s, c, false);
	c->state = C_DONE;
	if (failed)
		s->r->sockets_failed++;
	else
		s->r->sockets_ended++;
}

static int queue_out(struct conn *c, const uint8_t *b, int n)
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

static void on_eof(struct sim *s, struct conn *c, int err);

/* Write what is pending; slow-loris sockets dribble one byte per tick. */
static void flush(struct sim *s, struct conn *c)
{
	bool dribble = c->hostile && s->o->hostile == KJ_SIM_SLOW_LORIS &&
		       c->state == C_WAIT_OFFER;

	while (c->fd >= 0 && c->out_off < c->out_len) {
		size_t n = dribble ? 1 : (size_t)(c->out_len - c->out_off);
		ssize_t w = send(c->fd, c->out + c->out_off, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			on_eof(s, c, errno);
			return;
		}
		c->out_off += (uint16_t)w;
		c->last_progress_ms = kj_now_ms();
		if (dribble && c->out_off < c->out_len) {
			arm(s, c, T_DRIBBLE, s->o->slow_loris_ms);
			break;
		}
	}
	update_events(s, c);
}

/* ---- outcomes ---- */

static void json_str(FILE *f, const char *str)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void log_device(struct sim *s, struct conn *c, const char *outcome,
		       bool intended, const struct kj_commit *cm)
{
	FILE *f = s->o->device_log;
	char hex[2 * KJ_UID_MAX + 1];

	if (!f)
		return;
	kj_hex_encode(c->uid, c->uid_len, hex);
	fprintf(f, "{\"socket\":%u,\"uid\":\"%s\",\"outcome\":\"%s\","
		   "\"intended\":%s", s->o->socket_base + c->idx, hex, outcome,
		intended ? "true" : "false");
	if (c->attempt || cm) {
		fprintf(f, ",\"attempt\":%llu,\"serial\":",
			(unsigned long long)c->attempt);
		json_str(f, c->serial);
	}
	if (cm) {
		kj_hex_encode(c->digest, KJ_DIGEST_LEN, hex);
		fprintf(f, ",\"leaf_index\":%llu,\"digest\":\"%s\"",
			(unsigned long long)cm->leaf_index, hex);
	}
	fputs("}\n", f);
}

static void start_device(struct sim *s, struct conn *c);

/* Wake a parked socket when a device failed and the budget allows. */
static void wake_parked(struct sim *s)
{
	while (s->n_parked &&
	       (!s->o->devices ||
		s->r->committed + s->inflight < s->o->devices)) {
		struct conn *c = &s->conns[s->parked[--s->n_parked]];

		c->parked_listed = false;
		if (c->state == C_PARKED && c->fd >= 0)
			start_device(s, c);
	}
}

/*
 * Close the open device attempt: count it, log it.  The caller decides
 * what the socket does next.
 */
static void end_device(struct sim *s, struct conn *c, const char *outcome,
		       bool intended, const struct kj_commit *cm)
{
	struct kj_sim_result *r = s->r;

	if (!c->in_device)
		return;
	c->in_device = false;
	kj_readback_wipe(&c->rb);
	if (c->surprise)
		intended = false;
	if (c->hostile) {
		if (intended)
			r->hostile_intended++;
		else
			r->hostile_unexpected++;
	} else {
		s->inflight--;
		if (intended)
			r->intended++;
		else
			r->unexpected++;
	}
	log_device(s, c, outcome, intended, cm);
	if (!cm && !c->hostile)
		wake_parked(s);
}

/* Unexpected outcome: a real site stops and calls the operator. */
static void fail_device(struct sim *s, struct conn *c, const char *outcome)
{
	end_device(s, c, outcome, false, NULL);
	finish_socket(s, c, true);
}

/* The appliance broke PROTOCOL.md: say so to it, as a site would. */
static void appliance_bad(struct sim *s, struct conn *c, const char *why)
{
	uint8_t b[KJ_ABORT_FRAME_MAX];
	int n = kj_abort_build(b, sizeof(b), KJ_ABORT_PROTOCOL, why);

	kj_log_ratelimited(&s->rl, KJ_LOG_ERR,
			   "sim: socket %u: appliance broke the protocol: %s",
			   s->o->socket_base + c->idx, why);
	s->r->err_appliance++;
	if (n > 0 && c->fd >= 0)
		(void)!send(c->fd, b, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (c->hostile && !c->in_device)
		s->r->hostile_unexpected++;
	fail_device(s, c, "appliance_protocol_error");
}

/* ---- one device ---- */

static enum fault draw_fault(struct sim *s, struct conn *c)
{
	const struct kj_sim_opts *o = s->o;
	double x;

	if (c->hostile)
		return o->hostile == KJ_SIM_VANISH ? F_DISCONNECT : F_NONE;
	x = rnd_unit(s);
	if ((x -= o->wrong_hwrev_rate) < 0)
		return F_WRONG_HWREV;
	if ((x -= o->duplicate_rate) < 0)
		return s->have_last_uid ? F_DUPLICATE : F_NONE;
	if ((x -= o->disconnect_rate) < 0)
		return F_DISCONNECT;
	if ((x -= o->site_abort_rate) < 0)
		return F_SITE_ABORT;
	if ((x -= o->bad_readback_rate) < 0)
		return F_BAD_READBACK;
	return F_NONE;
}

static void count_fault(struct kj_sim_result *r, enum fault f)
{
	switch (f) {
	case F_WRONG_HWREV:
		r->wrong_hwrevs++;
		break;
	case F_DUPLICATE:
		r->duplicates++;
		break;
	case F_DISCONNECT:
		r->disconnects++;
		break;
	case F_SITE_ABORT:
		r->site_aborts++;
		break;
	case F_BAD_READBACK:
		r->bad_readbacks++;
		break;
	default:
		break;
	}
}

/* uid = seed:8 || socket:u32be || device number on the socket:u32be */
static void make_uid(struct sim *s, struct conn *c)
{
	if (c->fault == F_DUPLICATE) {
		memcpy(c->uid, s->last_uid, s->last_uid_len);
		c->uid_len = s->last_uid_len;
		return;
	}
	kj_put_u64be(c->uid, s->o->uid_seed);
	kj_put_u32be(c->uid + 8, s->o->socket_base + c->idx);
	kj_put_u32be(c->uid + 12, c->dev_seq);
	c->uid_len = 16;
}

static void start_device(struct sim *s, struct conn *c)
{
	struct kj_hello h = { .version = KJ_PROTO_VERSION };
	uint8_t b[KJ_HELLO_FRAME_MAX];

	if (!c->hostile && s->o->devices &&
	    s->r->committed + s->inflight >= s->o->devices) {
		c->state = C_PARKED;
		kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
		if (!c->parked_listed) {
			c->parked_listed = true;
			s->parked[s->n_parked++] = c->idx;
		}
		update_events(s, c);
		return;
	}
	c->dev_seq++;
	c->fault = (uint8_t)draw_fault(s, c);
	c->surprise = false;
	c->attempt = 0;
	c->serial[0] = '\0';
	make_uid(s, c);
	count_fault(s->r, c->fault);
	if (c->hostile) {
		s->r->hostile_attempts++;
	} else {
		s->r->attempted++;
		s->inflight++;
	}
	c->in_device = true;
	c->t_hello_us = now_us();
	snprintf(h.site_id, sizeof(h.site_id), "%s", s->o->site);
	snprintf(h.hwrev, sizeof(h.hwrev), "%s",
		 c->fault == F_WRONG_HWREV ? "sim-wrong-hwrev" : s->o->hwrev);
	h.socket = (uint16_t)(s->o->socket_base + c->idx);
	h.uid_len = c->uid_len;
	memcpy(h.uid, c->uid, c->uid_len);
	c->state = C_WAIT_OFFER;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_OFFER) |
					       KJ_MSG_BIT(KJ_MSG_ABORT));
	if (queue_out(c, b, kj_hello_build(b, sizeof(b), &h)) < 0) {
		kj_err("sim: cannot build HELLO (--site/--hwrev too long?)");
		s->stop = true;
		return;
	}
	flush(s, c);
}

/* The next device on this connection, after an intended outcome. */
static void next_device(struct sim *s, struct conn *c)
{
	if (s->stop || c->state == C_DONE)
		return;
	if (c->hostile && s->o->hostile == KJ_SIM_HALF_OPEN)
		return;
	start_device(s, c);
}

static void send_readback(struct sim *s, struct conn *c)
{
	uint8_t b[KJ_ABORT_FRAME_MAX];
	int n;

	kj_readback_final(&c->rb, c->digest);
	if (c->fault == F_SITE_ABORT) {
		n = kj_abort_build(b, sizeof(b), KJ_ABORT_INTERNAL,
				   SIM_ABORT_MSG);
		(void)!queue_out(c, b, n);
		end_device(s, c, "site_abort", true, NULL);
		next_device(s, c);
		if (c->fd >= 0 && c->state != C_WAIT_OFFER)
			flush(s, c);
		return;
	}
	if (c->fault == F_BAD_READBACK)
		c->digest[0] ^= 0x01;
	n = kj_readback_build(b, sizeof(b), c->digest);
	(void)!queue_out(c, b, n);
	c->state = C_WAIT_RESULT;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_COMMIT) |
					       KJ_MSG_BIT(KJ_MSG_ABORT));
	flush(s, c);
}

static void data_done(struct sim *s, struct conn *c)
{
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
	if (s->o->program_delay_ms) {
		c->state = C_PROGRAM;
		arm(s, c, T_PROGRAM, s->o->program_delay_ms);
		update_events(s, c);
		return;
	}
	send_readback(s, c);
}

static void on_offer(struct sim *s, struct conn *c, const struct kj_frame *f)
{
	struct kj_offer o;
	const char *why;
	uint64_t total;

	if (kj_offer_parse(f->body, f->len, &o, &why) < 0)
		return appliance_bad(s, c, why);
	/* It should have refused this device before OFFER. */
	if (c->fault == F_WRONG_HWREV || c->fault == F_DUPLICATE)
		c->surprise = true;
	c->attempt = o.attempt;
	memcpy(c->serial, o.serial, sizeof(c->serial));
	c->fw_size = o.fw_size;
	c->cred_size = o.cred_size;
	c->fw_got = c->cred_got = 0;
	kj_readback_begin(&c->rb);
	if (!c->fw_size)
		kj_readback_add_uid(&c->rb, c->uid, c->uid_len);
	if (c->hostile && s->o->hostile == KJ_SIM_HALF_OPEN) {
		/* Stop reading and writing for good, keep the socket. */
		epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
		c->registered = false;
		c->state = C_SILENT;
		end_device(s, c, "half_open", true, NULL);
		return;
	}
	total = (uint64_t)o.fw_size + o.cred_size;
	c->cut_at = total ? rnd(s) % total : 0;
	c->state = C_DATA;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_DATA) |
					       KJ_MSG_BIT(KJ_MSG_ABORT));
	if (c->fault == F_DISCONNECT && !total) {
		end_device(s, c, "disconnected", true, NULL);
		return reconnect(s, c, true, RECONNECT_MS);
	}
	if (!total)
		data_done(s, c);
}

/* PROTOCOL.md: contiguous offsets from 0, firmware before credential. */
static void on_data(struct sim *s, struct conn *c, const struct kj_frame *f)
{
	if (f->stream == 0) {
		if (f->offset != c->fw_got ||
		    f->len > c->fw_size - c->fw_got)
			return appliance_bad(s, c, "firmware DATA out of "
						   "order or beyond fw_size");
		kj_readback_update(&c->rb, f->body, f->len);
		c->fw_got += f->len;
		if (c->fw_got == c->fw_size)
			kj_readback_add_uid(&c->rb, c->uid, c->uid_len);
	} else {
		if (c->fw_got != c->fw_size || f->offset != c->cred_got ||
		    f->len > c->cred_size - c->cred_got)
			return appliance_bad(s, c, "credential DATA out of "
						   "order or beyond cred_size");
		kj_readback_update(&c->rb, f->body, f->len);
		c->cred_got += f->len;
	}
	if (c->fault == F_DISCONNECT &&
	    (uint64_t)c->fw_got + c->cred_got > c->cut_at) {
		end_device(s, c, "disconnected", true, NULL);
		return reconnect(s, c, true, RECONNECT_MS);
	}
	if (c->fw_got == c->fw_size && c->cred_got == c->cred_size)
		data_done(s, c);
}

static void on_commit(struct sim *s, struct conn *c, const struct kj_frame *f)
{
	struct kj_sim_result *r = s->r;
	struct kj_commit cm;
	const char *why;

	if (kj_commit_parse(f->body, f->len, &cm, &why) < 0)
		return appliance_bad(s, c, why);
	if (cm.attempt != c->attempt)
		return appliance_bad(s, c, "COMMIT attempt differs from "
					   "OFFER attempt");
	if (c->fault == F_BAD_READBACK) {
		kj_log_ratelimited(&s->rl, KJ_LOG_ERR,
				   "sim: socket %u: appliance COMMITted a "
				   "wrong readback digest",
				   s->o->socket_base + c->idx);
		r->err_appliance++;
		return fail_device(s, c, "committed_bad_readback");
	}
	if (c->surprise)
		return fail_device(s, c, "committed_refusable");
	if (!c->hostile) {
		r->committed++;
		if (r->n_latency < s->cap_latency)
			r->latency_us[r->n_latency++] =
				(uint32_t)(now_us() - c->t_hello_us);
		memcpy(s->last_uid, c->uid, c->uid_len);
		s->last_uid_len = c->uid_len;
		s->have_last_uid = true;
	}
	end_device(s, c, "committed", true, &cm);
	next_device(s, c);
}

static bool abort_intended(struct sim *s, struct conn *c, unsigned code)
{
	if (s->o->expect_mask & (1u << code))
		return true;
	switch (code) {
	case KJ_ABORT_QUOTA:
	case KJ_ABORT_STOPPED:
		return true; /* the job is ending: not a device failure */
	case KJ_ABORT_LOCKED_OUT:
		return c->fault == F_WRONG_HWREV;
	case KJ_ABORT_DUPLICATE:
		return c->fault == F_DUPLICATE;
	case KJ_ABORT_READBACK:
		return c->fault == F_BAD_READBACK;
	case KJ_ABORT_TIMEOUT:
	case KJ_ABORT_PROTOCOL:
		return c->hostile; /* what an attack should get */
	default:
		return false;
	}
}

static void on_abort(struct sim *s, struct conn *c, const struct kj_frame *f)
{
	struct kj_abort a;
	const char *why;
	bool intended;
	char outcome[32];

	if (kj_abort_parse(f->body, f->len, &a, &why) < 0)
		return appliance_bad(s, c, why);
	s->r->aborts[a.code]++;
	intended = abort_intended(s, c, a.code);
	if (a.code == KJ_ABORT_QUOTA || a.code == KJ_ABORT_STOPPED)
		s->appliance_ending = true;
	if (!intended)
		kj_log_ratelimited(&s->rl, KJ_LOG_WARN,
				   "sim: socket %u: ABORT %s: %s",
				   s->o->socket_base + c->idx,
				   kj_abort_name(a.code), a.message);
	if (c->state == C_HOSTILE) {
		if (!c->reacted) {
			c->reacted = true;
			if (intended)
				s->r->hostile_intended++;
			else
				s->r->hostile_unexpected++;
		}
		return; /* the appliance closes next */
	}
	snprintf(outcome, sizeof(outcome), "abort_%s", kj_abort_name(a.code));
	end_device(s, c, outcome, intended, NULL);
	switch (a.code) {
	case KJ_ABORT_QUOTA:
	case KJ_ABORT_STOPPED:
	case KJ_ABORT_UNAUTHORIZED:
		/* Refusals for good: this socket is done. */
		return finish_socket(s, c, !intended);
	case KJ_ABORT_PROTOCOL:
	case KJ_ABORT_TIMEOUT:
		/* The appliance closes after these (PROTOCOL.md). */
		if (!intended)
			return finish_socket(s, c, true);
		return reconnect(s, c, false, RECONNECT_MS);
	default:
		if (!intended)
			return finish_socket(s, c, true);
		next_device(s, c);
	}
}

static void on_frame(struct sim *s, struct conn *c, const struct kj_frame *f)
{
	switch (f->type) {
	case KJ_MSG_OFFER:
		return on_offer(s, c, f);
	case KJ_MSG_DATA:
		return on_data(s, c, f);
	case KJ_MSG_COMMIT:
		return on_commit(s, c, f);
	case KJ_MSG_ABORT:
		return on_abort(s, c, f);
	default:
		return appliance_bad(s, c, "unexpected frame type");
	}
}

/* The appliance closed (err 0) or reset (err = errno) the connection. */
static void on_eof(struct sim *s, struct conn *c, int err)
{
	switch (c->state) {
	case C_HOSTILE:
		if (!c->reacted)
			s->r->hostile_intended++; /* closed on the attacker */
		c->reacted = true;
		return reconnect(s, c, false, RECONNECT_MS);
	case C_PARKED:
		/* Idle connection closed (HELLO timeout, job end): retry. */
		return reconnect(s, c, false, RECONNECT_MS);
	case C_WAIT_OFFER:
		if (c->hostile && s->o->hostile == KJ_SIM_SLOW_LORIS) {
			end_device(s, c, "slow_loris_dropped", true, NULL);
			return reconnect(s, c, false, RECONNECT_MS);
		}
		break;
	default:
		break;
	}
	if (!c->in_device) {
		/* Between devices (after ABORT PROTOCOL/TIMEOUT it closes). */
		return reconnect(s, c, false, RECONNECT_MS);
	}
	kj_log_ratelimited(&s->rl, KJ_LOG_ERR,
			   "sim: socket %u: appliance %s the connection "
			   "mid-device%s%s", s->o->socket_base + c->idx,
			   err ? "reset" : "closed", err ? ": " : "",
			   err ? strerror(err) : "");
	s->r->err_closed++;
	fail_device(s, c, "closed_by_appliance");
}

static void do_read(struct sim *s, struct conn *c)
{
	size_t cap = c->slow ? SLOW_READ_BYTES : RX_BUF, pos = 0;
	int fd = c->fd;
	ssize_t n = recv(fd, s->rx, cap, 0);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			on_eof(s, c, errno);
		return;
	}
	if (n == 0)
		return on_eof(s, c, 0);
	s->r->bytes_received += (uint64_t)n;
	c->last_progress_ms = kj_now_ms();
	while (pos < (size_t)n && c->fd == fd && c->state != C_SILENT) {
		struct kj_frame f;
		size_t used;
		int rc = kj_frame_feed(&c->parser, s->rx + pos,
				       (size_t)n - pos, &used, &f);

		pos += used;
		if (rc < 0)
			return appliance_bad(s, c, c->parser.why);
		if (rc == KJ_FEED_MORE)
			break;
		on_frame(s, c, &f);
	}
	if (c->fd == fd && c->slow && s->o->slow_read_ms &&
	    c->state == C_DATA) {
		arm(s, c, T_SLOW_READ, s->o->slow_read_ms);
		update_events(s, c);
	}
}

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
			uint64_t x = rnd(s);

			memcpy(b + i, &x, 8);
		}
	}
	(void)!queue_out(c, b, (int)n);
	flush(s, c);
}

static void on_connected(struct sim *s, struct conn *c)
{
	int one = 1;

	c->ever_connected = true;
	c->last_progress_ms = kj_now_ms();
	if (s->o->addr.ss_family != AF_UNIX)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->hostile && (s->o->hostile == KJ_SIM_GARBAGE ||
			   s->o->hostile == KJ_SIM_HUGE_LENGTH)) {
		c->state = C_HOSTILE;
		update_events(s, c);
		return hostile_attack(s, c);
	}
	c->state = C_PARKED;
	update_events(s, c);
	start_device(s, c);
}

static void connect_failed(struct sim *s, struct conn *c, int err)
{
	uint64_t now = kj_now_ms();

	close_fd(s, c, false);
	if (!c->ever_connected &&
	    now - s->t0_ms < (uint64_t)s->o->connect_wait_s * 1000u) {
		c->state = C_IDLE;
		return arm(s, c, T_CONNECT, RETRY_MS);
	}
	if (s->appliance_ending)
		return finish_socket(s, c, false);
	kj_log_ratelimited(&s->rl, KJ_LOG_ERR, "sim: %s: connect: %s",
			   s->o->connect, strerror(err));
	s->r->err_connect++;
	finish_socket(s, c, true);
}

static void do_connect(struct sim *s, struct conn *c)
{
	int fd = socket(s->o->addr.ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		kj_err("sim: socket: %s", strerror(errno));
		s->r->err_connect++;
		return finish_socket(s, c, true);
	}
	c->fd = fd;
	kj_frame_parser_init(&c->parser, KJ_ROLE_SITE);
	if (connect(fd, (const struct sockaddr *)&s->o->addr,
		    s->o->addr_len) == 0)
		return on_connected(s, c);
	if (errno == EINPROGRESS) {
		c->state = C_CONNECTING;
		c->last_progress_ms = kj_now_ms();
		return update_events(s, c);
	}
	if (errno == EAGAIN) {
		/* unix listener backlog full: try again shortly */
		close_fd(s, c, false);
		c->state = C_IDLE;
		return arm(s, c, T_CONNECT, 5 + (unsigned)(rnd(s) % 20));
	}
	connect_failed(s, c, errno);
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
			send_readback(s, c);
		break;
	case T_SLOW_READ:
		update_events(s, c);
		break;
	case T_DRIBBLE:
		flush(s, c);
		break;
	default:
		break;
	}
}

static void fire_timers(struct sim *s)
{
	uint64_t now = kj_now_ms();

	while (s->n_heap && s->heap[0].at_ms <= now && !s->stop) {
		struct timer t = heap_pop(s);
		struct conn *c = &s->conns[t.idx];
		enum timer_kind kind = c->timer_kind;

		if (t.gen != c->timer_gen)
			continue;
		c->timer_kind = T_NONE;
		on_timer(s, c, kind);
	}
}

static int next_timeout_ms(struct sim *s)
{
	uint64_t now = kj_now_ms();

	if (!s->n_heap)
		return 1000;
	if (s->heap[0].at_ms <= now)
		return 0;
	return s->heap[0].at_ms - now > 1000 ? 1000
					      : (int)(s->heap[0].at_ms - now);
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
			s->r->hostile_unexpected++;
		fail_device(s, c, "stalled");
	}
}

static bool target_reached(const struct sim *s)
{
	return s->o->devices && s->normal_sockets &&
	       s->r->committed >= s->o->devices;
}

static bool finished(struct sim *s)
{
	unsigned live = 0;

	/* --devices 0: until a signal (background noise for tests) */
	if (s->o->devices && s->normal_sockets &&
	    s->r->committed >= s->o->devices)
		return true;
	if (s->o->devices && !s->normal_sockets &&
	    s->r->hostile_attempts >= s->o->devices)
		return true;
	for (unsigned i = 0; i < s->o->sockets; i++) {
		const struct conn *c = &s->conns[i];

		if (c->state != C_DONE && c->state != C_SILENT &&
		    (!c->hostile || !s->normal_sockets))
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
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		do_read(s, c);
	if (c->fd >= 0 && (ev & EPOLLOUT))
		flush(s, c);
}

static int loop(struct sim *s)
{
	struct epoll_event ev[512];
	uint64_t last_scan = kj_now_ms(), last_check = 0;

	while (!s->stop && !sim_signalled) {
		int n = epoll_wait(s->ep, ev, KJ_ARRAY_SIZE(ev),
				   next_timeout_ms(s));
		uint64_t now;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			kj_err("sim: epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n && !s->stop; i++)
			handle(s, ev[i].data.ptr, ev[i].events);
		fire_timers(s);
		now = kj_now_ms();
		if (now - last_scan >= 1000) {
			scan_stalls(s);
			last_scan = now;
		}
		/* cheap test first; the full scan at most every 10 ms */
		if (target_reached(s))
			break;
		if (now - last_check >= 10 || !n) {
			last_check = now;
			if (finished(s))
				break;
		}
	}
	s->r->interrupted = sim_signalled;
	return 0;
}

static int raise_nofile(unsigned sockets)
{
	rlim_t need = (rlim_t)sockets + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max < need) {
		kj_err("--sockets: %u sockets need %llu file descriptors, "
		       "RLIMIT_NOFILE hard limit is %llu", sockets,
		       (unsigned long long)need,
		       (unsigned long long)rl.rlim_max);
		return -EMFILE;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		kj_err("setrlimit(RLIMIT_NOFILE, %llu): %s",
		       (unsigned long long)need, strerror(errno));
		return -errno;
	}
	return 0;
}

static int sim_setup(struct sim *s)
{
	const struct kj_sim_opts *o = s->o;
	struct sigaction sa = { .sa_handler = on_signal };

	KJ_TRY(raise_nofile(o->sockets));
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (s->ep < 0) {
		kj_err("sim: epoll_create1: %s", strerror(errno));
		return -errno;
	}
	s->conns = calloc(o->sockets, sizeof(*s->conns));
	s->parked = calloc(o->sockets, sizeof(*s->parked));
	s->rx = malloc(RX_BUF);
	s->cap_latency = o->devices && o->devices < (1u << 26) ?
				 o->devices : (1u << 22);
	s->r->latency_us = calloc(s->cap_latency + 1, sizeof(uint32_t));
	if (!s->conns || !s->parked || !s->rx || !s->r->latency_us) {
		kj_err("sim: out of memory for %u sockets", o->sockets);
		return -ENOMEM;
	}
	s->rng = o->rng_seed;
	s->rl = (struct kj_ratelimit)KJ_RATELIMIT_INIT(1000, 10);
	s->normal_sockets = o->hostile ? o->sockets - o->hostile_sockets
				       : o->sockets;
	s->t0_ms = kj_now_ms();
	s->t0_us = now_us();
	for (unsigned i = 0; i < o->sockets; i++) {
		struct conn *c = &s->conns[i];

		c->fd = -1;
		c->idx = i;
		c->slow = i < o->slow_sockets;
		c->hostile = o->hostile && i >= s->normal_sockets;
		c->state = C_IDLE;
		/* spread the initial connects over a few milliseconds */
		arm(s, c, T_CONNECT, i / 512);
	}
	return 0;
}

int kj_sim_run(const struct kj_sim_opts *o, struct kj_sim_result *r)
{
	struct sim s = { .o = o, .r = r, .ep = -1 };
	int rc;

	memset(r, 0, sizeof(*r));
	sim_signalled = 0;
	KJ_TRY_GOTO(rc, sim_setup(&s), out);
	rc = loop(&s);
	r->seconds = (double)(now_us() - s.t0_us) / 1e6;
out:
	for (unsigned i = 0; s.conns && i < o->sockets; i++)
		close_fd(&s, &s.conns[i], false);
	if (s.ep >= 0)
		close(s.ep);
	free(s.conns);
	free(s.parked);
	free(s.rx);
	free(s.heap);
	return rc;
}

void kj_sim_result_free(struct kj_sim_result *r)
{
	free(r->latency_us);
	r->latency_us = NULL;
	r->n_latency = 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

uint32_t kj_sim_percentile(struct kj_sim_result *r, double p)
{
	size_t rank;

	if (!r->n_latency)
		return 0;
	qsort(r->latency_us, r->n_latency, sizeof(uint32_t), cmp_u32);
	/* nearest rank */
	rank = (size_t)(p / 100.0 * (double)r->n_latency + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > r->n_latency)
		rank = r->n_latency;
	return r->latency_us[rank - 1];
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
	if (strncmp(spec, "tcp:", 4) || strlen(spec + 4) >= sizeof(host))
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
	if (!(o->addr.ss_family == AF_INET &&
	      (ntohl(((struct sockaddr_in *)&o->addr)->sin_addr.s_addr) >>
	       24) == 127) &&
	    !(o->addr.ss_family == AF_INET6 &&
	      IN6_IS_ADDR_LOOPBACK(
		      &((struct sockaddr_in6 *)&o->addr)->sin6_addr))) {
		kj_err("--connect: `%s': plain TCP is only for loopback; "
		       "other addresses need TLS 1.3 (PROTOCOL.md), which "
		       "kinject does not implement yet", spec);
		return -EINVAL;
	}
	return 0;
usage:
	kj_err("--connect: `%s': expected unix:PATH or tcp:HOST:PORT", spec);
	return -EINVAL;
}
