/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The job fixture of the test_engine*.c programs: a keeper, its injectors
 * and `kinject sim` sites over real unix sockets, a real journal (SQLite in
 * a temp dir), a real arena and a batch of real X.509 certificates.  Here
 * so that the engine's tests can stand in one program per theme; each
 * program is also the injector the keeper execs (/proc/self/exe).
 */
#ifndef KJ_TEST_ENGINE_FX_H
#define KJ_TEST_ENGINE_FX_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "base/log.h"
#include "base/util.h"
#include "injector/injector.h"
#include "injector/listen.h"
#include "inputs/creds.h"
#include "inputs/sites.h"
#include "inputs/workorder.h"
#include "journal/journal.h"
#include "journal/record.h"
#include "keeper/keeper.h"
#include "secret/arena.h"
#include "sim/sim.h"
#include "wire/ipc.h"
#include "kj_testutil.h"

#define FW_SIZE_DEFAULT (64 * 1024)
static size_t FW_SIZE = FW_SIZE_DEFAULT; /* per test */

static char *cert_b64;	/* the first; every index has its own */
static EVP_PKEY *dev_key;

struct fx {
	char dir[64];
	char sock[128];
	struct kj_arena arena;
	struct kj_creds creds;
	struct kj_cred_ref *refs;
	struct kj_work_order wo;
	struct kj_journal *j;
	struct kj_listen l;
	struct kj_job job;
	volatile sig_atomic_t stop;
	pid_t sims[8];
	unsigned n_sims;
	/* kill test */
	bool kill_done;
	uint64_t kill_at_ok;
	int kill_sig; /* 0: SIGKILL */
	uint64_t scribble_at_ok;  /* overwrite the arena's cred table */
	bool scribbled;
	uint64_t stop_at_ok;
	bool stop_when_sim_exits;
	bool hostiles_ended;	  /* sims[1..] stopped before the job ends */
	struct kj_sim_opts later; /* started once an injector restarted */
	bool later_started;
	bool later_on_unauth;	  /* ... or once 2 UNAUTHORIZED are recorded */
	int later_fd;
};

static struct fx *FX;

/* Certificate number serial of the batch's key, base64 into out. */
static inline int cert_b64_of(long serial, char *out)
{
	X509 *x = kj_test_self_signed_serial(dev_key, serial);
	uint8_t *der = NULL;
	int n;

	if (!x)
		return -1;
	n = i2d_X509(x, &der);
	X509_free(x);
	if (n <= 0 || n > 1024)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, der, n);
	OPENSSL_free(der);
	return 0;
}

static inline int make_cert(void)
{
	dev_key = EVP_EC_gen("P-256");
	cert_b64 = malloc(1400);
	return dev_key && cert_b64 ? cert_b64_of(1, cert_b64) : -1;
}

static inline int group_setup(void **state)
{
	struct io_uring ring;

	(void)state;
	if (io_uring_queue_init(4, &ring, 0) < 0) {
		fprintf(stderr, "no io_uring: skipping\n");
		exit(77);
	}
	io_uring_queue_exit(&ring);
	signal(SIGPIPE, SIG_IGN);
	return make_cert();
}

