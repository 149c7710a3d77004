// SPDX-License-Identifier: Apache-2.0
/*
 * The secret arena against the real kernel: locked and never dumped, zero
 * after wipe/destroy/fatal signal, unreadable through /proc/PID/mem with
 * memfd_secret, read-only in a receiving process.  Exit 77 when a test had
 * to be skipped because the kernel lacks memfd_secret and nothing failed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secret/arena.h"

static int skipped;

#ifdef KJ_SANITIZED
/* Let the arena's fatal-signal handler run before ASan's own report. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allow_user_segv_handler=1";
}
#endif

static const uint8_t marker[16] = "kj-arena-marker";

static bool have_memfd_secret(void)
{
	int fd = (int)syscall(447, (unsigned)O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

#define SKIP_WITHOUT_MEMFD_SECRET()           \
	do {                                  \
		if (!have_memfd_secret()) {   \
			skipped++;            \
			skip();               \
		}                             \
	} while (0)

/* The VmFlags line of the smaps entry starting at p, into buf. */
static bool smaps_flags(const void *p, char *buf, size_t len)
{
	char line[512], want[32];
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	assert_non_null(f);
	snprintf(want, sizeof(want), "%lx-", (unsigned long)p);
	while (fgets(line, sizeof(line), f)) {
		if (!in) {
			in = !strncmp(line, want, strlen(want));
			continue;
		}
		if (!strncmp(line, "VmFlags:", 8)) {
			size_t n = strnlen(line + 8, len - 1);

			memcpy(buf, line + 8, n);
			buf[n] = 0;
			fclose(f);
			return true;
		}
	}
	fclose(f);
	return false;
}

static bool has_flag(const char *flags, const char *f)
{
	char pat[8];

	snprintf(pat, sizeof(pat), " %s", f);
	return strstr(flags, pat) != NULL;
}

static void check_locked_dontdump(enum kj_arena_backend b)
{
	struct kj_arena a;
	char flags[256];

	assert_int_equal(kj_arena_create(&a, 10000, b), 0);
	assert_int_equal(a.backend, b);
	assert_int_equal(a.size % (size_t)sysconf(_SC_PAGESIZE), 0);
	assert_true(a.size >= 10000);
	memset(a.base, 0xa5, a.size); /* fault every page in */
	assert_true(smaps_flags(a.base, flags, sizeof(flags)));
	assert_true(has_flag(flags, "lo")); /* VM_LOCKED */
	assert_true(has_flag(flags, "dd")); /* VM_DONTDUMP */
	assert_true(has_flag(flags, "dc")); /* VM_DONTCOPY */
	/* The guard pages on both sides are inaccessible. */
	assert_true(smaps_flags(a.base - sysconf(_SC_PAGESIZE), flags,
				sizeof(flags)));
	assert_false(has_flag(flags, "rd"));
	kj_arena_destroy(&a);
}

static void test_mlock_locked_dontdump(void **state)
{
	(void)state;
	check_locked_dontdump(KJ_ARENA_MLOCK);
}

