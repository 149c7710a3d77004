/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The injector process (SPEC.md §2): forked by the keeper; maps the secret
 * arena read-only (and seals the mapping), raises its fd limit, creates its
 * restricted ring, enters the sandbox, says READY over the keeper channel
 * and runs the engine.  It holds only: the arena fd (read-only mapping),
 * the listening sockets, its end of the socketpair, stderr.  Everything
 * else the keeper had open is closed before the arena is mapped.
 */
#ifndef KINJECT_INJECTOR_H
#define KINJECT_INJECTOR_H

#include "base/kinject.h"
#include "engine.h"

struct kj_injector_args {
	int arena_fd;
	size_t arena_size;
	struct kj_engine_cfg cfg; /* arena, arena_size filled by the injector */
};

/*
 * The child's whole life after fork(); never returns.  Exit status 0 after
 * a STOP, 1 on any failure (logged).
 */
__attribute__((noreturn)) void kj_injector_main(struct kj_injector_args *a);

#endif
