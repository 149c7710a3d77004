// SPDX-License-Identifier: Apache-2.0
/*
 * kinject sim --workers N: N site loops (sim.c) over contiguous shares of
 * the sockets, so the load generator can use every core and the benchmark
 * measures the appliance rather than one simulator core.
 *
 * Threads, not forked processes: the workers share the COMMIT budget
 * (struct sim_shared, a few atomics per device), so none of them starts a
 * device beyond --devices and a parked socket of one worker takes the unit
 * a failed device of another freed, as in one loop; their results merge
 * in memory (latency percentiles over every device, busy time as the
 * union of the workers' busy spans); /proc/PID/stat of the one process
 * counts all their CPU, as make bench reads it; and one signal handler
 * reaches every loop through its eventfd.  The per-device work is the one
 * loop's: nothing is locked on the data path but the device log's FILE.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sim.h"
#include "base/kinject.h"
#include "base/log.h"
#include "sim_int.h"
#include "sim_tls.h"

volatile sig_atomic_t kj_sim_signalled;
static int wake_fds[KJ_SIM_WORKERS_MAX];
static volatile sig_atomic_t n_wake_fds;

/* Any thread may take the signal: wake every loop to see the flag. */
static void on_signal(int sig)
{
	uint64_t one = 1;
	int saved = errno;

	(void)sig;
	kj_sim_signalled = 1;
	for (int i = 0; i < n_wake_fds; i++)
		(void)!write(wake_fds[i], &one, sizeof(one));
	errno = saved;
}

