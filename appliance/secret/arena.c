// SPDX-License-Identifier: Apache-2.0
/*
 * The secret arena (arena.h, SPEC.md §2).
 *
 * Every backend gives the same shape: one fd that can be passed to another
 * process, and in the owner a MAP_SHARED read-write mapping of it placed
 * between two PROT_NONE guard pages, marked MADV_DONTDUMP (never in a core)
 * and MADV_DONTFORK (a fork()ed child does not inherit the writable
 * mapping; MADV_WIPEONFORK would be the alternative but the kernel accepts
 * it only on private anonymous memory, and an arena must be shareable by
 * fd, so it is MAP_SHARED).
 *
 *  memfd_secret  pages removed from the kernel direct map, implicitly locked
 *                (VM_LOCKED, charged to RLIMIT_MEMLOCK at mmap), unreadable
 *                through /proc/PID/mem, ptrace or any kernel path.
 *  kmod          /dev/kinject (kmod/).  Contract relied on here: each open()
 *                is one arena; the first mmap() of length L at offset 0
 *                allocates L pinned, zeroed, never-dumped, never-swapped
 *                pages; later mmap()s of the same open file (the fd passed to
 *                the injector) map the same pages; a PROT_READ mapping of it
 *                cannot be made writable.  The zeroize trigger wipes them.
 *  mlock         memfd_create + mlock.  The memfd is sealed against resizing
 *                (a receiver could otherwise truncate it and SIGBUS us) and
 *                with F_SEAL_FUTURE_WRITE once the owner's writable mapping
 *                exists, so nobody who gets the fd can map it writable.
 *
 * Live arenas are kept in a small lock-free registry so that
 * kj_arena_wipe_all() can run from a fatal signal handler.  ASan builds:
 * the runtime keeps SIGSEGV/SIGBUS/SIGFPE to itself unless
 * allow_user_segv_handler=1 (test_arena.c sets it).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arena.h"
#include "base/log.h"
#include "arena_kmod.h"

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif

#define KJ_ARENA_ALIGN 64
#define KJ_ARENA_DEV KJ_ARENA_KMOD_DEV
#define KJ_ARENA_REG_MAX 64

/* ---- registry: async-signal-safe reads, CAS-claimed slots ---- */

enum { SLOT_FREE, SLOT_BUSY, SLOT_LIVE };

/*
 * The owner pid matters after fork(): the child inherits the registry but
 * not the mappings (MADV_DONTFORK), and the addresses may be reused there.
 */
static struct {
	int state;
	pid_t pid;
	uint8_t *base;
	size_t size;
} kj_arena_reg[KJ_ARENA_REG_MAX];

static bool slot_is_free(size_t i, pid_t self)
{
	int st = __atomic_load_n(&kj_arena_reg[i].state, __ATOMIC_ACQUIRE);

	return st == SLOT_FREE ||
	       (st == SLOT_LIVE && kj_arena_reg[i].pid != self);
}

static int reg_add(uint8_t *base, size_t size)
{
	pid_t self = getpid();

	for (size_t i = 0; i < KJ_ARENA_REG_MAX; i++) {
		int expect;

		if (!slot_is_free(i, self))
			continue;
		expect = __atomic_load_n(&kj_arena_reg[i].state,
					 __ATOMIC_ACQUIRE);
		if (expect == SLOT_BUSY ||
		    !__atomic_compare_exchange_n(&kj_arena_reg[i].state,
						 &expect, SLOT_BUSY, false,
						 __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED))
			continue;
		kj_arena_reg[i].pid = self;
		kj_arena_reg[i].base = base;
		kj_arena_reg[i].size = size;
		__atomic_store_n(&kj_arena_reg[i].state, SLOT_LIVE,
				 __ATOMIC_RELEASE);
		return 0;
	}
	kj_err("arena: more than %d live arenas", KJ_ARENA_REG_MAX);
	return -ENOSPC;
}

