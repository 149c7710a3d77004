// SPDX-License-Identifier: Apache-2.0
/*
 * Starting the injector as a new program (injector.h): the keeper has an
 * HSM session open and, for SoftHSM2, the unwrapped token key in its heap;
 * a forked child would carry a copy of all of it.  Exec'ing the same binary
 * gives a fresh address space (OpenSSH: sshd execs sshd-session), and the
 * boot packet over the keeper channel carries the little it needs.  Apart
 * from injector.c because half of it runs in the keeper's forked child,
 * where only async-signal-safe calls are allowed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "injector.h"
#include "base/log.h"

extern char **environ;

/* What the injector may see of the keeper's environment (prefixes). */
static const char *const env_keep[] = {
	"KINJECT_SANDBOX_FS=", "ASAN_OPTIONS=", "UBSAN_OPTIONS=",
	"LSAN_OPTIONS=", "TZ=", "LANG=", "LC_ALL=",
	/* The injectors log in the keeper's format (JSON lines off a
	 * terminal: one log collector reads both). */
	KJ_LOG_FORMAT_ENV "=",
};

void kj_injector_env(char *env[KJ_INJECTOR_ENV_MAX])
{
	size_t n = 0;

	for (char **e = environ; e && *e && n + 1 < KJ_INJECTOR_ENV_MAX; e++)
		for (size_t i = 0; i < KJ_ARRAY_SIZE(env_keep); i++)
			if (!strncmp(*e, env_keep[i], strlen(env_keep[i]))) {
				env[n++] = *e;
				break;
			}
	env[n] = NULL;
}

void kj_injector_close_except(const int *keep, size_t n)
{
	int sorted[KJ_INJECTOR_MAX_LISTEN + 4];
	unsigned lo = 3;

	if (n > KJ_ARRAY_SIZE(sorted))
		n = KJ_ARRAY_SIZE(sorted);
	/* Insertion sort: no qsort (it may allocate) after fork(). */
	for (size_t i = 0; i < n; i++) {
		size_t j = i;

		for (; j > 0 && sorted[j - 1] > keep[i]; j--)
			sorted[j] = sorted[j - 1];
		sorted[j] = keep[i];
	}
	for (size_t i = 0; i < n; i++) {
		if (sorted[i] < (int)lo)
			continue;
		if (sorted[i] > (int)lo)
			syscall(SYS_close_range, lo, (unsigned)sorted[i] - 1,
				0u);
		lo = (unsigned)sorted[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0u, 0u);
}

static void say(const char *a, const char *b)
{
	/* write(2) only: async-signal-safe, no stdio buffers. */
	(void)!write(2, a, strlen(a));
	(void)!write(2, b, strlen(b));
	(void)!write(2, "\n", 1);
}

void kj_injector_exec(int exe_fd, int ipc_fd, const int *keep, size_t n,
		      char *const *env)
{
	int all[KJ_INJECTOR_MAX_LISTEN + 4];
	char fdnum[16], *p = fdnum + sizeof(fdnum);
	char *argv[] = { "kinject", KJ_INJECTOR_ARGV1, NULL, NULL };
	size_t m = 0;
	unsigned v = (unsigned)ipc_fd;

	for (size_t i = 0; i < n && m < KJ_ARRAY_SIZE(all) - 2; i++)
		all[m++] = keep[i];
	all[m++] = ipc_fd;
	all[m++] = exe_fd;
	kj_injector_close_except(all, m);
	for (size_t i = 0; i + 1 < m; i++)
		if (fcntl(all[i], F_SETFD, 0) < 0)
			goto fail;
	/* stdin is not ours; stdout goes where the log goes. */
	close(0);
	if (dup2(2, 1) < 0)
		goto fail;
	*--p = 0;
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10));
	argv[2] = p;
	syscall(SYS_execveat, exe_fd, "", argv, env, AT_EMPTY_PATH);
fail:
	say("kinject: injector: cannot exec the kinject binary: ",
	    strerror(errno));
	_exit(127);
}

static int read_boot(int fd, struct kj_injector_boot *b)
{
	ssize_t n;

	do
		n = recv(fd, b, sizeof(*b), MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		kj_err("injector: reading the boot packet from fd %d: %s", fd,
		       strerror(errno));
		return -errno;
	}
	if ((size_t)n != sizeof(*b) || b->magic != KJ_INJECTOR_BOOT_MAGIC ||
	    b->size != sizeof(*b) || b->n_listen > KJ_INJECTOR_MAX_LISTEN ||
	    b->keeper_pid != (int32_t)getppid() ||
	    b->tls_len > KJ_INJECTOR_TLS_MAX ||
	    (b->listen_tls && !b->tls_len) ||
	    memchr(b->fw_version, 0, sizeof(b->fw_version)) == NULL) {
		kj_err("injector: boot packet of %zd bytes does not come from "
		       "this kinject's keeper (the `%s' entry point is not "
		       "for direct use)", n, KJ_INJECTOR_ARGV1);
		return -EPROTO;
	}
	return 0;
}

/* tls: listeners: "tls.pem\0site CAs\0" in the packet after the boot. */
static int read_tls(int fd, uint32_t len, struct kj_injector_args *a)
{
	char *p = malloc(len);
	ssize_t n;
	size_t l1;

	if (!p) {
		kj_err("injector: out of memory for the TLS boot packet");
		return -ENOMEM;
	}
	do
		n = recv(fd, p, len, MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	l1 = n == (ssize_t)len ? strnlen(p, len) : len;
	if (l1 + 1 >= len || p[len - 1] != 0 ||
	    strlen(p + l1 + 1) != len - l1 - 2) {
		kj_err("injector: TLS boot packet of %zd bytes, not the %u "
		       "the boot packet announced", n, len);
		free(p);
		return -EPROTO;
	}
	a->tls_pem = p;
	a->tls_cas = p + l1 + 1;
	return 0;
}

void kj_injector_exec_main(int argc, char **argv)
{
	struct kj_injector_boot b;
	struct kj_injector_args a = { 0 };
	char *end;
	unsigned long fd;

	if (argc != 3 || (errno = 0, fd = strtoul(argv[2], &end, 10),
			  errno || *end || end == argv[2] || fd > 65535)) {
		kj_err("injector: `%s' is started by `kinject run' only",
		       KJ_INJECTOR_ARGV1);
		_exit(1);
	}
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (read_boot((int)fd, &b) < 0 ||
	    (b.tls_len && read_tls((int)fd, b.tls_len, &a) < 0))
		_exit(1);
	a.arena_fd = b.arena_fd;
	a.arena_size = (size_t)b.arena_size;
	a.cfg.worker = b.worker;
	a.cfg.fw_off = (size_t)b.fw_off;
	a.cfg.fw_size = b.fw_size;
	memcpy(a.cfg.fw_version, b.fw_version, sizeof(a.cfg.fw_version));
	memcpy(a.cfg.fw_sha256, b.fw_sha256, 32);
	a.cfg.listen_fds = b.listen_fds;
	a.cfg.n_listen = b.n_listen;
	a.cfg.listen_tls = b.listen_tls;
	a.cfg.ipc_fd = (int)fd;
	a.cfg.max_conns = b.max_conns;
	a.cfg.accept_limit = b.accept_limit;
	a.cfg.workers = b.workers;
	a.cfg.hello_timeout_ms = b.hello_timeout_ms;
	a.cfg.program_timeout_ms = b.program_timeout_ms;
	kj_injector_main(&a);
}
