// SPDX-License-Identifier: Apache-2.0
/*
 * The engine under faults, end to end with the keeper and `kinject sim`
 * (engine_fx.h): hostile sites, an injector killed (SIGKILL, SIGSYS) or
 * unable to start, and a stop mid-job that leaves it resumable.  Exit 77
 * when the kernel has no io_uring.
 */
#include "engine_fx.h"

/* ---- faults and hostile sites ------------------------------------------ */

static void test_hostile(void **state)
{
	static const enum kj_sim_hostile modes[] = {
		KJ_SIM_GARBAGE, KJ_SIM_HUGE_LENGTH, KJ_SIM_SLOW_LORIS,
		KJ_SIM_VANISH, KJ_SIM_HALF_OPEN,
	};
	struct kj_sim_opts o, h[KJ_ARRAY_SIZE(modes)];
	struct kj_keeper_stats st;
	struct simres sr, hr;
	int rfd, rc, hfd[KJ_ARRAY_SIZE(modes)];
	struct scan sc;
	struct fx f;

	(void)state;
	fx_init(&f, 1000, 400, 1000);
	f.job.limits.hello_timeout_ms = 800;
	f.job.limits.program_timeout_ms = 800;
	f.job.hooks.progress = on_progress;
	f.job.limits.progress_interval_ms = 50;
	f.stop_when_sim_exits = true;
	sim_opts(&f, &o, 48, 400, 3);
	o.bad_readback_rate = 0.04;
	o.wrong_hwrev_rate = 0.04;
	o.duplicate_rate = 0.04;
	o.site_abort_rate = 0.04;
	o.disconnect_rate = 0.04;
	/* Long enough a job that every attacker meets its timeout. */
	o.program_delay_ms = 120;
	if (getenv("KJ_DEBUG"))
		o.device_log = fopen("/tmp/kj-dev.log", "w");
	sim_start(&f, &o, &rfd);
	for (size_t i = 0; i < KJ_ARRAY_SIZE(modes); i++) {
		sim_opts(&f, &h[i], 2, 6, 100 + i);
		h[i].hostile = modes[i];
		h[i].hostile_sockets = 2;
		h[i].socket_base = 1000 + 10 * (unsigned)i;
		if (getenv("KJ_DEBUG")) {
			char fn[64];

			snprintf(fn, sizeof(fn), "/tmp/kj-host-%zu.log", i);
			h[i].device_log = fopen(fn, "w");
		}
		sim_start(&f, &h[i], &hfd[i]);
	}
	rc = kj_keeper_run(&f.job, &st);
	assert_true(rc == KJ_KEEPER_COMPLETED || rc == KJ_KEEPER_STOPPED);
	print_stats("hostile", &st);
	sim_wait(rfd, &sr);
	assert_int_equal(sr.r.committed, st.ok);
	assert_true(sr.r.committed >= 300);
	assert_int_equal(sr.r.unexpected, 0);
	for (size_t i = 0; i < KJ_ARRAY_SIZE(modes); i++) {
		kill(f.sims[1 + i], SIGTERM);
		sim_wait(hfd[i], &hr);
		fprintf(stderr, "hostile mode %d: attempts %llu intended %llu "
			"unexpected %llu\n", modes[i],
			(unsigned long long)hr.r.hostile_attempts,
			(unsigned long long)hr.r.hostile_intended,
			(unsigned long long)hr.r.hostile_unexpected);
		assert_int_equal(hr.r.hostile_unexpected, 0);
		assert_true(hr.r.hostile_intended > 0);
	}
	scan_journal(&f, &sc, 2000);
	assert_int_equal(sc.ok, st.ok);
	assert_true(sc.by[KJ_RES_READBACK] > 0);
	assert_true(sc.by[KJ_RES_LOCKED_OUT] > 0);
	assert_true(sc.by[KJ_RES_DUPLICATE] > 0);
	assert_true(sc.by[KJ_RES_SITE_ABORT] > 0);
	assert_true(sc.by[KJ_RES_DISCONNECTED] > 0);
	assert_true(st.pre_hello_failures > 0);
	fx_free(&f);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void injector_killed(int sig)
{
	struct kj_keeper_stats st;
	struct kj_sim_opts o;
	struct simres sr;
	struct scan sc;
	struct fx f;
	int rfd;

	fx_init(&f, 1000, 500, 500);
	f.kill_sig = sig;
	f.job.hooks.progress = on_progress;
	f.job.limits.progress_interval_ms = 10;
	f.job.limits.workers = 1;
	f.kill_at_ok = 100;
	sim_opts(&f, &o, 32, 500, 4);
	o.program_delay_ms = 2;
	/*
	 * The keeper's in_flight alone does not say that the injector still
	 * holds a device: its OUTCOME may already wait in the channel, and
	 * the keeper reads it before it sees the injector gone.  One site
	 * that reads 4 KiB per 500 ms keeps its first device (64 KiB: 8 s)
	 * inside the injector, without a readback, when the kill lands.
	 */
	o.slow_sockets = 1;
	o.slow_read_ms = 500;
	sim_start(&f, &o, &rfd);
	/* A second line, started once the fresh injector took over. */
	f.later = o;
	f.later.uid_seed = 5;
	f.later.socket_base = 100;
	f.later.slow_sockets = 0;
	assert_int_equal(kj_keeper_run(&f.job, &st), KJ_KEEPER_COMPLETED);
	print_stats("killed", &st);
	assert_true(f.kill_done);
	assert_int_equal(st.injector_restarts, 1);
	assert_int_equal(st.sandbox_violations, sig == SIGSYS ? 1 : 0);
	assert_true(f.later_started);
	sim_wait(f.later_fd, &sr);
	assert_int_equal(sr.r.unexpected, 0);
	assert_true(sr.r.committed > 0);
	sim_wait(rfd, &sr);
	scan_journal(&f, &sc, 2000);
	assert_int_equal(sc.ok, 500);
	assert_true(sc.by[KJ_RES_INTERNAL] >= 1);
	assert_int_equal(sc.by[KJ_RES_INTERNAL], st.results[KJ_RES_INTERNAL]);
	fx_free(&f);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* ---- an injector that cannot start: fail at once, no restart loop ------ */

static void test_injector_cannot_start(void **state)
{
	struct kj_keeper_stats st;
	uint64_t t0;
	struct fx f;

	(void)state;
	fx_init(&f, 10, 10, 10);
	/* The sandbox refuses this value, so the injector exits before READY. */
	setenv("KINJECT_SANDBOX_FS", "bogus", 1);
	t0 = kj_now_ms();
	assert_int_equal(kj_keeper_run(&f.job, &st), -EIO);
	unsetenv("KINJECT_SANDBOX_FS");
	assert_int_equal(st.injector_restarts, 0);
	assert_true(kj_now_ms() - t0 < 5000);
	fx_free(&f);
}

static void test_injector_killed(void **state)
{
	(void)state;
	injector_killed(SIGKILL);
}

/*
 * An injector the seccomp filter killed (SIGSYS: the status the keeper
 * sees is the same as for a real violation, which test_sandbox_walk.c
 * causes): counted and logged as a violation, its devices `internal', a
 * fresh injector serves the rest of the job.
 */
static void test_injector_violation(void **state)
{
	(void)state;
	injector_killed(SIGSYS);
}

/* ---- SIGINT/SIGTERM: finish in flight, resumable ----------------------- */

static void test_stop(void **state)
{
	char log[128];
	struct kj_keeper_stats st;
	struct kj_sim_opts o;
	struct simres sr;
	struct scan sc;
	struct fx f;
	int rfd;

	(void)state;
	fx_init(&f, 1000, 900, 10);
	f.job.hooks.progress = on_progress;
	f.job.limits.progress_interval_ms = 10;
	f.stop_at_ok = 50;
	sim_opts(&f, &o, 16, 900, 6);
	snprintf(log, sizeof(log), "%s/devices.jsonl", f.dir);
	o.device_log = fopen(log, "w");
	assert_non_null(o.device_log);
	sim_start(&f, &o, &rfd);
	fclose(o.device_log); /* the sim's copy writes */
	assert_int_equal(kj_keeper_run(&f.job, &st), KJ_KEEPER_STOPPED);
	sim_wait(rfd, &sr);
	if (sr.r.unexpected) {
		/* Say which devices, for whoever reads the failure. */
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "grep '\"intended\":false' %s >&2",
			 log);
		(void)!system(cmd);
	}
	assert_true(st.ok >= 50 && st.ok < 900);
	assert_int_equal(st.in_flight, 0);
	scan_journal(&f, &sc, 2000);
	assert_int_equal(sc.ok, st.ok);
	assert_int_equal(sr.r.committed, st.ok);
	assert_int_equal(sr.r.unexpected, 0);
	fx_free(&f);
}


int main(int argc, char **argv)
{
	engine_exec_injector(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_injector_killed),
		cmocka_unit_test(test_injector_violation),
		cmocka_unit_test(test_injector_cannot_start),
		cmocka_unit_test(test_stop),
	};

	engine_test_env();
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