static void reg_del(const uint8_t *base)
{
	pid_t self = getpid();

	for (size_t i = 0; i < KJ_ARENA_REG_MAX; i++) {
		if (__atomic_load_n(&kj_arena_reg[i].state,
				    __ATOMIC_ACQUIRE) != SLOT_LIVE ||
		    kj_arena_reg[i].pid != self ||
		    kj_arena_reg[i].base != base)
			continue;
		__atomic_store_n(&kj_arena_reg[i].state, SLOT_BUSY,
				 __ATOMIC_RELEASE);
		kj_arena_reg[i].base = NULL;
		kj_arena_reg[i].size = 0;
		__atomic_store_n(&kj_arena_reg[i].state, SLOT_FREE,
				 __ATOMIC_RELEASE);
		return;
	}
}

/*
 * Zero the pages of [base, base + size) that are in memory.  A page never
 * touched holds no byte of ours, and touching it only to zero it is not
 * free with memfd_secret: its first fault takes it out of the kernel's
 * direct map and flushes the TLB of every CPU.  Wiping a job's whole
 * arena (sized for the worst case, mostly untouched) that way took the
 * keeper 0.5 s of CPU at every job's end.  Every written page is resident
 * (all backends lock their pages), so mincore() finds them all; where it
 * fails the whole range is wiped.  Async-signal-safe: kj_arena_wipe_all.
 */
static size_t wipe_page = 4096; /* set by kj_arena_create */

static void wipe_resident(uint8_t *base, size_t size)
{
	unsigned char vec[256];
	size_t chunk = sizeof(vec) * wipe_page;

	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;

		if (mincore(base + off, n, vec) < 0) {
			explicit_bzero(base + off, n);
			continue;
		}
		for (size_t i = 0; i * wipe_page < n; i++) {
			size_t at = i * wipe_page;

			if (vec[i] & 1)
				explicit_bzero(base + off + at,
					       n - at < wipe_page ? n - at
								  : wipe_page);
		}
	}
}

void kj_arena_wipe_all(void)
{
	pid_t self = getpid(); /* async-signal-safe */

	for (size_t i = 0; i < KJ_ARENA_REG_MAX; i++) {
		if (__atomic_load_n(&kj_arena_reg[i].state,
				    __ATOMIC_ACQUIRE) != SLOT_LIVE ||
		    kj_arena_reg[i].pid != self)
			continue;
		wipe_resident(kj_arena_reg[i].base, kj_arena_reg[i].size);
	}
}

/* ---- names ---- */

const char *kj_arena_backend_name(enum kj_arena_backend b)
{
	switch (b) {
	case KJ_ARENA_MEMFD_SECRET:
		return "memfd_secret";
	case KJ_ARENA_KMOD:
		return "kmod";
	case KJ_ARENA_MLOCK:
		return "mlock";
	case KJ_ARENA_AUTO:
		return "auto";
	default:
		return "unknown";
	}
}

static int backend_from_env(enum kj_arena_backend *out)
{
	const char *v = getenv("KINJECT_ARENA");

	*out = KJ_ARENA_AUTO;
	if (!v || !*v || !strcmp(v, "auto"))
		return 0;
	for (int b = KJ_ARENA_MEMFD_SECRET; b <= KJ_ARENA_MLOCK; b++) {
		if (!strcmp(v, kj_arena_backend_name(b))) {
			*out = b;
			return 0;
		}
	}
	kj_err("KINJECT_ARENA: expected memfd_secret, kmod, mlock or auto, got `%s'",
	       v);
	return -EINVAL;
}

/* ---- mapping with guard pages ---- */

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * Reserve [guard | size | guard] as PROT_NONE, then map fd read-write over
 * the middle.  The guards turn a linear overrun into SIGSEGV instead of a
 * read of, or write into, a neighbouring mapping.
 */
static int map_guarded(int fd, size_t size, const char *what, uint8_t **out)
{
	size_t pg = page_size();
	uint8_t *res, *p;
	int rc;

	res = mmap(NULL, size + 2 * pg, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED) {
		rc = -errno;
		kj_err("arena: %s: reserving %zu bytes: %s", what, size,
		       strerror(-rc));
		return rc;
	}
	p = mmap(res + pg, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		munmap(res, size + 2 * pg);
		return rc;
	}
	*out = p;
	return 0;
}

static void unmap_guarded(uint8_t *base, size_t size)
{
	size_t pg = page_size();

	munmap(base - pg, size + 2 * pg);
}

