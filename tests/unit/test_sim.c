// SPDX-License-Identifier: Apache-2.0
/*
 * kinject sim against a small reference appliance written from
 * PROTOCOL.md in this file (blocking, one thread per connection, real
 * unix sockets).  The real engine is tested against the sim end to end
 * in tests/integration; this checks the sim's own logic: digests computed
 * from the received bytes, every fault knob and hostile mode classified
 * as intended, and unexpected appliance behaviour caught.
 */
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
	uint8_t fw[FW_SIZE];
	struct kj_readback fw_state;
	SSL_CTX *tls;	       /* serve TLS (sim --connect tls:) */
	uint64_t tls_refused;
};

static struct ref *R;
/* The TLS of each served fd (the reference appliance's threads). */
static SSL *ref_ssl[65536];

static ssize_t ref_recv(int fd, void *b, size_t n)
{
	int k;

	if (!ref_ssl[fd])
		return recv(fd, b, n, 0);
	k = SSL_read(ref_ssl[fd], b, (int)n);
	return k > 0 ? k : -1;
}

static int send_all(int fd, const void *b, size_t n)
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

static int send_abort(int fd, unsigned code)
{
	uint8_t b[KJ_ABORT_FRAME_MAX];
	int n = kj_abort_build(b, sizeof(b), code, "ref");

	return send_all(fd, b, (size_t)n);
}

static bool uid_seen(const struct kj_hello *h)
{
	for (unsigned i = 0; i < R->n_uids; i++)
		if (R->uids[i][0] == h->uid_len &&
		    !memcmp(R->uids[i] + 1, h->uid, h->uid_len))
			return true;
	return false;
}

/* HELLO: policy, then OFFER + DATA; returns the expected digest. */
static int serve_hello(int fd, const struct kj_hello *h, uint8_t want[32],
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
static void close_listener(void)
{
	if (R->lfd < 0)
		return;
	shutdown(R->lfd, SHUT_RDWR); /* wakes accept(); the acceptor closes */
	unlink(R->path);
	R->lfd = -1;
}

static void end_offer(bool ok, const struct kj_hello *h)
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

static void count(uint64_t *c)
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
static uint64_t count_when(const uint64_t *c, uint64_t want)
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

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct kj_frame_parser p;
	struct kj_hello h;
	uint8_t buf[8192], want[32];
	uint64_t attempt = 0;
	bool offered = false;
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

static void *acceptor(void *arg)
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
static void ref_listen(void)
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

static int ref_start(void **state)
{
	(void)state;
	R = calloc(1, sizeof(*R));
	pthread_mutex_init(&R->mu, NULL);
	R->quantity = UINT64_MAX;
	R->hello_timeout_ms = 5000;
	for (size_t i = 0; i < FW_SIZE; i++)
		R->fw[i] = (uint8_t)(i * 13 + 1);
	kj_readback_begin(&R->fw_state);
	kj_readback_update(&R->fw_state, R->fw, FW_SIZE);
	R->lfd = -1;
	return 0;
}

static int ref_stop(void **state)
{
	(void)state;
	close_listener();
	/* serving threads die with the process */
	return 0;
}

/* Reset the reference's counters and policy between tests. */
static void ref_reset(uint64_t quantity)
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

static void opts(struct kj_sim_opts *o, unsigned sockets, uint64_t devices)
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

/* ---- tests ---- */

static void test_commit_all(void **state)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	ref_reset(UINT64_MAX);
	opts(&o, 16, 300);
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 300);
	assert_int_equal(r.attempted, 300);
	assert_int_equal(r.intended, 300);
	assert_int_equal(r.unexpected, 0);
	assert_int_equal(R->ok, 300);
	assert_int_equal(r.n_latency, 300);
	assert_true(r.bytes_received >= 300ull * (FW_SIZE + CRED_SIZE));
	assert_true(kj_sim_percentile(&r, 50) <= kj_sim_percentile(&r, 99));
	kj_sim_result_free(&r);
}

