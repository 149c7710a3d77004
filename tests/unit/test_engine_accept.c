// SPDX-License-Identifier: Apache-2.0
/*
 * How the injectors take connections (engine_accept.c), end to end with
 * the keeper and `kinject sim` (engine_fx.h): spread evenly over the
 * workers, and refused at once with a reason beyond --max-connections.
 * Exit 77 when the kernel has no io_uring.
 */
#include "engine_fx.h"

/*
 * Connections are spread over the workers (engine_accept.c): far below
 * every worker's share, a multishot accept at the head of the listener's
 * wait queue took them all and left the other ring idle.
 */
/*
 * One job over 200 sockets: whether its connections went to both workers
 * evenly: the busiest took at most 60 % of them.  A fast job can end
 * before every socket connected, so the count accepted is what it is, not
 * 200.
 */
static bool spread_once(void)
{
	struct fx f;
	struct kj_sim_opts o;
	struct kj_keeper_stats st;
	struct simres sr;
	int rfd;

	fx_init(&f, 500, 400, 10);
	f.job.limits.max_connections = 10000;
	sim_opts(&f, &o, 200, 400, 11);
	sim_start(&f, &o, &rfd);
	assert_int_equal(kj_keeper_run(&f.job, &st), KJ_KEEPER_COMPLETED);
	sim_wait(rfd, &sr);
	print_stats("spread", &st);
	fprintf(stderr, "spread: busiest worker accepted %llu of %llu\n",
		(unsigned long long)st.conns_accepted_max,
		(unsigned long long)st.conns_accepted);
	assert_int_equal(sr.r.committed, 400);
	assert_true(st.conns_accepted >= 20);
	fx_free(&f);
	return st.conns_accepted_max * 10 <= st.conns_accepted * 6;
}

static void test_accept_spread(void **state)
{
	(void)state;
	/*
	 * The multishot accept gave one worker all 200 every time; the
	 * single-shot one left it to the scheduler (the busiest took
	 * 108..200: the first worker up could drain a burst alone).  Now a
	 * worker above its share of the open connections (as the keeper's
	 * LOAD says) plus a slack does not re-arm its accept, whatever the
	 * scheduler does: every job is spread, under the sanitizers too.
	 */
	for (int i = 0; i < 3; i++)
		assert_true(spread_once());
}

/*
 * Beyond --max-connections a connection is refused at once with a reason
 * (engine_accept.c lwatch), not left in the backlog until a slot frees:
 * 4 idle connections fill both workers' shares, the 5th must read ABORT
 * INTERNAL and EOF within 5 s (it used to wait for ever).  Then the idle
 * ones close and a sim completes the job.
 */
/* The listener may not exist yet: retried for 10 s, as the sim does. */
static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timespec ts = { .tv_nsec = 10000000 };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	for (int i = 0; i < 1000; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		close(fd);
		nanosleep(&ts, NULL);
	}
	return -1;
}

static int over_limit_site(const char *path)
{
	uint8_t b[KJ_ABORT_FRAME_MAX];
	struct pollfd p = { .fd = -1, .events = POLLIN };
	int idle[4] = { -1, -1, -1, -1 }, n = -1, got = 0, rc = 3;

	for (int i = 0; i < 4; i++)
		if ((idle[i] = connect_unix(path)) < 0)
			goto out;
	if ((p.fd = connect_unix(path)) < 0)
		goto out;
	/* the frame, then EOF; 5 s against the 50 ms the appliance waits */
	while (poll(&p, 1, 5000) == 1 &&
	       (n = (int)read(p.fd, b + got, sizeof(b) - (size_t)got)) > 0)
		got += n;
	if (n != 0 || got < KJ_FRAME_HDR_LEN + 2)
		rc = 4;	/* no EOF, or no frame */
	else
		rc = b[4] == KJ_MSG_ABORT && b[5] == 0 &&
		     b[6] == KJ_ABORT_INTERNAL ? 0 : 5;
out:
	for (int i = 0; i < 4; i++)
		if (idle[i] >= 0)
			close(idle[i]);
	if (p.fd >= 0)
		close(p.fd);
	return rc;
}

static void test_over_limit(void **state)
{
	struct fx f;
	struct kj_sim_opts o;
	struct kj_keeper_stats st;
	int p[2], site_rc = -1;
	pid_t pid;

	(void)state;
	fx_init(&f, 100, 10, 10);
	f.job.limits.max_connections = 4;	/* 2 workers: 2 each */
	sim_opts(&f, &o, 2, 10, 13);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct kj_sim_result r;
		int rc = over_limit_site(f.sock + strlen("unix:"));

		if (write(p[1], &rc, sizeof(rc)) != sizeof(rc))
			_exit(2);
		_exit(kj_sim_run(&o, &r) == 0 && r.committed == 10 ? 0 : 6);
	}
	close(p[1]);
	assert_int_equal(kj_keeper_run(&f.job, &st), KJ_KEEPER_COMPLETED);
	assert_int_equal(read(p[0], &site_rc, sizeof(site_rc)),
			 sizeof(site_rc));
	close(p[0]);
	assert_int_equal(waitpid(pid, &p[0], 0), pid);
	print_stats("over limit", &st);
	assert_int_equal(site_rc, 0);
	assert_true(WIFEXITED(p[0]) && WEXITSTATUS(p[0]) == 0);
	assert_true(st.over_limit >= 1);
	fx_free(&f);
}


int main(int argc, char **argv)
{
	engine_exec_injector(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_spread),
		cmocka_unit_test(test_over_limit),
	};

	engine_test_env();
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