/* Properties every backend gets on the owner's mapping. */
static int harden_mapping(uint8_t *p, size_t size, const char *what)
{
	if (madvise(p, size, MADV_DONTDUMP) < 0) {
		kj_err("arena: %s: madvise(MADV_DONTDUMP): %s", what,
		       strerror(errno));
		return -errno;
	}
	if (madvise(p, size, MADV_DONTFORK) < 0) {
		kj_err("arena: %s: madvise(MADV_DONTFORK): %s", what,
		       strerror(errno));
		return -errno;
	}
	return 0;
}

/* Harden a fresh mapping of a->base; a mapping that cannot be hardened is
 * never used: unmap it. */
static int harden_or_unmap(struct kj_arena *a, size_t size, const char *what)
{
	int rc = harden_mapping(a->base, size, what);

	if (rc < 0) {
		unmap_guarded(a->base, size);
		a->base = NULL;
	}
	return rc;
}

static const char *memlock_hint(int err)
{
	if (err == -EAGAIN || err == -ENOMEM || err == -EPERM)
		return " (RLIMIT_MEMLOCK too low? see `ulimit -l')";
	return "";
}

/* ---- backends: each returns 0, or -errno having logged why ---- */

static int try_memfd_secret(struct kj_arena *a, size_t size, bool forced)
{
	enum kj_log_level lvl = forced ? KJ_LOG_ERR : KJ_LOG_WARN;
	int fd, rc;

	fd = (int)syscall(SYS_memfd_secret, (unsigned)O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOSYS)
			kj_log(lvl, "arena: memfd_secret(2): not offered by this kernel (CONFIG_SECRETMEM, secretmem.enable=1)");
		else
			kj_log(lvl, "arena: memfd_secret(2): %s",
			       strerror(-rc));
		return rc;
	}
	/* The size of a secretmem file can only be set once, by ftruncate. */
	if (ftruncate(fd, (off_t)size) < 0) {
		rc = -errno;
		kj_log(lvl, "arena: memfd_secret: ftruncate(%zu): %s", size,
		       strerror(-rc));
		goto err;
	}
	/* secretmem sets VM_LOCKED itself and charges RLIMIT_MEMLOCK here. */
	rc = map_guarded(fd, size, "memfd_secret", &a->base);
	if (rc < 0) {
		kj_log(lvl, "arena: memfd_secret: mmap(%zu): %s%s", size,
		       strerror(-rc), memlock_hint(rc));
		goto err;
	}
	rc = harden_or_unmap(a, size, "memfd_secret");
	if (rc < 0)
		goto err;
	a->fd = fd;
	return 0;
err:
	close(fd);
	return rc;
}

static int try_kmod(struct kj_arena *a, size_t size, bool forced)
{
	enum kj_log_level lvl = forced ? KJ_LOG_ERR : KJ_LOG_DEBUG;
	int fd, rc;

	fd = open(KJ_ARENA_DEV, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		/* Absent device is the normal case until kinject.ko loads. */
		kj_log(rc == -ENOENT || rc == -ENXIO || rc == -ENODEV ?
			       lvl : KJ_LOG_ERR,
		       "arena: %s: %s", KJ_ARENA_DEV, strerror(-rc));
		return rc;
	}
	rc = map_guarded(fd, size, KJ_ARENA_DEV, &a->base);
	if (rc < 0) {
		kj_err("arena: %s: mmap(%zu): %s", KJ_ARENA_DEV, size,
		       strerror(-rc));
		goto err;
	}
	rc = harden_or_unmap(a, size, KJ_ARENA_DEV);
	if (rc < 0)
		goto err;
	a->fd = fd;
	return 0;
err:
	close(fd);
	return rc;
}

