// SPDX-License-Identifier: Apache-2.0
/*
 * kinject.ko from user space, inside the VM (tests/vm/run.sh): what the
 * module promises (kmod/kinject.c) checked against the running kernel,
 * where a host that loads no module cannot.  Static, so that it needs
 * nothing in the image.
 *
 *   arena_probe check   every property once; counters back where they were
 *   arena_probe cycle   open, map, write, close; counters back to zero
 *   arena_probe hold    fill an arena, say "holding", wait for the SIGTERM a
 *                       zeroize sends, then check the arena reads zeros
 *
 * Prints one line per failed check and exits 1; 0 when all held.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../kmod/kinject_ioctl.h"

#define DEV "/dev/kinject"
#define SYS "/sys/class/misc/kinject/"
#define PAGES 8

static int failed;
static volatile sig_atomic_t got_term;

#define CHECK(cond, ...)                                              \
	do {                                                          \
		if (!(cond)) {                                        \
			fprintf(stderr, "arena_probe: FAIL %s:%d: ", \
				__func__, __LINE__);                  \
			fprintf(stderr, __VA_ARGS__);                 \
			fputc('\n', stderr);                          \
			failed = 1;                                   \
		}                                                     \
	} while (0)

static long counter(const char *name)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), SYS "%s", name);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%ld", &v) != 1) {
		fprintf(stderr, "arena_probe: %s: cannot read\n", path);
		exit(1);
	}
	fclose(f);
	return v;
}

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static size_t len(void)
{
	return PAGES * (size_t)sysconf(_SC_PAGESIZE);
}

static int all_byte(const unsigned char *p, size_t n, unsigned char b)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != b)
			return 0;
	return 1;
}

static unsigned char *open_map(int *fd)
{
	unsigned char *p;

	*fd = open(DEV, O_RDWR | O_CLOEXEC);
	if (*fd < 0) {
		fprintf(stderr, "arena_probe: %s: %s\n", DEV, strerror(errno));
		exit(1);
	}
	p = mmap(NULL, len(), PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "arena_probe: mmap: %s\n", strerror(errno));
		exit(1);
	}
	return p;
}

/* A fork()ed child does not see the mapping at all (VM_DONTCOPY). */
static void check_not_inherited(const unsigned char *p)
{
	int st = 0;
	pid_t pid = fork();

	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		_exit(p[0] == 0x5a ? 3 : 4); /* must fault before */
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/wait");
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
	      "child read the arena (status 0x%x)", st);
}

static void check_ro_view(int fd, const unsigned char *rw)
{
	unsigned char *ro, buf[16];
	int mem;

	ro = mmap(NULL, len(), PROT_READ, MAP_SHARED, fd, 0);
	CHECK(ro != MAP_FAILED, "read-only mmap: %s", strerror(errno));
	if (ro == MAP_FAILED)
		return;
	CHECK(all_byte(ro, len(), 0x5a), "second mapping sees other pages");
	CHECK(mprotect(ro, len(), PROT_READ | PROT_WRITE) < 0 &&
	      errno == EACCES, "read-only view made writable");
	CHECK(madvise(ro, len(), MADV_DOFORK) < 0, "MADV_DOFORK accepted");
	CHECK(madvise(ro, len(), MADV_DODUMP) < 0, "MADV_DODUMP accepted");
	mem = open("/proc/self/mem", O_RDONLY);
	CHECK(mem >= 0, "/proc/self/mem: %s", strerror(errno));
	CHECK(pread(mem, buf, sizeof(buf), (off_t)(unsigned long)rw) < 0,
	      "arena readable through /proc/self/mem");
	close(mem);
	munmap(ro, len());
}

static int do_check(void)
{
	long arenas = counter("arenas"), bytes = counter("bytes");
	long events = counter("zeroize_events");
	unsigned char *p;
	int fd;

	p = open_map(&fd);
	CHECK(counter("arenas") == arenas + 1, "arenas counter");
	CHECK(counter("bytes") == bytes + (long)len(), "bytes counter");
	CHECK(all_byte(p, len(), 0), "fresh pages are not zero");
	memset(p, 0x5a, len());
	CHECK(mmap(NULL, len(), PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED,
	      "a private mapping was allowed");
	check_ro_view(fd, p);
	check_not_inherited(p);

	signal(SIGTERM, on_term);
	CHECK(ioctl(fd, KINJECT_IOC_ZEROIZE) == 0, "ioctl: %s",
	      strerror(errno));
	CHECK(all_byte(p, len(), 0), "zeroize left data");
	CHECK(got_term, "no SIGTERM to the arena's owner");
	CHECK(counter("zeroize_events") == events + 1, "zeroize_events");
	CHECK(ioctl(fd, _IO('k', 0x7f)) < 0 && errno == ENOTTY,
	      "unknown ioctl accepted");
	munmap(p, len());
	close(fd);
	CHECK(counter("arenas") == arenas, "arenas not back after close");
	CHECK(counter("bytes") == bytes, "bytes not back after close");
	return failed;
}

static int do_cycle(void)
{
	unsigned char *p;
	int fd;

	p = open_map(&fd);
	memset(p, 0x5a, len());
	munmap(p, len());
	close(fd);
	CHECK(counter("arenas") == 0, "arenas %ld", counter("arenas"));
	CHECK(counter("bytes") == 0, "bytes %ld", counter("bytes"));
	return failed;
}

static int do_hold(void)
{
	sigset_t set, old;
	unsigned char *p;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, &old);
	signal(SIGTERM, on_term);
	p = open_map(&fd);
	memset(p, 0x5a, len());
	printf("holding\n");
	fflush(stdout);
	while (!got_term)
		sigsuspend(&old);
	CHECK(all_byte(p, len(), 0), "arena not zero after zeroize");
	close(fd);
	return failed;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "check"))
		return do_check();
	if (argc == 2 && !strcmp(argv[1], "cycle"))
		return do_cycle();
	if (argc == 2 && !strcmp(argv[1], "hold"))
		return do_hold();
	fprintf(stderr, "usage: arena_probe check|cycle|hold\n");
	return 2;
}