static void test_fault_knobs(void **state)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	ref_reset(UINT64_MAX);
	opts(&o, 8, 200);
	o.bad_readback_rate = 0.1;
	o.disconnect_rate = 0.1;
	o.wrong_hwrev_rate = 0.1;
	o.duplicate_rate = 0.1;
	o.site_abort_rate = 0.1;
	o.program_delay_ms = 1;
	o.slow_read_ms = 1;
	o.slow_sockets = 2;
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 200);
	assert_int_equal(r.unexpected, 0);
	assert_int_equal(r.err_appliance + r.err_closed + r.err_stalled, 0);
	assert_true(r.bad_readbacks > 0 && r.disconnects > 0 &&
		    r.wrong_hwrevs > 0 && r.duplicates > 0 &&
		    r.site_aborts > 0);
	/* each knob produced exactly the appliance reaction it wanted */
	assert_int_equal(r.aborts[KJ_ABORT_READBACK], r.bad_readbacks);
	assert_int_equal(r.aborts[KJ_ABORT_LOCKED_OUT], r.wrong_hwrevs);
	assert_int_equal(r.aborts[KJ_ABORT_DUPLICATE], r.duplicates);
	assert_int_equal(R->readback_fail, r.bad_readbacks);
	/* A site's ABORT is counted when the reference reads it, possibly
	 * after the sim is done. */
	assert_int_equal(count_when(&R->site_aborts, r.site_aborts),
			 r.site_aborts);
	assert_int_equal(r.attempted, r.intended);
	assert_int_equal(r.attempted, 200 + r.bad_readbacks + r.disconnects +
					      r.wrong_hwrevs + r.duplicates +
					      r.site_aborts);
	kj_sim_result_free(&r);
}

/*
 * Quantity smaller than asked: sockets told QUOTA ask again (a device in
 * flight may fail and free its unit) until the job ends and the listener
 * is gone; then they end quietly.
 */
static void test_quota(void **state)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	ref_reset(50);
	opts(&o, 8, 100);
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 50);
	assert_int_equal(r.unexpected, 0);
	assert_int_equal(r.sockets_failed, 0);
	assert_int_equal(r.sockets_ended, 8);
	assert_true(r.aborts[KJ_ABORT_QUOTA] >= 1);
	kj_sim_result_free(&r);
}

/* A unit freed after QUOTA was sent is still used: the job completes. */
static void test_quota_freed_unit(void **state)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	ref_reset(40);
	R->drop_every = 37; /* attempt 37 fails after its OFFER */
	opts(&o, 8, 100);
	o.reconnect = true;
	o.connect_wait_s = 0; /* the listener is up; at job end, stop */
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 40);
	assert_int_equal(R->ok, 40);
	assert_int_equal(r.unexpected, 0);
	kj_sim_result_free(&r);
}

/*
 * --workers: three loops share the budget and one result (every device
 * once, its latency in the merged percentiles, busy time a union); four
 * share a job whose freed unit a parked socket of any worker takes.
 */
static void test_workers(void **state)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	ref_reset(UINT64_MAX);
	opts(&o, 12, 400);
	o.workers = 3;
	o.bad_readback_rate = 0.05;
	o.site_abort_rate = 0.05;
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 400);
	assert_int_equal(R->ok, 400);
	assert_int_equal(r.n_latency, 400);
	assert_int_equal(r.unexpected, 0);
	assert_int_equal(r.intended, r.attempted);
	assert_true(r.bad_readbacks + r.site_aborts > 0);
	assert_true(r.busy_seconds <= r.seconds);
	kj_sim_result_free(&r);

	ref_reset(40);
	R->drop_every = 37;
	opts(&o, 8, 100);
	o.workers = 4;
	o.reconnect = true;
	o.connect_wait_s = 0;
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 40);
	assert_int_equal(R->ok, 40);
	assert_int_equal(r.unexpected, 0);
	kj_sim_result_free(&r);

	opts(&o, 2, 10);
	o.workers = 3; /* more loops than sockets */
	assert_int_equal(kj_sim_run(&o, &r), -EINVAL);
}

/* The sim catches an appliance that commits a wrong digest. */
static void test_catches_lying_appliance(void **state)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	ref_reset(UINT64_MAX);
	R->lie_commit = true;
	opts(&o, 1, 1000);
	o.bad_readback_rate = 0.5;
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.err_appliance, 1);
	assert_int_equal(r.unexpected, 1);
	assert_int_equal(r.sockets_failed, 1);
	assert_true(r.committed < 1000);
	kj_sim_result_free(&r);
}

/* Unexpected ABORT (a digest mismatch the knobs did not ask for). */
static void test_unexpected_abort(void **state)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	ref_reset(UINT64_MAX);
	opts(&o, 2, 10);
	o.hwrev = "C"; /* the reference only allows B */
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 0);
	assert_int_equal(r.unexpected, 2);
	assert_int_equal(r.sockets_failed, 2);
	kj_sim_result_free(&r);
}

