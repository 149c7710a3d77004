// SPDX-License-Identifier: Apache-2.0
/*
 * kinject sim against the reference appliance of sim_ref.h.  The real
 * engine is tested against the sim end to end in tests/integration; this
 * checks the sim's own logic: digests computed from the received bytes,
 * every fault knob classified as intended, quota, workers, reconnects,
 * and unexpected appliance behaviour caught.  Hostile modes are in
 * test_sim_hostile.c, TLS in test_sim_tls.c.
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

#include "sim_ref.h"

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

/*
 * The steady-state percentiles and rate leave out each socket's first
 * device, the rate the first wave (as many COMMITs as sockets): an
 * appliance slow only on a connection's first OFFER (as at a line's
 * start) shows in the percentiles over all devices, not in the steady
 * ones, which count every device after the first of its socket.
 */
static void test_steady_latency(void **state)
{
	struct kj_sim_opts o;
	struct kj_sim_result r;
	size_t n;

	(void)state;
	ref_reset(UINT64_MAX);
	R->first_delay_ms = 1000;
	opts(&o, 8, 80);
	o.workers = 2;
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 80);
	assert_int_equal(r.n_latency, 80);
	/* 8 of 80 devices waited 1 s: p99 and max over all see it */
	assert_true(kj_sim_percentile(&r, 99) >= 1000000);
	assert_true(kj_sim_percentile(&r, 50) < 1000000);
	assert_true(kj_sim_percentile_steady(&r, 100, &n) < 1000000);
	assert_int_equal(n, 72);
	assert_true(kj_sim_percentile_steady(&r, 50, &n) <=
		    kj_sim_percentile_steady(&r, 99, &n));
	/* the rate between the first and the last 8 COMMITs */
	assert_true(r.steady_devices_per_s > 0);
	kj_sim_result_free(&r);

	/* fewer than three times as many devices as sockets: none */
	ref_reset(UINT64_MAX);
	opts(&o, 8, 20);
	assert_int_equal(kj_sim_run(&o, &r), 0);
	assert_int_equal(r.committed, 20);
	assert_true(r.steady_devices_per_s == 0);
	kj_sim_result_free(&r);
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
		cmocka_unit_test(test_steady_latency),
		cmocka_unit_test(test_catches_lying_appliance),
		cmocka_unit_test(test_unexpected_abort),
		cmocka_unit_test(test_reconnect),
	};

	kj_log_set_level(KJ_LOG_WARN);
	return cmocka_run_group_tests(tests, ref_start, ref_stop);
}
