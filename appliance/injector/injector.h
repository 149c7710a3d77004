/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The injector process (SPEC.md §2): forked and exec'd by the keeper (the
 * same binary, hidden entry point KJ_INJECTOR_ARGV1, OpenSSH sshd-session
 * style) so that it starts with none of the keeper's memory: no HSM
 * session, no PKCS#11 module state, no heap.  Its configuration arrives as
 * the first packet on the keeper channel (struct kj_injector_boot).  It maps the secret
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

/* argv[1] of the exec'd injector; argv[2] is its keeper channel fd. */
#define KJ_INJECTOR_ARGV1 "__injector"
#define KJ_INJECTOR_BOOT_MAGIC 0x31544f4f424a4b49ULL /* "IKJBOOT1" */
#define KJ_INJECTOR_MAX_LISTEN 64

/* The first keeper -> injector packet: everything the engine needs. */
struct kj_injector_boot {
	uint64_t magic;
	uint32_t size;		/* sizeof(struct kj_injector_boot) */
	uint32_t worker;
	int32_t arena_fd;	/* read-only where the backend allows */
	uint32_t n_listen;
	int32_t listen_fds[KJ_INJECTOR_MAX_LISTEN];
	uint64_t arena_size;
	uint64_t fw_off;
	uint32_t fw_size;
	uint32_t max_conns;
	uint32_t accept_limit;
	uint32_t hello_timeout_ms;
	uint32_t program_timeout_ms;
	int32_t keeper_pid;	/* getppid() must say the same */
	char fw_version[KJ_STR8_MAX + 1];
	uint8_t fw_sha256[32];
	uint64_t listen_tls;	/* bit i: listen_fds[i] is tls: */
	/*
	 * tls: listeners: the next packet is tls_len bytes, tls.pem's text
	 * and NUL, the enrolled site CAs' text and NUL (docs/TLS.md).
	 */
	uint32_t tls_len;
	uint32_t workers;	/* the job's injectors (accept spread) */
};
#define KJ_INJECTOR_TLS_MAX (4u << 20)

/*
 * The environment handed to the injector: the keeper's, less everything but
 * the few variables that tune the sandbox and the sanitizer runtimes (a PIN
 * in KINJECT_HSM_PIN must not reach it).  Pointers into environ, NULL-
 * terminated; fill it before fork().
 */
#define KJ_INJECTOR_ENV_MAX 16
void kj_injector_env(char *env[KJ_INJECTOR_ENV_MAX]);

/*
 * In the keeper's freshly forked child: keep only stderr, the fds in
 * keep[0..n) (cleared of close-on-exec) and exe_fd, point stdout at stderr,
 * close stdin, and exec exe_fd (an O_PATH fd of /proc/self/exe) as
 * `kinject __injector <ipc_fd>' with env.  Async-signal-safe; exits 127 if
 * the exec fails.
 */
__attribute__((noreturn)) void kj_injector_exec(int exe_fd, int ipc_fd,
						const int *keep, size_t n,
						char *const *env);

/*
 * The hidden entry point (main.c): read the boot packet from the channel
 * fd in argv[2], check it, run kj_injector_main().  Never returns.
 */
__attribute__((noreturn)) void kj_injector_exec_main(int argc, char **argv);

/* Close every fd from 3 up except keep[0..n) (at most 68).  AS-safe. */
void kj_injector_close_except(const int *keep, size_t n);

struct kj_injector_args {
	int arena_fd;
	size_t arena_size;
	char *tls_pem;		/* tls_len: tls.pem, then the site CAs */
	const char *tls_cas;
	struct kj_engine_cfg cfg; /* arena, arena_size filled by the injector */
};

/*
 * The injector's whole life after the boot packet; never returns.  Exit status 0 after
 * a STOP, 1 on any failure (logged).
 */
__attribute__((noreturn)) void kj_injector_main(struct kj_injector_args *a);

#endif