static int raise_nofile(unsigned sockets, unsigned workers)
{
	rlim_t need = (rlim_t)sockets + 64 + 2 * workers;
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

/*
 * Worker w of n: sockets [lo, hi) of o, numbered from socket_base + lo;
 * the first --slow-sockets and the last --hostile-sockets of the whole
 * range stay the same sockets.  Worker 0 draws faults from o's seed, so
 * one worker is exactly the one loop.
 */
static void share(const struct kj_sim_opts *o, unsigned w, unsigned n,
		  struct kj_sim_opts *mine)
{
	unsigned lo = (unsigned)((uint64_t)o->sockets * w / n);
	unsigned hi = (unsigned)((uint64_t)o->sockets * (w + 1) / n);
	unsigned hfrom = o->sockets - (o->hostile ? o->hostile_sockets : 0);

	*mine = *o;
	mine->workers = 1;
	mine->sockets = hi - lo;
	mine->socket_base = o->socket_base + lo;
	mine->slow_sockets = o->slow_sockets <= lo ? 0 :
			     o->slow_sockets >= hi ? hi - lo :
						     o->slow_sockets - lo;
	mine->hostile_sockets = hi <= hfrom ? 0 :
				lo >= hfrom ? hi - lo : hi - hfrom;
	mine->rng_seed = o->rng_seed + (uint64_t)w * 0x632be59bd9b4e019ull;
}

static void *worker_main(void *arg)
{
	return (void *)(intptr_t)kj_sim_worker_run(arg);
}

static int cmp_span(const void *a, const void *b)
{
	const struct busy_span *x = a, *y = b;

	return x->from_us < y->from_us ? -1 : x->from_us > y->from_us;
}

/* The union of the workers' busy spans: time with any device offered. */
static int busy_union(const struct sim_shared *sh, double *seconds)
{
	size_t n = 0, k = 0;
	struct busy_span *all;
	uint64_t us = 0, from = 0, to = 0;

	if (sh->n_workers == 1) {
		*seconds = (double)sh->workers[0].busy_us / 1e6;
		return 0;
	}
	for (unsigned w = 0; w < sh->n_workers; w++)
		n += sh->workers[w].n_busy;
	all = malloc((n ? n : 1) * sizeof(*all));
	if (!all) {
		kj_err("sim: out of memory merging the workers' results");
		return -ENOMEM;
	}
	for (unsigned w = 0; w < sh->n_workers; w++)
		for (size_t i = 0; i < sh->workers[w].n_busy; i++)
			all[k++] = sh->workers[w].busy[i];
	qsort(all, n, sizeof(*all), cmp_span);
	for (size_t i = 0; i < n; i++) {
		if (i && all[i].from_us <= to) {
			if (all[i].to_us > to)
				to = all[i].to_us;
			continue;
		}
		us += to - from;
		from = all[i].from_us;
		to = all[i].to_us;
	}
	us += to - from;
	free(all);
	*seconds = (double)us / 1e6;
	return 0;
}

/* kj_sim_result.steady_devices_per_s */
static void steady_rate(const struct sim_shared *sh, struct kj_sim_result *r)
{
	uint64_t wave = atomic_load(&sh->wave_us),
		 tail = atomic_load(&sh->tail_us), n = sh->normal_sockets;

	if (wave && tail > wave && r->committed >= 3 * n)
		r->steady_devices_per_s = (double)(r->committed - 2 * n) /
					  ((double)(tail - wave) / 1e6);
}

/* One result as if one loop had run: sums, and every device's latency. */
static int merge(const struct sim_shared *sh, struct kj_sim_result *r)
{
	size_t nl = 0;

	for (unsigned w = 0; w < sh->n_workers; w++)
		nl += sh->workers[w].r->n_latency;
	r->latency_us = malloc((nl + 1) * sizeof(uint32_t));
	if (!r->latency_us) {
		kj_err("sim: out of memory merging the workers' results");
		return -ENOMEM;
	}
	for (unsigned w = 0; w < sh->n_workers; w++) {
		const struct kj_sim_result *x = sh->workers[w].r;

#define SUM(f) (r->f += x->f)
		SUM(attempted), SUM(committed), SUM(intended);
		SUM(unexpected), SUM(bad_readbacks), SUM(disconnects);
		SUM(wrong_hwrevs), SUM(duplicates), SUM(site_aborts);
		SUM(counterfeits), SUM(proofs), SUM(creds_opened);
		SUM(hostile_attempts), SUM(hostile_intended);
		SUM(hostile_unexpected), SUM(err_connect), SUM(err_tls);
		SUM(err_closed), SUM(err_appliance), SUM(err_stalled);
		SUM(sockets_ended), SUM(sockets_failed), SUM(bytes_received);
		for (unsigned c = 0; c <= KJ_ABORT_MAX; c++)
			SUM(aborts[c]);
#undef SUM
		r->interrupted |= x->interrupted;
		memcpy(r->latency_us + r->n_latency, x->latency_us,
		       x->n_latency * sizeof(uint32_t));
		r->n_latency += x->n_latency;
	}
	KJ_TRY(busy_union(sh, &r->busy_seconds));
	if (r->busy_seconds > 0)
		r->devices_per_s = (double)r->committed / r->busy_seconds;
	steady_rate(sh, r);
	return 0;
}

/* Start workers 1..n-1 in threads, run worker 0 here, join. */
static int run_all(struct sim_shared *sh)
{
	unsigned started = 1;
	pthread_t th[KJ_SIM_WORKERS_MAX];
	int rc, e;

	for (; started < sh->n_workers; started++) {
		e = pthread_create(&th[started], NULL, worker_main,
				   &sh->workers[started]);
		if (e) {
			kj_err("sim: starting worker %u: %s", started,
			       strerror(e));
			kj_sim_halt(&sh->workers[0]);
			break;
		}
	}
	rc = kj_sim_worker_run(&sh->workers[0]);
	for (unsigned w = 1; w < started; w++) {
		void *wrc;

		pthread_join(th[w], &wrc);
		if (!rc)
			rc = (int)(intptr_t)wrc;
	}
	return started < sh->n_workers && !rc ? -EAGAIN : rc;
}

static int setup_workers(const struct kj_sim_opts *o, struct sim_shared *sh,
			 struct kj_sim_opts *opts, struct kj_sim_result *res,
			 struct ssl_ctx_st *tls)
{
	for (unsigned w = 0; w < sh->n_workers; w++) {
		struct sim *s = &sh->workers[w];

		share(o, w, sh->n_workers, &opts[w]);
		*s = (struct sim){ .o = &opts[w], .r = &res[w], .sh = sh,
				   .worker = w, .ep = -1, .tls = tls };
		s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (s->wake_fd < 0) {
			kj_err("sim: eventfd: %s", strerror(errno));
			return -errno;
		}
		wake_fds[w] = s->wake_fd;
		n_wake_fds = (sig_atomic_t)(w + 1);
	}
	return 0;
}

int kj_sim_run(const struct kj_sim_opts *o, struct kj_sim_result *r)
{
	unsigned n = o->workers ? o->workers : 1;
	struct sigaction sa = { .sa_handler = on_signal };
	struct sim_shared sh = { .n_workers = n };
	struct kj_sim_opts *opts = NULL;
	struct kj_sim_result *res = NULL;
	struct ssl_ctx_st *tls = NULL;
	uint64_t t0 = kj_sim_now_us();
	int rc;

	memset(r, 0, sizeof(*r));
	kj_sim_signalled = 0;
	if (n > KJ_SIM_WORKERS_MAX || n > o->sockets) {
		kj_err("--workers %u: at most %u and at most --sockets (%u)",
		       n, KJ_SIM_WORKERS_MAX, o->sockets);
		return -EINVAL;
	}
	sh.normal_sockets = o->hostile ? o->sockets - o->hostile_sockets
				       : o->sockets;
	atomic_init(&sh.normal_live, sh.normal_sockets);
	sh.workers = calloc(n, sizeof(*sh.workers));
	opts = calloc(n, sizeof(*opts));
	res = calloc(n, sizeof(*res));
	if (!sh.workers || !opts || !res) {
		kj_err("sim: out of memory for %u workers", n);
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned w = 0; w < n; w++)
		sh.workers[w].wake_fd = -1;
	KJ_TRY_GOTO(rc, raise_nofile(o->sockets, n), out);
	KJ_TRY_GOTO(rc, kj_sim_dev_load(o), out);
	if (o->tls) {
		struct kj_sim_tls_opts t = { .cert = o->tls_cert,
					     .key = o->tls_key,
					     .ca = o->tls_ca };

		KJ_TRY_GOTO(rc, kj_sim_tls_ctx(&t, &tls), out);
	}
	KJ_TRY_GOTO(rc, setup_workers(o, &sh, opts, res, tls), out);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = run_all(&sh);
	r->seconds = (double)(kj_sim_now_us() - t0) / 1e6;
	if (rc >= 0)
		rc = merge(&sh, r);
out:
	n_wake_fds = 0;
	for (unsigned w = 0; sh.workers && w < n; w++) {
		kj_sim_worker_free(&sh.workers[w]);
		if (sh.workers[w].wake_fd >= 0)
			close(sh.workers[w].wake_fd);
	}
	for (unsigned w = 0; res && w < n; w++)
		kj_sim_result_free(&res[w]);
	kj_sim_dev_unload();
	kj_sim_tls_ctx_free(tls);
	free(sh.workers);
	free(opts);
	free(res);
	return rc;
}
