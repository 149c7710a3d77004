/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small reference appliance written from PROTOCOL.md for the
 * test_sim*.c programs (blocking, one thread per connection, real unix
 * sockets, TLS 1.3 when asked): what `kinject sim` is checked against,
 * apart from the real engine (tests/integration).  Shared so that the
 * sim's tests can stand in one program per theme.
 */
#ifndef KJ_TEST_SIM_REF_H
#define KJ_TEST_SIM_REF_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/log.h"
#include "base/util.h"
#include "sim/sim.h"
#include "wire/proto.h"
#include "wire/readback.h"

#define FW_SIZE 70000
#define CRED_SIZE 1500
#define MAX_UIDS 4096

/* ---- reference appliance ---- */

struct ref {
	int lfd;	       /* -1 after the job ended */
	unsigned listens;
	bool ended;	       /* quantity reached: listener closed */
	char path[108];
	pthread_mutex_t mu;
	uint64_t quantity;     /* COMMITs allowed */
	uint64_t ok, inflight, attempt, leaf;
	uint64_t readback_fail, site_aborts, protocol, timeouts, locked_out,
		duplicate, quota;
	unsigned n_uids;
	uint8_t uids[MAX_UIDS][KJ_UID_MAX + 1]; /* len byte + uid */
	bool lie_commit;       /* misbehave: COMMIT even a bad readback */
	unsigned drop_every;   /* close every Nth attempt after its OFFER */
	unsigned hello_timeout_ms;
	unsigned first_delay_ms; /* before a connection's first OFFER */
	uint8_t fw[FW_SIZE];
	struct kj_readback fw_state;
	SSL_CTX *tls;	       /* serve TLS (sim --connect tls:) */
	uint64_t tls_refused;
};

static struct ref *R;
/* The TLS of each served fd (the reference appliance's threads). */
static SSL *ref_ssl[65536];

static inline ssize_t ref_recv(int fd, void *b, size_t n)
{
	int k;

	if (!ref_ssl[fd])
		return recv(fd, b, n, 0);
	k = SSL_read(ref_ssl[fd], b, (int)n);
	return k > 0 ? k : -1;
}

