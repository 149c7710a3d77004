// SPDX-License-Identifier: Apache-2.0
/*
 * What the engine costs, end to end with the keeper and `kinject sim`
 * (engine_fx.h): the RSS growth per idle connection (QUALITY.md, asserted)
 * and the benchmark (KJ_BENCH=devices, reported; skipped without it).
 * tests/bench/run.sh runs test_idle_rss from here.  Exit 77 when the
 * kernel has no io_uring.
 */
#include "engine_fx.h"

static unsigned long inj_hwm_kb;

static unsigned long status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	unsigned long v = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (!(fp = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (!strncmp(line, key, strlen(key)))
			v = strtoul(line + strlen(key) + 1, NULL, 10);
	fclose(fp);
	return v;
}

/* Peak RSS of the injectors (children that are not sims). */
static void on_bench_progress(void *ctx, const struct kj_keeper_stats *st)
{
	char path[64], buf[512];
	FILE *fp;

	(void)ctx;
	(void)st;
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", getpid());
	if (!(fp = fopen(path, "r")))
		return;
	if (fgets(buf, sizeof(buf), fp))
		for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n")) {
			pid_t p = (pid_t)atoi(t);
			bool sim = false;
			unsigned long h;

			for (unsigned i = 0; i < FX->n_sims; i++)
				sim |= FX->sims[i] == p;
			h = sim ? 0 : status_kb(p, "VmHWM:");
			if (h > inj_hwm_kb)
				inj_hwm_kb = h;
		}
	fclose(fp);
}

/*
 * ---- benchmark (KJ_BENCH=devices, KJ_BENCH_SOCKETS, KJ_BENCH_WORKERS):
 * QUALITY.md's 1,000 sockets x 64 KiB, journal on, reported not asserted.
 */
static unsigned env_u(const char *name, unsigned def)
{
	const char *v = getenv(name);

	return v ? (unsigned)strtoul(v, NULL, 10) : def;
}