static void test_secret_locked_dontdump(void **state)
{
	(void)state;
	SKIP_WITHOUT_MEMFD_SECRET();
	check_locked_dontdump(KJ_ARENA_MEMFD_SECRET);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* A second, read-only view outlives the owner's mapping: what stays? */
static void check_zero_after_free(enum kj_arena_backend b)
{
	struct kj_arena a;
	const uint8_t *view;
	uint8_t *s;
	int fd;

	assert_int_equal(kj_arena_create(&a, 3 * 4096, b), 0);
	fd = dup(a.fd);
	assert_true(fd >= 0);
	assert_int_equal(kj_arena_map_ro(fd, a.size, &view), 0);
	s = kj_arena_alloc(&a, sizeof(marker));
	assert_non_null(s);
	memcpy(s, marker, sizeof(marker));
	memset(a.base + a.size - 100, 0x5a, 100);
	assert_memory_equal(view + kj_arena_offset(&a, s), marker,
			    sizeof(marker));

	kj_arena_wipe(&a);
	assert_int_equal(a.used, 0);
	assert_true(all_zero(view, a.size));

	s = kj_arena_alloc(&a, sizeof(marker));
	memcpy(s, marker, sizeof(marker));
	kj_arena_destroy(&a);
	assert_null(a.base);
	assert_int_equal(a.fd, -1);
	assert_true(all_zero(view, 3 * 4096));
	kj_arena_destroy(&a); /* twice is harmless */
	kj_arena_unmap_ro(view, 3 * 4096);
	close(fd);
}

static void test_mlock_zero_after_free(void **state)
{
	(void)state;
	check_zero_after_free(KJ_ARENA_MLOCK);
}

static void test_secret_zero_after_free(void **state)
{
	(void)state;
	SKIP_WITHOUT_MEMFD_SECRET();
	check_zero_after_free(KJ_ARENA_MEMFD_SECRET);
}

/*
 * A forked child of the same user reads the parent's arena through
 * /proc/PPID/mem.  Returns the child's exit status: 0 read the marker,
 * 1 the read failed, 2 it read something else.
 */
static int read_via_proc_mem(const void *addr)
{
	pid_t parent = getpid(), pid;
	int st;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char path[64];
		uint8_t buf[sizeof(marker)];
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/mem", (int)parent);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			_exit(1);
		if (pread(fd, buf, sizeof(buf), (off_t)(uintptr_t)addr) !=
		    (ssize_t)sizeof(buf))
			_exit(1);
		_exit(memcmp(buf, marker, sizeof(buf)) ? 2 : 0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void test_secret_proc_mem_unreadable(void **state)
{
	struct kj_arena a;

	(void)state;
	SKIP_WITHOUT_MEMFD_SECRET();
	assert_int_equal(kj_arena_create(&a, 4096, KJ_ARENA_MEMFD_SECRET), 0);
	memcpy(a.base, marker, sizeof(marker));
	assert_int_equal(read_via_proc_mem(a.base), 1);
	kj_arena_destroy(&a);
}

/* Control: the same probe does read an mlock arena (we run as root). */
static void test_mlock_proc_mem_control(void **state)
{
	struct kj_arena a;

	(void)state;
	assert_int_equal(kj_arena_create(&a, 4096, KJ_ARENA_MLOCK), 0);
	memcpy(a.base, marker, sizeof(marker));
	if (geteuid() == 0)
		assert_int_equal(read_via_proc_mem(a.base), 0);
	kj_arena_destroy(&a);
}

/* The receiving process: its read-only mapping faults on write. */
static void check_child_ro(enum kj_arena_backend b)
{
	struct kj_arena a;
	pid_t pid;
	int st;

	assert_int_equal(kj_arena_create(&a, 4096, b), 0);
	memcpy(a.base, marker, sizeof(marker));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const uint8_t *p;

		if (kj_arena_map_ro(a.fd, a.size, &p) < 0)
			_exit(3);
		if (memcmp(p, marker, sizeof(marker)))
			_exit(4);
		signal(SIGSEGV, SIG_DFL); /* not the sanitizer's report */
		*(volatile uint8_t *)p = 0;
		_exit(5);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSEGV);
	assert_memory_equal(a.base, marker, sizeof(marker));
	kj_arena_destroy(&a);
}

static void test_mlock_child_ro(void **state)
{
	(void)state;
	check_child_ro(KJ_ARENA_MLOCK);
}

static void test_secret_child_ro(void **state)
{
	(void)state;
	SKIP_WITHOUT_MEMFD_SECRET();
	check_child_ro(KJ_ARENA_MEMFD_SECRET);
}

/* memfd_secret: the fd stays O_RDWR, so the mapping itself is sealed. */
static void test_secret_seal_ro(void **state)
{
	struct kj_arena a;
	const uint8_t *p;
	int rc;

	(void)state;
	SKIP_WITHOUT_MEMFD_SECRET();
	assert_int_equal(kj_arena_create(&a, 4096, KJ_ARENA_MEMFD_SECRET), 0);
	assert_int_equal(kj_arena_map_ro(a.fd, a.size, &p), 0);
	/* Without the seal this would succeed: the gap being closed. */
	assert_int_equal(mprotect((void *)p, a.size, PROT_READ | PROT_WRITE),
			 0);
	assert_int_equal(mprotect((void *)p, a.size, PROT_READ), 0);
	rc = kj_arena_seal_ro(p, a.size);
	if (rc == -ENOSYS) {
		kj_arena_destroy(&a);
		skipped++;
		skip();
	}
	assert_int_equal(rc, 0);
	assert_int_equal(mprotect((void *)p, a.size, PROT_READ | PROT_WRITE),
			 -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(munmap((void *)p, a.size), -1);
	kj_arena_destroy(&a);
}

/* mlock: the sealed fd cannot be mapped writable, nor made so later. */
static void test_mlock_fd_sealed(void **state)
{
	struct kj_arena a;
	void *p;

	(void)state;
	assert_int_equal(kj_arena_create(&a, 4096, KJ_ARENA_MLOCK), 0);
	p = mmap(NULL, a.size, PROT_READ | PROT_WRITE, MAP_SHARED, a.fd, 0);
	assert_true(p == MAP_FAILED);
	assert_int_equal(errno, EPERM);
	p = mmap(NULL, a.size, PROT_READ, MAP_SHARED, a.fd, 0);
	assert_true(p != MAP_FAILED);
	assert_int_equal(mprotect(p, a.size, PROT_READ | PROT_WRITE), -1);
	munmap(p, a.size);
	assert_int_equal(ftruncate(a.fd, 0), -1);
	kj_arena_destroy(&a);
}

/* The fork()ed child does not inherit the owner's writable mapping. */
static void test_not_inherited(void **state)
{
	struct kj_arena a;
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(kj_arena_create(&a, 4096, KJ_ARENA_AUTO), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		*(volatile uint8_t *)a.base = 1;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSEGV);
	kj_arena_destroy(&a);
}

/* A forked child's wipe_all must not touch the parent's (absent) arenas. */
static void test_wipe_all_after_fork(void **state)
{
	struct kj_arena a, b;
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(kj_arena_create(&a, 4096, KJ_ARENA_AUTO), 0);
	memcpy(a.base, marker, sizeof(marker));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		/* The slot of a is reusable here, and wiping skips it. */
		if (kj_arena_create(&b, 4096, KJ_ARENA_MLOCK) < 0)
			_exit(3);
		memset(b.base, 1, b.size);
		kj_arena_wipe_all();
		_exit(b.base[0] == 0 ? 0 : 4);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_memory_equal(a.base, marker, sizeof(marker));
	kj_arena_wipe_all();
	assert_true(all_zero(a.base, a.size));
	kj_arena_destroy(&a);
}

/*
 * A child with an mlock arena and the signal wipe dies by sig; the parent
 * watches the arena through /proc/CHILD/fd/N and sees it wiped.
 */
static void check_signal_wipe(int sig)
{
	int to_child[2], to_parent[2], st, fd;
	char path[64];
	const uint8_t *view;
	struct {
		int fd;
		size_t size;
	} msg;
	pid_t pid;

	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(to_parent), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct kj_arena a;
		char c;

		/* cmocka's handlers are inherited: the default is "die". */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGABRT, SIG_DFL);
		if (kj_arena_create(&a, 8192, KJ_ARENA_MLOCK) < 0 ||
		    kj_arena_install_signal_wipe() < 0)
			_exit(3);
		memcpy(a.base + 4096, marker, sizeof(marker));
		msg.fd = a.fd;
		msg.size = a.size;
		if (write(to_parent[1], &msg, sizeof(msg)) != sizeof(msg) ||
		    read(to_child[0], &c, 1) != 1)
			_exit(4);
		if (sig == SIGSEGV)
			*(volatile uint8_t *)(a.base + a.size) = 1; /* guard */
		else
			raise(sig);
		_exit(5);
	}
	assert_int_equal(read(to_parent[0], &msg, sizeof(msg)), sizeof(msg));
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, msg.fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(kj_arena_map_ro(fd, msg.size, &view), 0);
	assert_memory_equal(view + 4096, marker, sizeof(marker));
	assert_int_equal(write(to_child[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), sig);
	assert_true(all_zero(view, msg.size));
	kj_arena_unmap_ro(view, msg.size);
	close(fd);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
}

static void test_signal_wipe_segv(void **state)
{
	(void)state;
	check_signal_wipe(SIGSEGV);
}

static void test_signal_wipe_abrt(void **state)
{
	(void)state;
	check_signal_wipe(SIGABRT);
}

/* Pages of m in memory (mincore). */
static size_t resident_pages(const uint8_t *m, size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = 0;
	unsigned char *vec = calloc(size / pg, 1);

	assert_non_null(vec);
	assert_int_equal(mincore((void *)m, size, vec), 0);
	for (size_t i = 0; i < size / pg; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

/*
 * A wipe zeroes what was written, allocated or not, and leaves the pages
 * never touched alone: faulting a memfd_secret page in only to zero it
 * flushes every CPU's TLB (a job's mostly untouched arena took 0.5 s).
 */
static void test_secret_wipe_touched_only(void **state)
{
	size_t size = 16u << 20, pg = (size_t)sysconf(_SC_PAGESIZE);
	struct kj_arena a;
	uint8_t *s;

	(void)state;
	SKIP_WITHOUT_MEMFD_SECRET();
	assert_int_equal(kj_arena_create(&a, size, KJ_ARENA_MEMFD_SECRET), 0);
	assert_int_equal(resident_pages(a.base, a.size), 0);
	s = kj_arena_alloc(&a, sizeof(marker));
	assert_non_null(s);
	memcpy(s, marker, sizeof(marker));
	memset(a.base + a.size - 100, 0x5a, 100); /* outside any allocation */
	assert_int_equal(resident_pages(a.base, a.size), 2);
	kj_arena_wipe(&a);
	assert_int_equal(resident_pages(a.base, a.size), 2);
	assert_true(all_zero(a.base, pg));
	assert_true(all_zero(a.base + a.size - pg, pg));
	kj_arena_destroy(&a);
}

static void test_alloc_bounds(void **state)
{
	struct kj_arena a;
	uint8_t *p, *q;

	(void)state;
	assert_int_equal(kj_arena_create(&a, 4096, KJ_ARENA_MLOCK), 0);
	p = kj_arena_alloc(&a, 1);
	q = kj_arena_alloc(&a, 100);
	assert_non_null(p);
	assert_non_null(q);
	assert_int_equal((uintptr_t)q % 64, 0);
	assert_int_equal(kj_arena_offset(&a, q), 64);
	assert_null(kj_arena_alloc(&a, 4096));
	assert_null(kj_arena_alloc(&a, SIZE_MAX));
	assert_null(kj_arena_alloc(&a, 0));
	assert_non_null(kj_arena_alloc(&a, 4096 - 192));
	assert_null(kj_arena_alloc(&a, 1));
	assert_int_equal(kj_arena_offset(&a, a.base + a.size), SIZE_MAX);
	kj_arena_destroy(&a);
	assert_int_equal(kj_arena_create(&a, 0, KJ_ARENA_MLOCK), -EINVAL);
}

static void test_env_and_names(void **state)
{
	struct kj_arena a;

	(void)state;
	setenv("KINJECT_ARENA", "mlock", 1);
	assert_int_equal(kj_arena_create(&a, 1, KJ_ARENA_AUTO), 0);
	assert_int_equal(a.backend, KJ_ARENA_MLOCK);
	assert_string_equal(kj_arena_backend_name(a.backend), "mlock");
	kj_arena_destroy(&a);
	setenv("KINJECT_ARENA", "swap", 1);
	assert_int_equal(kj_arena_create(&a, 1, KJ_ARENA_AUTO), -EINVAL);
	kj_arena_destroy(&a);
	/* No /dev/kinject here: forcing kmod fails, auto falls through. */
	if (access("/dev/kinject", F_OK) != 0) {
		setenv("KINJECT_ARENA", "kmod", 1);
		assert_true(kj_arena_create(&a, 1, KJ_ARENA_AUTO) < 0);
	}
	unsetenv("KINJECT_ARENA");
	assert_int_equal(kj_arena_create(&a, 1, KJ_ARENA_AUTO), 0);
	if (have_memfd_secret())
		assert_string_equal(kj_arena_backend_name(a.backend),
				    "memfd_secret");
	kj_arena_destroy(&a);
	assert_string_equal(kj_arena_backend_name(KJ_ARENA_KMOD), "kmod");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mlock_locked_dontdump),
		cmocka_unit_test(test_secret_locked_dontdump),
		cmocka_unit_test(test_mlock_zero_after_free),
		cmocka_unit_test(test_secret_zero_after_free),
		cmocka_unit_test(test_secret_wipe_touched_only),
		cmocka_unit_test(test_secret_proc_mem_unreadable),
		cmocka_unit_test(test_mlock_proc_mem_control),
		cmocka_unit_test(test_mlock_child_ro),
		cmocka_unit_test(test_secret_child_ro),
		cmocka_unit_test(test_mlock_fd_sealed),
		cmocka_unit_test(test_secret_seal_ro),
		cmocka_unit_test(test_not_inherited),
		cmocka_unit_test(test_wipe_all_after_fork),
		cmocka_unit_test(test_signal_wipe_segv),
		cmocka_unit_test(test_signal_wipe_abrt),
		cmocka_unit_test(test_alloc_bounds),
		cmocka_unit_test(test_env_and_names),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	if (failed)
		return 1;
	return skipped ? 77 : 0;
}
