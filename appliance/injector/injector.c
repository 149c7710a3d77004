// SPDX-License-Identifier: Apache-2.0
/* The injector process: arena read-only, ring, sandbox, engine (injector.h). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <sys/syscall.h>

#include "injector.h"
#include "base/log.h"
#include "secret/arena.h"
#include "sandbox.h"

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * Close every fd the keeper had open (journal, HSM session, TPM, the other
 * injectors' channels) except the ones this process needs.
 */
static void close_others(const struct kj_injector_args *a)
{
	int keep[64 + 3], n = 0, lo = 3;

	keep[n++] = a->arena_fd;
	keep[n++] = a->cfg.ipc_fd;
	for (unsigned i = 0; i < a->cfg.n_listen && n < 64; i++)
		keep[n++] = a->cfg.listen_fds[i];
	qsort(keep, (size_t)n, sizeof(int), cmp_int);
	for (int i = 0; i < n; i++) {
		if (keep[i] < lo)
			continue;
		if (keep[i] > lo)
			syscall(SYS_close_range, (unsigned)lo,
				(unsigned)keep[i] - 1, 0u);
		lo = keep[i] + 1;
	}
	syscall(SYS_close_range, (unsigned)lo, ~0u, 0u);
}

static void raise_nofile(unsigned worker, unsigned want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
		kj_warn("injector %u: RLIMIT_NOFILE %lu < %u: fewer "
			"connections will be accepted", worker,
			(unsigned long)rl.rlim_cur, want);
}

void kj_injector_main(struct kj_injector_args *a)
{
	struct kj_engine *e = NULL;
	const uint8_t *arena = NULL;
	int rc;

	/* The keeper decides when to stop; its death ends us too. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	close_others(a);
	raise_nofile(a->cfg.worker, a->cfg.max_conns + a->cfg.n_listen + 16);

	rc = kj_arena_map_ro(a->arena_fd, a->arena_size, &arena);
	if (rc < 0)
		goto out;
	rc = kj_arena_seal_ro(arena, a->arena_size);
	if (rc < 0 && rc != -ENOSYS)
		goto out;
	close(a->arena_fd);
	a->cfg.arena = arena;
	a->cfg.arena_size = a->arena_size;

	rc = kj_engine_init(&a->cfg, &e);
	if (rc < 0)
		goto out;
	rc = kj_sandbox_enter();
	if (rc < 0)
		goto out;
	kj_debug("injector %u: sandboxed (%s), serving", a->cfg.worker,
		 kj_sandbox_fs_method());
	rc = kj_engine_run(e);
out:
	/* No atexit handlers: they belong to the keeper. */
	_exit(rc < 0 ? 1 : 0);
}
