// SPDX-License-Identifier: Apache-2.0
/*
 * The injector's view of the arena stays read-only on every backend
 * (issue 11 item 1).  For each backend this machine offers: the fd the
 * keeper hands out (kj_arena_share_fd) is mapped read-only and sealed as
 * the injector does; then, inside the sandbox, mremap fails and
 * mprotect(PROT_WRITE) kills; before the sandbox, on a read-only fd or a
 * sealed mapping, mprotect(PROT_WRITE) already fails.  The owner's bytes
 * never change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "injector/sandbox.h"
#include "secret/arena.h"

#define SZ (4 * 4096)

enum probe { P_MREMAP, P_MPROTECT };

static int tested;

/* Child: map, seal, [probe before], sandbox, probe.  Exit code = verdict. */
static int child(int fd, enum probe what)
{
	const uint8_t *p;
	bool sealed, ro_fd = (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY;

	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	kj_log_set_level(KJ_LOG_ERR);
	if (kj_arena_map_ro(fd, SZ, &p) < 0)
		return 3;
	sealed = kj_arena_seal_ro(p, SZ) == 0;
	close(fd);
	/* Before the sandbox: a read-only fd or mseal already refuse. */
	if ((sealed || ro_fd) &&
	    mprotect((void *)p, SZ, PROT_READ | PROT_WRITE) == 0)
		return 4;
	if (kj_sandbox_enter() < 0)
		return 5;
	if (what == P_MREMAP) {
		if (mremap((void *)p, SZ, 2 * SZ, MREMAP_MAYMOVE) != MAP_FAILED)
			return 6;
		if (p[0] != 0xa5)
			return 7;
		return 0;
	}
	if (mprotect((void *)p, SZ, PROT_READ | PROT_WRITE) == 0)
		((volatile uint8_t *)p)[0] = 0x5a; /* would show in the owner */
	return 8;
}

static int run_child(int fd, enum probe what)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child(fd, what));
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void check_backend(enum kj_arena_backend b)
{
	struct kj_arena a;
	int fd, st;

	if (kj_arena_create(&a, SZ, b) < 0) {
		printf("backend %s: not offered here\n",
		       kj_arena_backend_name(b));
		return;
	}
	memset(a.base, 0xa5, a.size);
	fd = kj_arena_share_fd(&a);
	assert_true(fd >= 0);
	if (b == KJ_ARENA_MLOCK) {
		/* A read-only fd: no writable shared mapping, ever. */
		assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
		assert_ptr_equal(mmap(NULL, SZ, PROT_READ | PROT_WRITE,
				      MAP_SHARED, fd, 0), MAP_FAILED);
	}
	st = run_child(fd, P_MREMAP);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("%s: mremap probe: status 0x%x",
			 kj_arena_backend_name(b), st);
	st = run_child(fd, P_MPROTECT);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
		fail_msg("%s: mprotect(PROT_WRITE) probe: status 0x%x, not "
			 "SIGSYS", kj_arena_backend_name(b), st);
	for (size_t i = 0; i < a.size; i++)
		if (a.base[i] != 0xa5)
			fail_msg("%s: byte %zu changed", kj_arena_backend_name(b),
				 i);
	close(fd);
	kj_arena_destroy(&a);
	printf("backend %s: read-only in the sandbox\n",
	       kj_arena_backend_name(b));
	tested++;
}

static void test_each_backend(void **state)
{
	(void)state;
	check_backend(KJ_ARENA_MEMFD_SECRET);
	check_backend(KJ_ARENA_KMOD);
	check_backend(KJ_ARENA_MLOCK);
	/* mlock works everywhere: the test can never pass on nothing. */
	assert_true(tested >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_backend),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
