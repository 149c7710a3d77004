// SPDX-License-Identifier: Apache-2.0
/*
 * The injector sandbox against the real kernel.  Every sandboxed step runs
 * in a forked child that reports by exit code and leaves with _exit() (no
 * cmocka, no LeakSanitizer inside the filter); the parent judges how it
 * died and what it left behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "injector/sandbox.h"

static int skipped;

static bool have_landlock(void)
{
	return syscall(SYS_landlock_create_ruleset, NULL, 0, 1U) > 0;
}

static int wait_child(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void assert_exit0(int st)
{
	if (WIFSIGNALED(st))
		fail_msg("child killed by signal %d", WTERMSIG(st));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- seccomp: forbidden syscalls kill ---- */

enum forbidden { F_OPENAT, F_SOCKET, F_MMAP_EXEC, F_MMAP_SHARED_RW,
		 F_URING_SETUP, F_KILL_PARENT };

static void do_forbidden(enum forbidden what, int memfd, pid_t parent)
{
	struct io_uring_params p;

	switch (what) {
	case F_OPENAT:
		syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
		break;
	case F_SOCKET:
		syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
		break;
	case F_MMAP_EXEC:
		mmap(NULL, 4096, PROT_READ | PROT_EXEC,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		break;
	case F_MMAP_SHARED_RW:
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
		break;
	case F_URING_SETUP:
		memset(&p, 0, sizeof(p));
		syscall(SYS_io_uring_setup, 4, &p);
		break;
	case F_KILL_PARENT:
		syscall(SYS_kill, parent, 0);
		break;
	default:
		break;
	}
}

static void check_forbidden(enum forbidden what)
{
	int memfd = memfd_create("t", MFD_CLOEXEC);
	pid_t pid, parent = getpid();
	int st;

	assert_true(memfd >= 0);
	assert_int_equal(ftruncate(memfd, 4096), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (kj_sandbox_enter() < 0)
			_exit(3);
		do_forbidden(what, memfd, parent);
		_exit(0);
	}
	st = wait_child(pid);
	close(memfd);
	if (!WIFSIGNALED(st))
		fail_msg("forbidden call %d: child exited %d instead of SIGSYS",
			 (int)what, WEXITSTATUS(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
}

static void test_openat_sigsys(void **state)
{
	(void)state;
	check_forbidden(F_OPENAT);
}

static void test_other_forbidden_sigsys(void **state)
{
	(void)state;
	check_forbidden(F_SOCKET);
	check_forbidden(F_MMAP_EXEC);
	check_forbidden(F_MMAP_SHARED_RW);
	check_forbidden(F_URING_SETUP);
	check_forbidden(F_KILL_PARENT);
}

/* ---- the restricted ring refuses OPENAT ---- */

static int submit_openat(struct io_uring *ring, const char *path)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int res;

	io_uring_prep_openat(sqe, AT_FDCWD, path, O_CREAT | O_RDWR | O_CLOEXEC,
			     0600);
	if (io_uring_submit(ring) != 1 || io_uring_wait_cqe(ring, &cqe) < 0)
		return -9999;
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

enum ring_mode { RING_PLAIN, RING_RESTRICTED, RING_RESTRICTED_SANDBOXED,
		 RING_PLAIN_SANDBOXED };

#define ANY_FD 1000000

/* Child: OPENAT(O_CREAT) through a ring; exit 0 if res == want. */
static void check_uring_openat(enum ring_mode mode, const char *path,
			       int want)
{
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct io_uring ring;
		int res;

		if (mode == RING_PLAIN || mode == RING_PLAIN_SANDBOXED) {
			if (io_uring_queue_init(4, &ring, 0) < 0)
				_exit(3);
		} else if (kj_uring_init_restricted(&ring, 4, NULL) < 0) {
			_exit(3);
		}
		if ((mode == RING_RESTRICTED_SANDBOXED ||
		     mode == RING_PLAIN_SANDBOXED) && kj_sandbox_enter() < 0)
			_exit(4);
		res = submit_openat(&ring, path);
		if (res != want && !(want == ANY_FD && res >= 0)) {
			fprintf(stderr, "OPENAT on ring mode %d: %d, want %d\n",
				(int)mode, res, want);
			_exit(5);
		}
		_exit(0);
	}
	assert_exit0(wait_child(pid));
}

static void test_uring_openat_eacces(void **state)
{
	char dir[] = "/tmp/kj-sandbox-XXXXXX", path[64];
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/created", dir);

	/* Control: an unrestricted ring does create the file. */
	check_uring_openat(RING_PLAIN, path, ANY_FD);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(unlink(path), 0);

	check_uring_openat(RING_RESTRICTED, path, -EACCES);
	assert_int_equal(stat(path, &st), -1);
	check_uring_openat(RING_RESTRICTED_SANDBOXED, path, -EACCES);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(rmdir(dir), 0);
}

/*
 * The ring's SQE flags are restricted to what the engine sets (buffer
 * selection): a link, drain, async punt or CQE skip is refused, so a
 * compromised injector cannot chain operations the engine never chains.
 */
static int nop_with_flags(struct io_uring *ring, unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int res;

	if (!sqe)
		return -ENOSPC;
	io_uring_prep_nop(sqe);
	sqe->flags |= (__u8)flags;
	if (io_uring_submit(ring) != 1 || io_uring_wait_cqe(ring, &cqe) < 0)
		return -EIO;
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

static void test_uring_sqe_flags(void **state)
{
	static const unsigned refused[] = {
		IOSQE_IO_LINK, IOSQE_IO_HARDLINK, IOSQE_IO_DRAIN,
		IOSQE_ASYNC, IOSQE_CQE_SKIP_SUCCESS, IOSQE_FIXED_FILE,
	};
	struct io_uring ring;

	(void)state;
	assert_true(kj_uring_init_restricted(&ring, 8, NULL) >= 0);
	assert_int_equal(nop_with_flags(&ring, 0), 0);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		assert_int_equal(nop_with_flags(&ring, refused[i]), -EACCES);
	io_uring_queue_exit(&ring);
}

/*
 * io_uring bypasses seccomp: the filesystem layer must hold on its own.
 * An unrestricted ring created before the sandbox still cannot open.
 */
static void check_fs_layer(const char *method, int want)
{
	char dir[] = "/tmp/kj-sandbox-XXXXXX", path[64];
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/created", dir);
	setenv("KINJECT_SANDBOX_FS", method, 1);
	check_uring_openat(RING_PLAIN_SANDBOXED, path, want);
	unsetenv("KINJECT_SANDBOX_FS");
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(rmdir(dir), 0);
}

static void test_fs_landlock(void **state)
{
	(void)state;
	if (!have_landlock()) {
		skipped++;
		skip();
	}
	check_fs_layer("landlock", -EACCES);
}

static void test_fs_mountns(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		skipped++;
		skip();
	}
	/* The empty root has no /tmp at all. */
	check_fs_layer("mountns", -ENOENT);
}

/* ---- allowed I/O through the ring still works ---- */

#define BGID 7
#define NBUF 4
#define BUFSZ 256

static int child_ring_io(int sock)
{
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	struct io_uring_buf_reg reg;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	char *bufs;
	int rc;

	if (kj_uring_init_restricted(&ring, 8, NULL) < 0)
		return 10;
	/* Before the sandbox, as the engine does: the provided buffer ring
	 * (io_uring_register is not allowed afterwards). */
	br = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bufs = malloc(NBUF * BUFSZ);
	if (br == MAP_FAILED || !bufs)
		return 12;
	io_uring_buf_ring_init(br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uintptr_t)br;
	reg.ring_entries = NBUF;
	reg.bgid = BGID;
	rc = io_uring_register_buf_ring(&ring, &reg, 0);
	if (rc < 0) {
		fprintf(stderr, "register_buf_ring: %d\n", rc);
		return 13;
	}
	for (int i = 0; i < NBUF; i++)
		io_uring_buf_ring_add(br, bufs + i * BUFSZ, BUFSZ, i,
				      io_uring_buf_ring_mask(NBUF), i);
	io_uring_buf_ring_advance(br, NBUF);
	if (kj_sandbox_enter() < 0)
		return 11;

	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_send(sqe, sock, "ping", 4, 0);
	sqe->user_data = 1;
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_recv_multishot(sqe, sock, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	sqe->user_data = 2;
	if (io_uring_submit(&ring) != 2)
		return 14;
	for (int seen = 0; seen < 2;) {
		if (io_uring_wait_cqe(&ring, &cqe) < 0)
			return 15;
		if (cqe->user_data == 1 && cqe->res != 4)
			return 16;
		if (cqe->user_data == 2) {
			unsigned id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

			if (cqe->res != 4 ||
			    !(cqe->flags & IORING_CQE_F_BUFFER) ||
			    memcmp(bufs + id * BUFSZ, "pong", 4))
				return 17;
			if (!(cqe->flags & IORING_CQE_F_MORE))
				return 18; /* multishot stays armed */
		}
		seen++;
		io_uring_cqe_seen(&ring, cqe);
	}
	/* No io_uring_register once sandboxed (test_sandbox_walk.c): the
	 * buffer ring goes with the process. */
	free(bufs);
	return 0;
}

static void test_uring_socketpair_io(void **state)
{
	int sv[2];
	char buf[8];
	pid_t pid;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[1]);
		_exit(child_ring_io(sv[0]));
	}
	close(sv[0]);
	assert_int_equal(read(sv[1], buf, 4), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(write(sv[1], "pong", 4), 4);
	assert_exit0(wait_child(pid));
	close(sv[1]);
}

/* ---- credentials: no capabilities, not dumpable, seccomp on ---- */

static void check_status_line(const char *status, const char *key,
			      const char *want)
{
	const char *p = strstr(status, key);
	char got[64];
	size_t n;

	assert_non_null(p);
	p += strlen(key);
	while (*p == '\t' || *p == ' ')
		p++;
	n = strcspn(p, "\n");
	assert_true(n < sizeof(got));
	memcpy(got, p, n);
	got[n] = 0;
	assert_string_equal(got, want);
}

static void test_no_caps_not_dumpable(void **state)
{
	int to_child[2], to_parent[2];
	char status[4096], path[64], c;
	ssize_t n;
	pid_t pid;
	int fd;

	(void)state;
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(to_parent), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (kj_sandbox_enter() < 0)
			_exit(3);
		c = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 ? 'y' : 'n';
		if (write(to_parent[1], &c, 1) != 1 ||
		    read(to_child[0], &c, 1) != 1)
			_exit(4);
		_exit(0);
	}
	assert_int_equal(read(to_parent[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, status, sizeof(status) - 1);
	close(fd);
	assert_true(n > 0);
	status[n] = 0;
	check_status_line(status, "CapInh:", "0000000000000000");
	check_status_line(status, "CapPrm:", "0000000000000000");
	check_status_line(status, "CapEff:", "0000000000000000");
	check_status_line(status, "CapBnd:", "0000000000000000");
	check_status_line(status, "CapAmb:", "0000000000000000");
	check_status_line(status, "NoNewPrivs:", "1");
	check_status_line(status, "Seccomp:", "2");
	assert_int_equal(write(to_child[1], "x", 1), 1);
	assert_exit0(wait_child(pid));
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
}

/* The mount-namespace fallback leaves an empty root behind. */
static void test_mountns_root_empty(void **state)
{
	int to_child[2], to_parent[2], entries = 0;
	char path[64], c;
	struct dirent *de;
	DIR *d;
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		skipped++;
		skip();
	}
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(to_parent), 0);
	setenv("KINJECT_SANDBOX_FS", "mountns", 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (kj_sandbox_enter() < 0 ||
		    strcmp(kj_sandbox_fs_method(), "mountns"))
			_exit(3);
		if (write(to_parent[1], "r", 1) != 1 ||
		    read(to_child[0], &c, 1) != 1)
			_exit(4);
		_exit(0);
	}
	unsetenv("KINJECT_SANDBOX_FS");
	assert_int_equal(read(to_parent[0], &c, 1), 1);
	snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			entries++;
	closedir(d);
	assert_int_equal(entries, 0);
	assert_int_equal(write(to_child[1], "x", 1), 1);
	assert_exit0(wait_child(pid));
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openat_sigsys),
		cmocka_unit_test(test_other_forbidden_sigsys),
		cmocka_unit_test(test_uring_openat_eacces),
		cmocka_unit_test(test_uring_sqe_flags),
		cmocka_unit_test(test_fs_landlock),
		cmocka_unit_test(test_fs_mountns),
		cmocka_unit_test(test_uring_socketpair_io),
		cmocka_unit_test(test_no_caps_not_dumpable),
		cmocka_unit_test(test_mountns_root_empty),
	};
	int failed;

	if (geteuid() != 0 && !have_landlock()) {
		fprintf(stderr, "test_sandbox: no Landlock and not root\n");
		return 77;
	}
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	if (failed)
		return 1;
	return skipped ? 77 : 0;
}