static inline int send_all(int fd, const void *b, size_t n)
{
	const uint8_t *p = b;

	while (n) {
		ssize_t w = ref_ssl[fd] ? SSL_write(ref_ssl[fd], p, (int)n) :
					  send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static inline int send_abort(int fd, unsigned code)
{
	uint8_t b[KJ_ABORT_FRAME_MAX];
	int n = kj_abort_build(b, sizeof(b), code, "ref");

	return send_all(fd, b, (size_t)n);
}

static inline bool uid_seen(const struct kj_hello *h)
{
	for (unsigned i = 0; i < R->n_uids; i++)
		if (R->uids[i][0] == h->uid_len &&
		    !memcmp(R->uids[i] + 1, h->uid, h->uid_len))
			return true;
	return false;
}

/* HELLO: policy, then OFFER + DATA; returns the expected digest. */
static inline int
serve_hello(int fd, const struct kj_hello *h, uint8_t want[32],
	    uint64_t *attempt, bool *offered)
{
	uint8_t b[KJ_OFFER_FRAME_MAX], cred[CRED_SIZE], hdr[KJ_DATA_HDR_LEN];
	struct kj_offer o = { .fw_size = FW_SIZE, .cred_size = CRED_SIZE };
	unsigned code = 0;
	int n;

	pthread_mutex_lock(&R->mu);
	if (R->ended) {
		R->quota++;
		pthread_mutex_unlock(&R->mu);
		send_abort(fd, KJ_ABORT_QUOTA);
		return -1; /* and close: the job is over */
	}
	if (strcmp(h->hwrev, "B"))
		code = KJ_ABORT_LOCKED_OUT, R->locked_out++;
	else if (uid_seen(h))
		code = KJ_ABORT_DUPLICATE, R->duplicate++;
	else if (R->ok + R->inflight >= R->quantity)
		code = KJ_ABORT_QUOTA, R->quota++;
	else
		R->inflight++, o.attempt = ++R->attempt;
	pthread_mutex_unlock(&R->mu);
	if (code)
		return send_abort(fd, code);
	*offered = true;
	*attempt = o.attempt;
	snprintf(o.serial, sizeof(o.serial), "AS%llu",
		 (unsigned long long)o.attempt);
	strcpy(o.fw_version, "3.1.5");
	kj_sha256(R->fw, FW_SIZE, o.fw_sha256);
	memset(cred, (int)o.attempt, sizeof(cred));
	kj_readback_device(&R->fw_state, h->uid, h->uid_len, cred,
			   sizeof(cred), want);
	n = kj_offer_build(b, sizeof(b), &o);
	if (send_all(fd, b, (size_t)n))
		return -1;
	if (R->drop_every && o.attempt % R->drop_every == 0)
		return -1; /* as a crashing appliance would */
	for (uint32_t off = 0; off < FW_SIZE; off += KJ_DATA_PAYLOAD_MAX) {
		uint32_t len = FW_SIZE - off < KJ_DATA_PAYLOAD_MAX ?
				       FW_SIZE - off : KJ_DATA_PAYLOAD_MAX;

		if (kj_data_hdr_build(hdr, 0, off, len) < 0 ||
		    send_all(fd, hdr, sizeof(hdr)) ||
		    send_all(fd, R->fw + off, len))
			return -1;
	}
	if (kj_data_hdr_build(hdr, 1, 0, CRED_SIZE) < 0 ||
	    send_all(fd, hdr, sizeof(hdr)) || send_all(fd, cred, CRED_SIZE))
		return -1;
	return 0;
}

/* The job ends at its quantity: the listener closes (PROTOCOL.md). */
static inline void close_listener(void)
{
	if (R->lfd < 0)
		return;
	shutdown(R->lfd, SHUT_RDWR); /* wakes accept(); the acceptor closes */
	unlink(R->path);
	R->lfd = -1;
}

static inline void end_offer(bool ok, const struct kj_hello *h)
{
	pthread_mutex_lock(&R->mu);
	R->inflight--;
	if (ok && R->ok + 1 >= R->quantity) {
		R->ended = true;
		close_listener();
	}
	if (ok) {
		R->ok++;
		if (R->n_uids < MAX_UIDS) {
			R->uids[R->n_uids][0] = h->uid_len;
			memcpy(R->uids[R->n_uids] + 1, h->uid, h->uid_len);
			R->n_uids++;
		}
	}
	pthread_mutex_unlock(&R->mu);
}

static inline void count(uint64_t *c)
{
	pthread_mutex_lock(&R->mu);
	(*c)++;
	pthread_mutex_unlock(&R->mu);
}

/*
 * *c once it reaches want, or after 10 s: the reference's threads count a
 * refused handshake after sending their alert, so the sim can see the
 * alert and finish before the count is taken.
 */
static inline uint64_t count_when(const uint64_t *c, uint64_t want)
{
	uint64_t v, until = kj_now_ms() + 10000;

	for (;;) {
		pthread_mutex_lock(&R->mu);
		v = *c;
		pthread_mutex_unlock(&R->mu);
		if (v >= want || kj_now_ms() > until)
			return v;
		usleep(1000);
	}
}

static inline void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct kj_frame_parser p;
	struct kj_hello h;
	uint8_t buf[8192], want[32];
	uint64_t attempt = 0;
	bool offered = false, first = true;
	uint64_t deadline = kj_now_ms() + R->hello_timeout_ms;

	if (R->tls) {
		ref_ssl[fd] = SSL_new(R->tls);
		SSL_set_fd(ref_ssl[fd], fd);
		if (SSL_accept(ref_ssl[fd]) != 1) {
			count(&R->tls_refused);
			ERR_clear_error();
			goto out;
		}
	}
	kj_frame_parser_init(&p, KJ_ROLE_APPLIANCE);
	kj_frame_parser_expect(&p, KJ_MSG_BIT(KJ_MSG_HELLO));
	for (;;) {
		/* HELLO within the idle limit of connecting / last result */
		uint64_t now = kj_now_ms();
		int left = offered ? -1 :
			   now >= deadline ? 0 : (int)(deadline - now);
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;
		size_t pos = 0;

		if (!(ref_ssl[fd] && SSL_pending(ref_ssl[fd])) &&
		    poll(&pfd, 1, left) == 0) {
			count(&R->timeouts);
			send_abort(fd, KJ_ABORT_TIMEOUT);
			goto out;
		}
		n = ref_recv(fd, buf, sizeof(buf));
		if (n <= 0)
			goto out;
		while (pos < (size_t)n) {
			struct kj_frame f;
			struct kj_abort a;
			uint8_t d[32], c[KJ_COMMIT_FRAME_LEN];
			size_t used;
			int rc = kj_frame_feed(&p, buf + pos, (size_t)n - pos,
					       &used, &f);

			pos += used;
			if (rc == KJ_FEED_MORE)
				break;
			if (rc < 0 || (f.type == KJ_MSG_HELLO &&
				       kj_hello_parse(f.body, f.len, &h,
						      NULL) < 0)) {
				count(&R->protocol);
				send_abort(fd, KJ_ABORT_PROTOCOL);
				goto out;
			}
			switch (f.type) {
			case KJ_MSG_HELLO:
				offered = false;
				if (first && R->first_delay_ms)
					usleep(R->first_delay_ms * 1000);
				first = false;
				if (serve_hello(fd, &h, want, &attempt,
						&offered))
					goto out;
				kj_frame_parser_expect(
					&p, offered ? KJ_MSG_BIT(KJ_MSG_READBACK) |
							      KJ_MSG_BIT(KJ_MSG_ABORT)
						    : KJ_MSG_BIT(KJ_MSG_HELLO));
				if (!offered)
					deadline = kj_now_ms() +
						   R->hello_timeout_ms;
				break;
			case KJ_MSG_READBACK:
				(void)!kj_readback_parse(f.body, f.len, d,
							 NULL);
				offered = false;
				if (kj_readback_equal(d, want) ||
				    R->lie_commit) {
					end_offer(true, &h);
					if (kj_commit_build(c, sizeof(c),
							    attempt,
							    R->leaf++) < 0 ||
					    send_all(fd, c, sizeof(c)))
						goto out;
				} else {
					end_offer(false, &h);
					count(&R->readback_fail);
					if (send_abort(fd, KJ_ABORT_READBACK))
						goto out;
				}
				kj_frame_parser_expect(&p,
						       KJ_MSG_BIT(KJ_MSG_HELLO));
				deadline = kj_now_ms() + R->hello_timeout_ms;
				break;
			case KJ_MSG_ABORT:
				(void)!kj_abort_parse(f.body, f.len, &a, NULL);
				if (offered)
					end_offer(false, &h);
				offered = false;
				count(&R->site_aborts);
				kj_frame_parser_expect(&p,
						       KJ_MSG_BIT(KJ_MSG_HELLO));
				deadline = kj_now_ms() + R->hello_timeout_ms;
				break;
			default:
				goto out;
			}
		}
	}
out:
	if (offered)
		end_offer(false, &h);
	SSL_free(ref_ssl[fd]);
	ref_ssl[fd] = NULL;
	close(fd);
	return NULL;
}

static inline void *acceptor(void *arg)
{
	int lfd = (int)(intptr_t)arg;

	for (;;) {
		pthread_t t;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			close(lfd);
			return NULL;
		}
		pthread_create(&t, NULL, serve, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
}

/* A fresh listener at a fresh path for each test. */
static inline void ref_listen(void)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	pthread_t t;

	snprintf(R->path, sizeof(R->path), "/tmp/kj-test-sim.%d.%u", getpid(),
		 ++R->listens);
	unlink(R->path);
	memcpy(un.sun_path, R->path, strlen(R->path));
	R->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(R->lfd >= 0);
	assert_int_equal(bind(R->lfd, (struct sockaddr *)&un, sizeof(un)), 0);
	assert_int_equal(listen(R->lfd, 1024), 0);
	pthread_create(&t, NULL, acceptor, (void *)(intptr_t)R->lfd);
	pthread_detach(t);
}

static inline int ref_start(void **state)
{
	(void)state;
	R = calloc(1, sizeof(*R));
	pthread_mutex_init(&R->mu, NULL);
	R->quantity = UINT64_MAX;
	R->hello_timeout_ms = 5000;
	R->first_delay_ms = 0;
	for (size_t i = 0; i < FW_SIZE; i++)
		R->fw[i] = (uint8_t)(i * 13 + 1);
	kj_readback_begin(&R->fw_state);
	kj_readback_update(&R->fw_state, R->fw, FW_SIZE);
	R->lfd = -1;
	return 0;
}

static inline int ref_stop(void **state)
{
	(void)state;
	close_listener();
	/* serving threads die with the process */
	return 0;
}

/* Reset the reference's counters and policy between tests. */
static inline void ref_reset(uint64_t quantity)
{
	pthread_mutex_lock(&R->mu);
	close_listener();
	ref_listen();
	R->ended = false;
	R->quantity = quantity;
	R->ok = R->readback_fail = R->site_aborts = R->protocol = 0;
	R->timeouts = R->locked_out = R->duplicate = R->quota = 0;
	R->lie_commit = false;
	R->drop_every = 0;
	R->hello_timeout_ms = 5000;
	pthread_mutex_unlock(&R->mu);
}

static inline void
opts(struct kj_sim_opts *o, unsigned sockets, uint64_t devices)
{
	static char keep[128];
	char spec[128];

	memset(o, 0, sizeof(*o));
	snprintf(spec, sizeof(spec), "unix:%s", R->path);
	memcpy(keep, spec, sizeof(keep));
	assert_int_equal(kj_sim_parse_addr(keep, o), 0);
	o->sockets = sockets;
	o->devices = devices;
	o->hwrev = "B";
	o->site = "test";
	static uint64_t runs;

	o->uid_seed = 0x1122334455667788ull + ++runs; /* unique uids */
	o->rng_seed = 42;
	o->timeout_s = 20;
	o->connect_wait_s = 2;
	o->slow_loris_ms = 20;
}

#endif