static inline void fx_init(struct fx *f, unsigned ncreds, uint64_t quantity,
			   uint64_t max_failed)
{
	size_t tlen = (size_t)ncreds * (strlen(cert_b64) + 64) + 1, off = 0;
	char *text = malloc(tlen), wo[1024], hex[65];
	struct kj_job_desc d = { 0 };
	struct kj_job_state js;
	uint8_t *fw;

	memset(f, 0, sizeof(*f));
	FX = f;
	strcpy(f->dir, "/tmp/kj-engine-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "unix:%s/s.sock", f->dir);
	assert_non_null(text);
	/* A certificate of its own per index (creds.h: unique). */
	for (unsigned i = 0; i < ncreds; i++) {
		char cb[1400];

		assert_int_equal(cert_b64_of((long)i + 1, cb), 0);
		off += (size_t)snprintf(text + off, tlen - off,
					"{\"index\":%u,\"cert\":\"%s\"}\n",
					i, cb);
	}
	assert_int_equal(kj_arena_create(&f->arena, FW_SIZE + 8192 +
			 kj_creds_arena_need((uint8_t *)text, off),
			 KJ_ARENA_AUTO), 0);
	fw = kj_arena_alloc(&f->arena, FW_SIZE);
	assert_non_null(fw);
	for (size_t i = 0; i < FW_SIZE;) {
		ssize_t r = getrandom(fw + i, FW_SIZE - i, 0);

		assert_true(r > 0);
		i += (size_t)r;
	}
	assert_int_equal(kj_creds_parse(&f->arena, (uint8_t *)text, off,
					"CREDS", &f->creds), 0);
	free(text);

	uint8_t sha[32];
	kj_sha256(fw, FW_SIZE, sha);
	kj_hex_encode(sha, 32, hex);
	snprintf(wo, sizeof(wo),
		 "{\"kinject_work_order\": 1, \"id\": \"WO-T\", \"customer\": "
		 "\"acme\", \"product\": \"acme-sensor\", \"batch\": \"LOT-1\", "
		 "\"quantity\": %llu, \"max_failed\": %llu, "
		 "\"hardware_revisions\": [\"B\", \"C\"], \"firmware\": "
		 "{\"version\": \"3.1.5\", \"sha256\": \"%s\"}, \"serial\": "
		 "{\"prefix\": \"AS\", \"start\": 10000}}",
		 (unsigned long long)quantity, (unsigned long long)max_failed,
		 hex);
	assert_int_equal(kj_work_order_parse((uint8_t *)wo, strlen(wo), "WO",
					     &f->wo), 0);

	f->refs = calloc(ncreds, sizeof(*f->refs));
	for (unsigned i = 0; i < ncreds; i++) {
		f->refs[i].index = f->creds.table->cred[i].index;
		memcpy(f->refs[i].cert_sha256,
		       f->creds.table->cred[i].cert_sha256, 32);
	}
	assert_int_equal(kj_journal_open(f->dir, 0, &f->j), 0);
	d.job = f->wo.id;
	d.customer = f->wo.customer;
	d.product = f->wo.product;
	d.batch = f->wo.batch;
	d.operator_id = "test";
	memcpy(d.work_order_sha256, f->wo.sha256, 32);
	d.quantity = f->wo.quantity;
	d.fw_version = f->wo.fw_version_str;
	memcpy(d.fw_sha256, f->wo.fw_sha256, 32);
	d.serial_prefix = f->wo.serial_prefix;
	d.serial_start = f->wo.serial_start;
	d.creds = f->refs;
	d.n_creds = ncreds;
	assert_int_equal(kj_journal_job_begin(f->j, &d, &js), 0);
	assert_int_equal(kj_journal_commit(f->j), 0);

	assert_int_equal(kj_listen_parse(f->sock, &f->l), 0);
	f->job.arena = &f->arena;
	f->job.fw_off = kj_arena_offset(&f->arena, fw);
	f->job.fw_size = (uint32_t)FW_SIZE;
	f->job.creds = &f->creds;
	f->job.wo = &f->wo;
	f->job.journal = f->j;
	f->job.listen = &f->l;
	f->job.n_listen = 1;
	f->job.limits.workers = 2;
	f->job.limits.max_connections = 256;
	f->job.limits.hello_timeout_ms = 2000;
	f->job.limits.program_timeout_ms = 2000;
	f->job.stop = &f->stop;
}

static inline void fx_free(struct fx *f)
{
	char cmd[128];

	kj_journal_close(f->j);
	kj_work_order_free(&f->wo);
	kj_arena_destroy(&f->arena);
	free(f->refs);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
}

/* A sim in a child process; its result comes back through a pipe. */
struct simres {
	int rc;
	uint32_t p50_us, p99_us;
	struct kj_sim_result r;
};

/* Close every descriptor above stdio but a and b (-1: none). */
static inline int close_fds_but(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a, from = 3;

	if (lo < 0)
		lo = hi, hi = -1;
	if (lo > from && close_range(from, lo - 1, 0) < 0)
		return -1;
	from = lo + 1;
	if (hi > from && close_range(from, hi - 1, 0) < 0)
		return -1;
	if (hi >= 0)
		from = hi + 1;
	return close_range(from, ~0U, 0);
}

static inline int sim_start(struct fx *f, struct kj_sim_opts *o, int *rfd)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct simres sr = { 0 };

		/*
		 * A real site shares no descriptor with the appliance.  Forked
		 * from a keeper hook mid-job, the child would hold the keeper's
		 * listener open after the job: its sockets' reconnects at the
		 * job's end would then sit in a backlog nobody accepts (20 s
		 * stalls) instead of being refused.  Keep stdio, the pipe and
		 * the device log the parent opened for it.
		 */
		if (close_fds_but(p[1], o->device_log ?
				  fileno(o->device_log) : -1) < 0)
			_exit(3);
		sr.rc = kj_sim_run(o, &sr.r);
		sr.p50_us = kj_sim_percentile(&sr.r, 50);
		sr.p99_us = kj_sim_percentile(&sr.r, 99);
		sr.r.latency_us = NULL;
		if (write(p[1], &sr, sizeof(sr)) != sizeof(sr))
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	f->sims[f->n_sims++] = pid;
	*rfd = p[0];
	return 0;
}

