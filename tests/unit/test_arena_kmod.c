// SPDX-License-Identifier: Apache-2.0
/*
 * The arena's automatic backend choice (secret/arena_kmod.h): kinject.ko's
 * device first when it is there, else memfd_secret, else mlock; on this
 * host, where no module can be loaded, an automatic arena gets
 * memfd_secret (mlock where the kernel lacks it) and a forced kmod arena
 * fails naming the device.  The device side runs in tests/vm/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "secret/arena.h"
#include "secret/arena_kmod.h"

/* Whether this kernel offers memfd_secret(2), through the arena itself. */
static bool have_memfd_secret(void)
{
	struct kj_arena a;

	if (kj_arena_create(&a, 4096, KJ_ARENA_MEMFD_SECRET) < 0)
		return false;
	kj_arena_destroy(&a);
	return true;
}

static void test_order_with_device(void **state)
{
	enum kj_arena_backend o[KJ_ARENA_N_BACKENDS];

	(void)state;
	assert_int_equal(kj_arena_auto_order(true, o), 3);
	assert_int_equal(o[0], KJ_ARENA_KMOD);
	assert_int_equal(o[1], KJ_ARENA_MEMFD_SECRET);
	assert_int_equal(o[2], KJ_ARENA_MLOCK);
}

static void test_order_without_device(void **state)
{
	enum kj_arena_backend o[KJ_ARENA_N_BACKENDS];

	(void)state;
	assert_int_equal(kj_arena_auto_order(false, o), 2);
	assert_int_equal(o[0], KJ_ARENA_MEMFD_SECRET);
	assert_int_equal(o[1], KJ_ARENA_MLOCK);
}

/* The host has no /dev/kinject: the automatic choice passes it by. */
static void test_auto_without_device(void **state)
{
	struct kj_arena a;

	(void)state;
	if (kj_arena_kmod_present())
		skip(); /* a host with kinject.ko loaded: tests/vm/ covers it */
	unsetenv("KINJECT_ARENA");
	assert_int_equal(kj_arena_create(&a, 4096, KJ_ARENA_AUTO), 0);
	assert_int_equal(a.backend, have_memfd_secret() ?
			 KJ_ARENA_MEMFD_SECRET : KJ_ARENA_MLOCK);
	kj_arena_destroy(&a);
}

static void test_forced_kmod_without_device(void **state)
{
	struct kj_arena a;

	(void)state;
	if (kj_arena_kmod_present())
		skip();
	assert_int_equal(kj_arena_create(&a, 4096, KJ_ARENA_KMOD), -ENOENT);
	assert_null(a.base);
	assert_int_equal(a.fd, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_with_device),
		cmocka_unit_test(test_order_without_device),
		cmocka_unit_test(test_auto_without_device),
		cmocka_unit_test(test_forced_kmod_without_device),
	};

	return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