static int try_mlock(struct kj_arena *a, size_t size)
{
	int fd, rc;

	fd = memfd_create("kinject-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		rc = -errno;
		kj_err("arena: mlock: memfd_create: %s", strerror(-rc));
		return rc;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		rc = -errno;
		kj_err("arena: mlock: ftruncate(%zu): %s", size, strerror(-rc));
		goto err;
	}
	rc = map_guarded(fd, size, "mlock", &a->base);
	if (rc < 0) {
		kj_err("arena: mlock: mmap(%zu): %s", size, strerror(-rc));
		goto err;
	}
	/* A raw syscall: ASan's mlock() interceptor is a silent no-op. */
	if (syscall(SYS_mlock, a->base, size) < 0) {
		rc = -errno;
		kj_err("arena: mlock(%zu): %s%s", size, strerror(-rc),
		       memlock_hint(rc));
		goto err_unmap;
	}
	rc = harden_or_unmap(a, size, "mlock");
	if (rc < 0)
		goto err;
	/* After our writable mapping exists: nobody else gets one. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
				   F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0) {
		rc = -errno;
		kj_err("arena: mlock: memfd F_ADD_SEALS: %s", strerror(-rc));
		goto err_unmap;
	}
	a->fd = fd;
	return 0;
err_unmap:
	unmap_guarded(a->base, size);
	a->base = NULL;
err:
	close(fd);
	return rc;
}

static int try_backend(struct kj_arena *a, size_t size,
		       enum kj_arena_backend b, bool forced)
{
	switch (b) {
	case KJ_ARENA_MEMFD_SECRET:
		return try_memfd_secret(a, size, forced);
	case KJ_ARENA_KMOD:
		return try_kmod(a, size, forced);
	case KJ_ARENA_MLOCK:
		return try_mlock(a, size);
	default:
		kj_err("arena: backend %d: unknown", (int)b);
		return -EINVAL;
	}
}

int kj_arena_create(struct kj_arena *a, size_t size, enum kj_arena_backend want)
{
	size_t pg = page_size();
	int rc = -ENODEV;

	wipe_page = pg;
	memset(a, 0, sizeof(*a));
	a->fd = -1;
	if (size == 0 || size > SIZE_MAX / 2) {
		kj_err("arena: size %zu: expected 1..%zu bytes", size,
		       SIZE_MAX / 2);
		return -EINVAL;
	}
	size = (size + pg - 1) & ~(pg - 1);
	if (want == KJ_ARENA_AUTO)
		KJ_TRY(backend_from_env(&want));

	if (want != KJ_ARENA_AUTO) {
		rc = try_backend(a, size, want, true);
	} else {
		enum kj_arena_backend order[KJ_ARENA_N_BACKENDS];
		size_t n = kj_arena_auto_order(kj_arena_kmod_present(), order);

		for (size_t i = 0; i < n; i++) {
			rc = try_backend(a, size, order[i], false);
			if (rc == 0) {
				want = order[i];
				break;
			}
		}
	}
	if (rc < 0) {
		a->fd = -1;
		return rc;
	}
	a->size = size;
	a->backend = want;
	rc = reg_add(a->base, a->size);
	if (rc < 0) {
		kj_arena_destroy(a);
		return rc;
	}
	kj_debug("arena: %zu bytes, backend %s", size,
		 kj_arena_backend_name(want));
	return 0;
}

void *kj_arena_alloc(struct kj_arena *a, size_t n)
{
	size_t start = (a->used + KJ_ARENA_ALIGN - 1) &
		       ~(size_t)(KJ_ARENA_ALIGN - 1);

	if (!a->base || n == 0 || start > a->size || n > a->size - start) {
		kj_err("arena: allocation of %zu bytes: %zu of %zu in use",
		       n, a->used, a->size);
		return NULL;
	}
	a->used = start + n;
	return a->base + start;
}

size_t kj_arena_offset(const struct kj_arena *a, const void *p)
{
	const uint8_t *q = p;

	if (!a->base || q < a->base || q >= a->base + a->size) {
		kj_err("arena: pointer %p: not inside the arena", p);
		return SIZE_MAX;
	}
	return (size_t)(q - a->base);
}

void kj_arena_wipe(struct kj_arena *a)
{
	if (!a->base)
		return;
	wipe_resident(a->base, a->size);
	a->used = 0;
}

void kj_arena_destroy(struct kj_arena *a)
{
	if (!a->base) {
		a->fd = -1;
		return;
	}
	kj_arena_wipe(a);
	reg_del(a->base);
	unmap_guarded(a->base, a->size);
	if (a->fd >= 0)
		close(a->fd);
	memset(a, 0, sizeof(*a));
	a->fd = -1;
}

int kj_arena_share_fd(const struct kj_arena *a)
{
	char path[40];
	int fd;

	if (!a->base || a->fd < 0) {
		kj_err("arena: share: this arena has no fd to share");
		return -EBADF;
	}
	if (a->backend != KJ_ARENA_MLOCK) {
		fd = fcntl(a->fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0) {
			kj_err("arena: share: dup of the %s fd: %s",
			       kj_arena_backend_name(a->backend),
			       strerror(errno));
			return -errno;
		}
		return fd;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", a->fd);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		kj_err("arena: share: reopening the memfd read-only (%s): %s "
		       "(is /proc mounted?)", path, strerror(errno));
		return -errno;
	}
	return fd;
}

int kj_arena_create_private(struct kj_arena *a, size_t size)
{
	KJ_TRY(kj_arena_create(a, size, KJ_ARENA_AUTO));
	close(a->fd);
	a->fd = -1;
	return 0;
}

int kj_arena_map_ro(int fd, size_t size, const uint8_t **out)
{
	uint8_t *p;

	*out = NULL;
	if (fd < 0 || size == 0) {
		kj_err("arena: map_ro: fd %d size %zu: invalid", fd, size);
		return -EINVAL;
	}
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int rc = -errno;

		kj_err("arena: map_ro: mmap(fd %d, %zu): %s%s", fd, size,
		       strerror(-rc), memlock_hint(rc));
		return rc;
	}
	/* Best effort: the pages are already locked by the owner. */
	(void)madvise(p, size, MADV_DONTDUMP);
	(void)madvise(p, size, MADV_DONTFORK);
	*out = p;
	return 0;
}

