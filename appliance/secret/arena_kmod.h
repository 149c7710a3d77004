/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seam between the secret arena and kinject.ko (kmod/): whether the
 * device is there, and the order the automatic choice tries backends in.
 * Apart from arena.c so that the choice can be tested on a host that can
 * load no module (tests/unit/test_arena_kmod.c).
 */
#ifndef KINJECT_ARENA_KMOD_H
#define KINJECT_ARENA_KMOD_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"

#define KJ_ARENA_KMOD_DEV "/dev/kinject"
#define KJ_ARENA_KMOD_ZEROIZE_EVENTS \
	"/sys/class/misc/kinject/zeroize_events"
#define KJ_ARENA_N_BACKENDS 3

/* /dev/kinject exists and is a character device (kinject.ko is loaded). */
bool kj_arena_kmod_present(void);

/*
 * How many times kinject.ko zeroized every arena since it was loaded (its
 * tamper response), or -1 without the module.  A run compares it before
 * and after a stop to say why it stopped.
 */
long long kj_arena_kmod_zeroize_events(void);

/*
 * Fill order[] with the backends KJ_ARENA_AUTO tries, first to last, and
 * return how many: kmod first when present, then memfd_secret, then mlock.
 */
size_t kj_arena_auto_order(bool kmod_present,
			   enum kj_arena_backend order[KJ_ARENA_N_BACKENDS]);

#endif