/* Connections the appliance drops mid-device: end, or reconnect. */
static void test_reconnect(void **state)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	ref_reset(UINT64_MAX);
	R->drop_every = 7;
	opts(&o, 4, 100);
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.err_closed, 4);
	assert_int_equal(r.unexpected, 4);
	assert_int_equal(r.sockets_failed, 4);
	kj_sim_result_free(&r);

	opts(&o, 4, 100);
	o.reconnect = true;
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 100);
	assert_true(r.err_closed >= 100 / 7);
	assert_int_equal(r.unexpected, 0);
	assert_int_equal(r.sockets_failed, 0);
	assert_int_equal(r.intended, r.attempted);
	kj_sim_result_free(&r);
}

static void run_hostile(enum kj_sim_hostile mode, uint64_t *ref_counter,
			uint64_t devices)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;
	ref_reset(UINT64_MAX);
	R->hello_timeout_ms = 50;
	opts(&o, 6, devices);
	o.hostile = mode;
	o.hostile_sockets = 2;
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, devices);
	assert_int_equal(r.unexpected, 0);
	assert_int_equal(r.hostile_unexpected, 0);
	assert_true(r.hostile_attempts >= 2);
	if (ref_counter) /* the reference saw the attack for what it is */
		assert_true(*ref_counter > 0);
	kj_sim_result_free(&r);
}

static void test_hostile_garbage(void **state)
{
	(void)state;
	run_hostile(KJ_SIM_GARBAGE, &R->protocol, 100);
}

static void test_hostile_huge_length(void **state)
{
	(void)state;
	run_hostile(KJ_SIM_HUGE_LENGTH, &R->protocol, 100);
}

static void test_hostile_slow_loris(void **state)
{
	(void)state;
	/* HELLO takes 40 bytes x 20 ms; the reference allows 50 ms */
	run_hostile(KJ_SIM_SLOW_LORIS, &R->timeouts, 1000);
}

static void test_hostile_vanish(void **state)
{
	(void)state;
	run_hostile(KJ_SIM_VANISH, NULL, 100);
}

static void test_hostile_half_open(void **state)
{
	(void)state;
	run_hostile(KJ_SIM_HALF_OPEN, NULL, 100);
}

/* ---- TLS (sim_tls.c): the sim as a TLS 1.3 client ---- */

static X509 *tls_cert(EVP_PKEY *k, const char *cn, X509 *ca, EVP_PKEY *cak)
{
	static long serial = 1;
	X509 *x = X509_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
				   MBSTRING_ASC, (const unsigned char *)cn,
				   -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(ca ? ca : x));
	X509_set_pubkey(x, k);
	if (!ca) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL,
			NID_basic_constraints, "critical,CA:TRUE");

		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, cak ? cak : k, EVP_sha256()) > 0);
	return x;
}

static void tls_opts(struct kj_sim_opts *o, unsigned sockets,
		     uint64_t devices, const char *cert, const char *key,
		     const char *ca)
{
	opts(o, sockets, devices);
	o->tls = true;
	o->tls_cert = cert;
	o->tls_key = key;
	o->tls_ca = ca;
}

