/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Turning a process into an injector (SPEC.md §2, docs/SANDBOX.md).
 *
 * Order, in the freshly forked injector (everything needing a path, a new
 * ring or a new mapping of an fd comes before step 3):
 *
 *   1. kj_arena_map_ro(arena_fd, ...)       map the secret arena read-only
 *   2. kj_uring_init_restricted(&ring, ...) io_uring_setup is not allowed later;
 *                                           one call per ring the worker needs
 *   3. kj_sandbox_enter()                   rlimits, no_new_privs, no
 *                                           filesystem, no capabilities, not
 *                                           dumpable, seccomp allowlist
 *   4. the event loop.  Still allowed: io_uring_enter, io_uring_register of
 *      the ops the ring permits (provided buffer rings), malloc, read/write/
 *      sendmsg/recvmsg/close on fds already open, writes to stderr, clocks.
 *
 * A syscall outside the allowlist kills the process with SIGSYS (a build
 * with -DKJ_SECCOMP_TRAP names the syscall on stderr first).  An io_uring
 * opcode outside the ring's restriction set completes with -EACCES: that is
 * a policy violation, log it as one.
 */
#ifndef KINJECT_SANDBOX_H
#define KINJECT_SANDBOX_H

#include <liburing.h>

#include "base/kinject.h"

/*
 * Create a ring disabled, register its restrictions (the SQE opcodes,
 * SQE flags and register ops the engine needs, docs/SANDBOX.md), enable it.
 * p may be NULL; p->flags gains IORING_SETUP_R_DISABLED internally.
 * No fixed files: the ring works on plain fds (multishot accept returns
 * ordinary fds).  On error the ring is not initialised.
 */
KJ_MUST_CHECK int kj_uring_init_restricted(struct io_uring *ring,
					   unsigned entries,
					   struct io_uring_params *p);

/*
 * Irreversibly sandbox the calling process (all its threads must be
 * created afterwards or not at all: seccomp is applied with TSYNC).
 * Needs CAP_SYS_ADMIN only for the mount-namespace fallback when the kernel
 * has no Landlock.  KINJECT_SANDBOX_FS=landlock|mountns forces the
 * filesystem method (tests).  Returns 0, or -errno after logging which step
 * failed; on failure the process must exit, it is half-sandboxed.
 */
KJ_MUST_CHECK int kj_sandbox_enter(void);

/*
 * Before kj_sandbox_enter(): also allow the setsockopt calls that move a
 * TLS connection's record layer into the kernel (kTLS; sandbox_table.c
 * kj_seccomp_ktls_table).  Only for an injector serving tls: on a kernel
 * that has kTLS (kj_tls_ktls_available()).
 */
void kj_sandbox_allow_ktls(void);

/*
 * How the filesystem was removed: "landlock" or "mountns" (for the log and
 * the evidence); NULL before kj_sandbox_enter() succeeded.
 */
const char *kj_sandbox_fs_method(void);

#endif