static void test_bench(void **state)
{
	unsigned devices = env_u("KJ_BENCH", 0);
	unsigned sockets = env_u("KJ_BENCH_SOCKETS", 1000);
	struct kj_keeper_stats st;
	struct kj_journal_stats js;
	struct kj_sim_opts o;
	struct simres sr;
	struct fx f;
	int rfd;

	(void)state;
	if (!devices)
		skip();
	fx_init(&f, devices + 100, devices, 10);
	f.job.limits.workers = env_u("KJ_BENCH_WORKERS", 0);
	f.job.limits.max_connections = sockets + 64;
	f.job.hooks.progress = on_bench_progress;
	f.job.limits.progress_interval_ms = 100;
	sim_opts(&f, &o, sockets, devices, 7);
	o.timeout_s = 60;
	sim_start(&f, &o, &rfd);
	assert_int_equal(kj_keeper_run(&f.job, &st), KJ_KEEPER_COMPLETED);
	sim_wait(rfd, &sr);
	kj_journal_stats(f.j, &js);
	printf("{\"scenario\":\"engine\",\"sockets\":%u,\"firmware_bytes\":%u,"
	       "\"devices\":%llu,\"seconds\":%.3f,\"devices_per_s\":%.0f,"
	       "\"commits\":%llu,\"fsyncs\":%llu,\"fsyncs_per_s\":%.0f}\n",
	       sockets, (unsigned)FW_SIZE,
	       (unsigned long long)sr.r.committed,
	       sr.r.seconds, sr.r.committed / sr.r.seconds,
	       (unsigned long long)js.commits,
	       (unsigned long long)js.fsyncs, js.fsyncs / sr.r.seconds);
	print_stats("bench", &st);
	{
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		fprintf(stderr, "keeper CPU: user %.2f s, sys %.2f s\n",
			ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
			ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
		getrusage(RUSAGE_CHILDREN, &ru);
		fprintf(stderr, "children CPU: user %.2f s, sys %.2f s\n",
			ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
			ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	}
	fprintf(stderr, "over limit %llu, sim unexpected %llu, keeper peak "
		"RSS %lu KiB, injector peak RSS %lu KiB, p50 %u us p99 %u us\n",
		(unsigned long long)st.over_limit,
		(unsigned long long)sr.r.unexpected,
		status_kb(getpid(), "VmHWM:"), inj_hwm_kb,
		sr.p50_us, sr.p99_us);
	assert_int_equal(sr.r.committed, devices);
	fx_free(&f);
}

/* ---- idle connections: RSS growth per connection (QUALITY.md) ------- */

#define IDLE_CONNS 2000

static unsigned long injectors_rss_kb(void)
{
	char path[64], buf[512];
	unsigned long sum = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", getpid());
	if (!(fp = fopen(path, "r")))
		return 0;
	if (fgets(buf, sizeof(buf), fp))
		for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n")) {
			pid_t p = (pid_t)atoi(t);
			bool other = false;

			for (unsigned i = 0; i < FX->n_sims; i++)
				other |= FX->sims[i] == p;
			if (!other)
				sum += status_kb(p, "VmRSS:");
		}
	fclose(fp);
	return sum;
}

static int idle_go = -1;
static unsigned long idle_before, idle_after;
static uint64_t idle_seen_ms;

static void on_idle_progress(void *ctx, const struct kj_keeper_stats *st)
{
	(void)ctx;
	if (idle_go >= 0 && st->elapsed_ms > 300) {
		idle_before = injectors_rss_kb();
		if (write(idle_go, "g", 1) != 1)
			FX->stop = 1;
		close(idle_go);
		idle_go = -1;
		return;
	}
	if (idle_go < 0 && st->conns_open >= IDLE_CONNS && !idle_seen_ms)
		idle_seen_ms = st->elapsed_ms;
	/* Let the last COUNTERS and page faults settle, then measure. */
	if (getenv("KJ_DEBUG"))
		fprintf(stderr, "open %llu el %llu\n", (unsigned long long)st->conns_open, (unsigned long long)st->elapsed_ms);
	if (idle_seen_ms && !idle_after &&
	    st->elapsed_ms > idle_seen_ms + 300) {
		idle_after = injectors_rss_kb();
		FX->stop = 1;
	}
}

static void test_idle_rss(void **state)
{
	struct kj_keeper_stats st;
	int go[2], status;
	struct fx f;
	pid_t pid;

	(void)state;
	fx_init(&f, 10, 10, 10);
	f.job.limits.max_connections = IDLE_CONNS + 64;
	f.job.limits.hello_timeout_ms = 60000;
	f.job.hooks.progress = on_idle_progress;
	f.job.limits.progress_interval_ms = 20;
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl;
		char c;

		close(go[1]);
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		for (int i = 0; i < IDLE_CONNS; i++) {
			int fd = socket(AF_UNIX, SOCK_STREAM, 0);

			if (fd < 0 || connect(fd, (struct sockaddr *)&f.l.addr,
					      f.l.addr_len) < 0)
				_exit(2);
		}
		pause();
		_exit(0);
	}
	close(go[0]);
	idle_go = go[1];
	f.sims[f.n_sims++] = pid;
	assert_int_equal(kj_keeper_run(&f.job, &st), KJ_KEEPER_STOPPED);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	fprintf(stderr, "idle: %u connections: injectors' RSS %lu -> %lu KiB, "
		"%.1f KiB per connection\n", IDLE_CONNS, idle_before,
		idle_after, (double)(idle_after - idle_before) / IDLE_CONNS);
	assert_true(idle_after > 0);
	assert_true((idle_after - idle_before) * 1024 / IDLE_CONNS <=
		    16 * 1024);
	fx_free(&f);
}


int main(int argc, char **argv)
{
	engine_exec_injector(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_rss),
		cmocka_unit_test(test_bench),
	};

	engine_test_env();
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