static void tls_write(const char *path, X509 *x, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(x ? PEM_write_X509(f, x) :
			PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
	fclose(f);
}

static int ref_alpn(SSL *s, const unsigned char **out, unsigned char *olen,
		    const unsigned char *in, unsigned inlen, void *arg)
{
	unsigned char *sel;

	(void)s;
	(void)arg;
	if (SSL_select_next_proto(&sel, olen, (const unsigned char *)
				  "\x09kinject/1", 10, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* The reference appliance serves TLS 1.3 to sites of one CA; the sim
 * pins its certificate.  A site of another CA is refused and counted. */
static void test_tls(void **state)
{
	EVP_PKEY *ak = EVP_EC_gen("P-256"), *cak = EVP_EC_gen("P-256");
	EVP_PKEY *ok_ = EVP_EC_gen("P-256"), *sk = EVP_EC_gen("P-256");
	X509 *app = tls_cert(ak, "appliance", NULL, NULL);
	X509 *ca = tls_cert(cak, "site CA", NULL, NULL);
	X509 *oca = tls_cert(ok_, "other CA", NULL, NULL);
	X509 *site = tls_cert(sk, "test", ca, cak);
	X509 *other = tls_cert(sk, "test", oca, ok_);
	char d[] = "/tmp/kj-test-sim-tls.XXXXXX", cert[64], key[64], pin[64],
	     oth[64];
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	assert_non_null(mkdtemp(d));
	snprintf(cert, sizeof(cert), "%s/site.pem", d);
	snprintf(key, sizeof(key), "%s/site.key", d);
	snprintf(pin, sizeof(pin), "%s/tls.pem", d);
	snprintf(oth, sizeof(oth), "%s/other.pem", d);
	tls_write(cert, site, NULL);
	tls_write(key, NULL, sk);
	tls_write(pin, app, NULL);
	tls_write(oth, other, NULL);
	ref_reset(UINT64_MAX);
	R->tls = SSL_CTX_new(TLS_server_method());
	assert_non_null(R->tls);
	SSL_CTX_set_min_proto_version(R->tls, TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_use_certificate(R->tls, app), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(R->tls, ak), 1);
	X509_STORE_add_cert(SSL_CTX_get_cert_store(R->tls), ca);
	SSL_CTX_set_verify(R->tls, SSL_VERIFY_PEER |
			   SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_alpn_select_cb(R->tls, ref_alpn, NULL);
	SSL_CTX_set_num_tickets(R->tls, 0);

	tls_opts(&o, 8, 100, cert, key, pin);
	assert_int_equal(kj_sim_run(&o, &r), 0);
	if (r.committed != 100)
		fail_msg("committed %llu, tls %llu connect %llu closed %llu "
			 "stalled %llu failed %u ended %u ref refused %llu",
			 (unsigned long long)r.committed,
			 (unsigned long long)r.err_tls,
			 (unsigned long long)r.err_connect,
			 (unsigned long long)r.err_closed,
			 (unsigned long long)r.err_stalled, r.sockets_failed,
			 r.sockets_ended, (unsigned long long)R->tls_refused);
	assert_int_equal(r.unexpected, 0);
	assert_int_equal(r.err_tls, 0);
	assert_int_equal(R->ok, 100);
	assert_int_equal(R->tls_refused, 0);
	kj_sim_result_free(&r);

	/* a site certificate of another CA: refused, counted on both sides */
	tls_opts(&o, 2, 10, oth, key, pin);
	o.timeout_s = 5;
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 0);
	assert_int_equal(r.err_tls, 2);
	assert_int_equal(count_when(&R->tls_refused, 2), 2);
	kj_sim_result_free(&r);

	/* the wrong appliance: the sim pins tls.pem, another key fails */
	tls_opts(&o, 1, 1, cert, key, oth);
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 0);
	assert_int_equal(r.err_tls, 1);
	kj_sim_result_free(&r);

	SSL_CTX_free(R->tls);
	R->tls = NULL;
	X509_free(app);
	X509_free(ca);
	X509_free(oca);
	X509_free(site);
	X509_free(other);
	EVP_PKEY_free(ak);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(ok_);
	EVP_PKEY_free(sk);
	unlink(cert);
	unlink(key);
	unlink(pin);
	unlink(oth);
	rmdir(d);
}

static void test_connect_refused(void **state)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(kj_sim_parse_addr("unix:/nonexistent/kj.sock", &o),
			 0);
	o.sockets = 3;
	o.devices = 3;
	o.hwrev = "B";
	o.site = "x";
	o.timeout_s = 5;
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.err_connect, 3);
	assert_int_equal(r.sockets_failed, 3);
	kj_sim_result_free(&r);
}

static void test_parse_addr(void **state)
{
	struct kj_sim_opts o;

	(void)state;
	assert_int_equal(kj_sim_parse_addr("tcp:127.0.0.1:9000", &o), 0);
	assert_int_equal(o.addr.ss_family, AF_INET);
	assert_int_equal(kj_sim_parse_addr("tcp:[::1]:9000", &o), 0);
	assert_int_equal(o.addr.ss_family, AF_INET6);
	assert_int_equal(kj_sim_parse_addr("tcp:10.1.2.3:9000", &o), -EINVAL);
	assert_int_equal(kj_sim_parse_addr("tcp:127.0.0.1", &o), -EINVAL);
	assert_int_equal(kj_sim_parse_addr("udp:x", &o), -EINVAL);
	assert_int_equal(kj_sim_parse_addr("unix:", &o), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_commit_all),
		cmocka_unit_test(test_fault_knobs),
		cmocka_unit_test(test_quota),
		cmocka_unit_test(test_quota_freed_unit),
		cmocka_unit_test(test_workers),
		cmocka_unit_test(test_catches_lying_appliance),
		cmocka_unit_test(test_unexpected_abort),
		cmocka_unit_test(test_reconnect),
		cmocka_unit_test(test_hostile_garbage),
		cmocka_unit_test(test_hostile_huge_length),
		cmocka_unit_test(test_hostile_slow_loris),
		cmocka_unit_test(test_hostile_vanish),
		cmocka_unit_test(test_hostile_half_open),
		cmocka_unit_test(test_tls),
	};

	kj_log_set_level(KJ_LOG_WARN);
	return cmocka_run_group_tests(tests, ref_start, ref_stop);
}