static inline void sim_wait(int rfd, struct simres *sr)
{
	memset(sr, 0, sizeof(*sr));
	assert_int_equal(read(rfd, sr, sizeof(*sr)), sizeof(*sr));
	close(rfd);
	while (wait(NULL) > 0 && 0)
		;
}

static inline void
sim_opts(struct fx *f, struct kj_sim_opts *o, unsigned sockets,
	 uint64_t devices, uint64_t seed)
{
	memset(o, 0, sizeof(*o));
	assert_int_equal(kj_sim_parse_addr(f->sock, o), 0);
	o->sockets = sockets;
	o->devices = devices;
	o->hwrev = "B";
	o->site = "line1";
	o->uid_seed = seed;
	o->rng_seed = seed;
	o->timeout_s = 20;
	o->connect_wait_s = 10;
	o->slow_loris_ms = 100;
}

/* Every record of the job: distinct uids, serials, indexes among ok. */
struct scan {
	uint64_t ok, other, by[KJ_RES_COUNT_];
	uint64_t n_idx;
	uint64_t *idx;
	char **serials;
	uint8_t (*uids)[KJ_UID_MAX + 1];
};

static inline int
scan_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct scan *s = ctx;
	struct kj_record r;

	(void)seq;
	if (kj_record_parse(jcs, len, &r) < 0)
		return -1;
	if (r.kind == KJ_REC_DEVICE && r.result == KJ_RES_WITHDRAWN) {
		/* It repeats an ok attempt whose COMMIT never went (EVIDENCE.md
		 * §2): the same credential, and that ok no longer counts. */
		s->by[r.result]++;
		s->other++;
		for (uint64_t i = 0; i < s->ok; i++) {
			if (strcmp(s->serials[i], r.serial))
				continue;
			free(s->serials[i]);
			s->ok--;
			s->serials[i] = s->serials[s->ok];
			memcpy(s->uids[i], s->uids[s->ok], sizeof(s->uids[i]));
			break;
		}
	} else if (r.kind == KJ_REC_DEVICE) {
		s->by[r.result]++;
		if (r.has_cred)
			s->idx[s->n_idx++] = r.cred_index;
		if (r.result == KJ_RES_OK) {
			s->serials[s->ok] = strdup(r.serial);
			s->uids[s->ok][0] = (uint8_t)r.uid_len;
			memcpy(s->uids[s->ok] + 1, r.uid, r.uid_len);
			s->ok++;
		} else {
			s->other++;
		}
	}
	kj_record_release(&r);
	return 0;
}

static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static inline int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline int cmp_uid(const void *a, const void *b)
{
	return memcmp(a, b, KJ_UID_MAX + 1);
}

static inline void scan_journal(struct fx *f, struct scan *s, size_t max)
{
	memset(s, 0, sizeof(*s));
	s->idx = calloc(max, sizeof(*s->idx));
	s->serials = calloc(max, sizeof(char *));
	s->uids = calloc(max, sizeof(*s->uids));
	assert_int_equal(kj_journal_foreach_record(f->j, 0, "WO-T", scan_cb,
						   s), 0);
	qsort(s->idx, s->n_idx, sizeof(*s->idx), cmp_u64);
	for (uint64_t i = 1; i < s->n_idx; i++)
		if (s->idx[i] == s->idx[i - 1])
			fail_msg("credential index %llu used twice",
				 (unsigned long long)s->idx[i]);
	qsort(s->serials, s->ok, sizeof(char *), cmp_str);
	for (uint64_t i = 1; i < s->ok; i++)
		if (!strcmp(s->serials[i], s->serials[i - 1]))
			fail_msg("serial %s twice", s->serials[i]);
	qsort(s->uids, s->ok, sizeof(*s->uids), cmp_uid);
	for (uint64_t i = 1; i < s->ok; i++)
		if (!memcmp(s->uids[i], s->uids[i - 1], KJ_UID_MAX + 1))
			fail_msg("uid committed twice");
	for (uint64_t i = 0; i < s->ok; i++)
		free(s->serials[i]);
	free(s->serials);
	free(s->uids);
	free(s->idx);
}