void kj_arena_unmap_ro(const uint8_t *p, size_t size)
{
	if (p)
		munmap((void *)p, size);
}

#ifndef SYS_mseal
#define SYS_mseal 462
#endif

int kj_arena_seal_ro(const uint8_t *p, size_t size)
{
	if (syscall(SYS_mseal, p, size, 0UL) < 0) {
		int rc = -errno;

		kj_log(rc == -ENOSYS ? KJ_LOG_WARN : KJ_LOG_ERR,
		       "arena: mseal(%zu bytes): %s", size, strerror(-rc));
		return rc;
	}
	return 0;
}

/* ---- fatal signals ---- */

static const int kj_fatal_signals[] = { SIGSEGV, SIGBUS, SIGABRT, SIGILL,
					SIGFPE };
static struct sigaction kj_prev_action[KJ_ARRAY_SIZE(kj_fatal_signals)];

static void fatal_signal(int sig, siginfo_t *info, void *uctx)
{
	int saved = errno;

	(void)uctx;
	kj_arena_wipe_all();
	for (size_t i = 0; i < KJ_ARRAY_SIZE(kj_fatal_signals); i++) {
		if (kj_fatal_signals[i] == sig)
			sigaction(sig, &kj_prev_action[i], NULL);
	}
	/*
	 * A fault (si_code > 0) re-executes the faulting instruction on return
	 * and reaches the previous handler or the default action with its real
	 * siginfo; a sent signal (kill, raise, abort) must be raised again.
	 */
	if (info->si_code <= 0)
		raise(sig);
	errno = saved;
}

/* A stack overflow SIGSEGV can only be handled on an alternate stack. */
static int ensure_altstack(void)
{
	static uint8_t *mem;
	stack_t cur, ss;

	if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
		return 0; /* someone (e.g. ASan) has set one up */
	if (!mem) {
		mem = mmap(NULL, 64 * 1024, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED) {
			mem = NULL;
			kj_err("arena: signal stack: mmap: %s",
			       strerror(errno));
			return -ENOMEM;
		}
	}
	ss.ss_sp = mem;
	ss.ss_size = 64 * 1024;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) < 0) {
		kj_err("arena: sigaltstack: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int kj_arena_install_signal_wipe(void)
{
	struct sigaction sa;

	KJ_TRY(ensure_altstack());
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fatal_signal;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < KJ_ARRAY_SIZE(kj_fatal_signals); i++) {
		struct sigaction old;

		if (sigaction(kj_fatal_signals[i], &sa, &old) < 0) {
			kj_err("arena: sigaction(%s): %s",
			       strsignal(kj_fatal_signals[i]), strerror(errno));
			return -errno;
		}
		/* Installing twice must not make us our own "previous". */
		if (old.sa_sigaction != fatal_signal)
			kj_prev_action[i] = old;
	}
	return 0;
}
