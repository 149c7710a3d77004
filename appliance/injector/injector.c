// SPDX-License-Identifier: Apache-2.0
/* The injector process: arena read-only, ring, sandbox, engine (injector.h). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "injector.h"
#include "base/log.h"
#include "secret/arena.h"
#include "sandbox.h"
#include "tls.h"

/*
 * Close every fd we were not given on purpose (the exec left only those,
 * but this does not depend on it).
 */
static void close_others(const struct kj_injector_args *a)
{
	int keep[KJ_INJECTOR_MAX_LISTEN + 2];
	size_t n = 0;

	keep[n++] = a->arena_fd;
	keep[n++] = a->cfg.ipc_fd;
	for (unsigned i = 0; i < a->cfg.n_listen && i < KJ_INJECTOR_MAX_LISTEN;
	     i++)
		keep[n++] = a->cfg.listen_fds[i];
	kj_injector_close_except(keep, n);
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
	/* A terminal's INT/QUIT/HUP reach the whole process group: the
	 * keeper handles them and drains the job (cmd_run.c). */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	close_others(a);
	raise_nofile(a->cfg.worker, a->cfg.max_conns + a->cfg.n_listen + 16);

	rc = kj_arena_map_ro(a->arena_fd, a->arena_size, &arena);
	if (rc < 0)
		goto out;
	/*
	 * Where mseal(2) is missing (before 6.10) the mapping stays read-only
	 * all the same: the fd is read-only where the backend allows, and
	 * the seccomp filter kills mprotect(PROT_WRITE) and a writable
	 * shared mmap, and refuses mremap (docs/SANDBOX.md).
	 */
	rc = kj_arena_seal_ro(arena, a->arena_size);
	if (rc < 0 && rc != -ENOSYS)
		goto out;
	close(a->arena_fd);
	a->cfg.arena = arena;
	a->cfg.arena_size = a->arena_size;

	/* OpenSSL reads its configuration when a context is made: before
	 * the sandbox, which has no filesystem (docs/TLS.md). */
	if (a->tls_pem) {
		rc = kj_tls_server_new(a->tls_pem, a->tls_cas, &a->cfg.tls);
		free(a->tls_pem);
		a->tls_pem = NULL;
		if (rc < 0)
			goto out;
		/* kTLS only where the kernel has it: else setsockopt stays
		 * out of the seccomp filter (docs/SANDBOX.md). */
		a->cfg.ktls = kj_tls_ktls_available();
		if (a->cfg.ktls)
			kj_sandbox_allow_ktls();
	}
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