static inline void
print_stats(const char *name, const struct kj_keeper_stats *st)
{
	fprintf(stderr,
		"%s: ok %llu in %llu ms (%.0f devices/s), commits %llu, "
		"restarts %llu, pre-HELLO failures %llu, accepted %llu\n",
		name, (unsigned long long)st->run_ok,
		(unsigned long long)st->elapsed_ms,
		st->elapsed_ms ? st->run_ok * 1000.0 / (double)st->elapsed_ms
			       : 0.0,
		(unsigned long long)st->commits,
		(unsigned long long)st->injector_restarts,
		(unsigned long long)st->pre_hello_failures,
		(unsigned long long)st->conns_accepted);
}

/* ---- injector killed mid-job -------------------------------------------- */

static inline void kill_one_injector(void)
{
	char path[64], buf[512];
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", getpid());
	fp = fopen(path, "r");
	if (!fp)
		return;
	if (fgets(buf, sizeof(buf), fp)) {
		for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n")) {
			pid_t p = (pid_t)atoi(t);
			bool sim = false;

			for (unsigned i = 0; i < FX->n_sims; i++)
				sim |= FX->sims[i] == p;
			if (!sim) {
				kill(p, FX->kill_sig ? FX->kill_sig : SIGKILL);
				FX->kill_done = true;
				break;
			}
		}
	}
	fclose(fp);
}

static inline void on_progress(void *ctx, const struct kj_keeper_stats *st)
{
	(void)ctx;
	if (getenv("KJ_DEBUG"))
		fprintf(stderr, "ok %llu inflight %llu issuing %d open %llu "
			"hellos %llu\n", (unsigned long long)st->ok,
			(unsigned long long)st->in_flight, st->issuing,
			(unsigned long long)st->conns_open,
			(unsigned long long)st->hellos);
	/* Strike while devices are in flight: they must become `internal'. */
	if (FX->kill_at_ok && !FX->kill_done && st->ok >= FX->kill_at_ok &&
	    st->in_flight > 0)
		kill_one_injector();
	if (!FX->later_started && ((FX->kill_done && st->injector_restarts) ||
	    (FX->later_on_unauth && st->results[KJ_RES_UNAUTHORIZED] >= 2))) {
		FX->later_started = true;
		sim_start(FX, &FX->later, &FX->later_fd);
	}
	if (FX->stop_at_ok && st->ok >= FX->stop_at_ok)
		FX->stop = 1;
	if (FX->scribble_at_ok && !FX->scribbled &&
	    st->ok >= FX->scribble_at_ok) {
		/* What an injector with a writable arena would do. */
		struct kj_cred_table *t = (struct kj_cred_table *)
			(FX->arena.base + FX->creds.table_off);

		for (uint64_t i = 0; i < t->count; i++) {
			t->cred[i].blob_off = FX->job.fw_off;
			t->cred[i].blob_len = 8;
		}
		FX->scribbled = true;
	}
	/* The line stopped (its faults ended sockets for good): so do we. */
	if (FX->stop_when_sim_exits &&
	    waitpid(FX->sims[0], NULL, WNOHANG) == FX->sims[0])
		FX->stop = 1;
	/*
	 * Attackers are judged while the appliance still listens: once it
	 * stops issuing, a reconnect refused by the closed listener would
	 * count against them.
	 */
	if (FX->stop_when_sim_exits && !FX->hostiles_ended &&
	    (FX->stop || !st->issuing)) {
		FX->hostiles_ended = true;
		for (unsigned i = 1; i < FX->n_sims; i++)
			kill(FX->sims[i], SIGTERM);
	}
}

/* The keeper execs /proc/self/exe as its injectors: this binary. */
static inline void engine_exec_injector(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], KJ_INJECTOR_ARGV1))
		kj_injector_exec_main(argc, argv);
}

/* KJ_TEST=<name> runs one test; a hang is a failure, not a stuck run. */
static inline void engine_test_env(void)
{
	if (getenv("KJ_TEST"))
		cmocka_set_test_filter(getenv("KJ_TEST"));
	if (!getenv("KJ_BENCH"))
		alarm(240);
}

#endif
