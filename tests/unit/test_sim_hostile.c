// SPDX-License-Identifier: Apache-2.0
/*
 * kinject sim's hostile modes (garbage, a 4 GiB length, slow loris,
 * vanishing and half-open sites) against the reference appliance of
 * sim_ref.h: each attempt classified as intended, none unexpected.
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


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile_garbage),
		cmocka_unit_test(test_hostile_huge_length),
		cmocka_unit_test(test_hostile_slow_loris),
		cmocka_unit_test(test_hostile_vanish),
		cmocka_unit_test(test_hostile_half_open),
	};

	kj_log_set_level(KJ_LOG_WARN);
	return cmocka_run_group_tests(tests, ref_start, ref_stop);
}
