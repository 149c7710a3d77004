// SPDX-License-Identifier: Apache-2.0
/*
 * THE REVIEWED TABLE: everything an injector may ask of the kernel after
 * kj_sandbox_enter() (docs/SANDBOX.md).  Anything not listed kills the
 * process (SCMP_ACT_KILL_PROCESS).  Adding a line here widens the attack
 * surface of the only process that talks to the network: say why.
 *
 * Deliberately absent: open/openat/creat and every other path call (there
 * is no filesystem, and a path is how secrets would leave), socket/connect/
 * bind/listen (sockets come from the keeper or from the ring's ACCEPT),
 * fork/clone/execve, ptrace/process_vm_*, io_uring_setup (a new ring would
 * have no restrictions), io_uring_register (the rings are set up; with fd
 * -1 it reaches "blind" ops no ring restriction covers), mmap with
 * PROT_EXEC, writable MAP_SHARED mappings and mprotect(PROT_WRITE) (the
 * arena mapping must stay read-only on every backend, mseal or not),
 * setsockopt (the engine sets no option; SO_ATTACH_FILTER and friends
 * stay out), kill of other processes.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <linux/prctl.h>
#include <linux/tls.h>
#include <signal.h>
#include <sys/mman.h>

#include "sandbox_table.h"
#include "base/kinject.h"

#define ALLOW(n) { #n, SCMP_ACT_ALLOW, 0, { { 0 } } }
#define ALLOW1(n, a0) { #n, SCMP_ACT_ALLOW, 1, { a0 } }
#define ALLOW2(n, a0, a1) { #n, SCMP_ACT_ALLOW, 2, { a0, a1 } }
#define DENY(n, e) { #n, SCMP_ACT_ERRNO(e), 0, { { 0 } } }
#define ARG_EQ(i, v) { (i), SCMP_CMP_EQ, (uint64_t)(v), 0 }
#define ARG_MASK0(i, m) { (i), SCMP_CMP_MASKED_EQ, (uint64_t)(m), 0 }

const struct kj_seccomp_rule kj_seccomp_table[] = {
	/*
	 * The event loop: submit and reap on rings created, restricted,
	 * enabled and given their buffer rings before the sandbox.
	 */
	ALLOW(io_uring_enter),

	/*
	 * Memory for glibc malloc (single-threaded: brk, and mmap for large
	 * chunks; never mprotect to writable, which only its per-thread
	 * arenas do).  Never executable.  Writable mappings only private: a
	 * read-write MAP_SHARED mapping of the arena fd is refused here,
	 * read-only shared mappings are fine.  No mprotect can add
	 * PROT_WRITE (or PROT_EXEC): the arena mapping stays read-only even
	 * where mseal(2) is missing and the fd could not be made read-only
	 * (memfd_secret).  mremap is refused softly: glibc's realloc then
	 * copies, and no mapping moves or grows.
	 */
	ALLOW(brk),
	ALLOW2(mmap, ARG_MASK0(2, PROT_EXEC), ARG_MASK0(3, MAP_SHARED)),
	ALLOW1(mmap, ARG_MASK0(2, PROT_EXEC | PROT_WRITE)),
	ALLOW1(mprotect, ARG_MASK0(2, PROT_EXEC | PROT_WRITE)),
	ALLOW(munmap),
	DENY(mremap, EPERM),
	/* malloc trimming and THP hints; not DODUMP/DOFORK on the arena. */
	ALLOW1(madvise, ARG_EQ(2, MADV_DONTNEED)),
	ALLOW1(madvise, ARG_EQ(2, MADV_FREE)),
	ALLOW1(madvise, ARG_EQ(2, MADV_DONTDUMP)),
	ALLOW1(madvise, ARG_EQ(2, MADV_HUGEPAGE)),
	ALLOW1(madvise, ARG_EQ(2, MADV_NOHUGEPAGE)),

	/* Locks (pthread, malloc arenas) and yielding. */
	ALLOW(futex),
	ALLOW(sched_yield),

	/* Time: timeouts and rates; the vDSO falls back to these. */
	ALLOW(clock_gettime),
	ALLOW(clock_nanosleep),
	ALLOW(nanosleep),
	ALLOW(gettimeofday),

	/* Randomness for nonces and hash seeds. */
	ALLOW(getrandom),

	/*
	 * Signals: return from handlers, masks, (re)install handlers (the
	 * arena's fatal-signal wipe hands over to the default action), and
	 * raise a signal on ourselves only (abort(), re-raise after a wipe).
	 */
	ALLOW(rt_sigreturn),
	ALLOW(rt_sigprocmask),
	ALLOW(rt_sigaction),
	ALLOW(restart_syscall),
	ALLOW1(tgkill, ARG_EQ(0, KJ_SECCOMP_SELF_PID)),
	ALLOW(getpid),
	ALLOW(gettid),

	/*
	 * I/O on fds that are already open: device sockets, the keeper
	 * channel, stderr for the log.  No call here can create an fd
	 * (recvmsg could receive one over the keeper channel, which by
	 * protocol carries none).
	 */
	ALLOW(read),
	ALLOW(readv),
	ALLOW(write),
	ALLOW(writev),
	ALLOW(sendmsg),
	ALLOW(recvmsg),
	ALLOW(sendto),
	ALLOW(recvfrom),
	ALLOW(shutdown),
	ALLOW(close),
	/* O_NONBLOCK and close-on-exec flags; no F_DUPFD, no locks. */
	ALLOW1(fcntl, ARG_EQ(1, F_GETFL)),
	ALLOW1(fcntl, ARG_EQ(1, F_SETFL)),
	ALLOW1(fcntl, ARG_EQ(1, F_GETFD)),
	ALLOW1(fcntl, ARG_EQ(1, F_SETFD)),
	/* glibc's fstat() on stderr at first stdio use: fd only, no path. */
	ALLOW(fstat),
	ALLOW1(newfstatat, ARG_EQ(3, AT_EMPTY_PATH)),
	/* Reading socket state only; setsockopt is not here at all. */
	ALLOW(getsockopt),
	ALLOW(getsockname),
	ALLOW(getpeername),

	/* Self-checks: "am I still not dumpable" (tests, keeper health). */
	ALLOW1(prctl, ARG_EQ(0, PR_GET_DUMPABLE)),

	/* Leaving. */
	ALLOW(exit),
	ALLOW(exit_group),

	/*
	 * Soft denials: harmless probes by libc, answered with an error
	 * instead of a kill.  glibc's qsort asks sysinfo for the RAM size;
	 * mremap is above.
	 */
	DENY(sysinfo, EPERM),
};

const size_t kj_seccomp_table_len = KJ_ARRAY_SIZE(kj_seccomp_table);

/*
 * Only in an injector serving a tls: listener on a kernel that offers
 * kTLS (kj_sandbox_allow_ktls(), docs/TLS.md): after each handshake the
 * record layer moves into the kernel, which takes three setsockopt calls
 * on the connection, and no other option.  The ULP's name is a pointer
 * seccomp cannot read: "tls" is the only one kinject asks for, another
 * name fails the TLS_TX that must follow.  Without kTLS setsockopt stays
 * out of the filter (kj_seccomp_table above, test_sandbox_walk).
 */
#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif
const struct kj_seccomp_rule kj_seccomp_ktls_table[] = {
	ALLOW2(setsockopt, ARG_EQ(1, IPPROTO_TCP), ARG_EQ(2, TCP_ULP)),
	ALLOW2(setsockopt, ARG_EQ(1, SOL_TLS), ARG_EQ(2, TLS_TX)),
	ALLOW2(setsockopt, ARG_EQ(1, SOL_TLS), ARG_EQ(2, TLS_RX)),
};

const size_t kj_seccomp_ktls_table_len = KJ_ARRAY_SIZE(kj_seccomp_ktls_table);

/*
 * -DKJ_SANITIZED (make SAN=1) only: the ASan/UBSan runtime.  Sandboxed
 * test children _exit() so LeakSanitizer (ptrace, clone) never runs
 * inside the filter; reports still reach stderr.
 */
const struct kj_seccomp_rule kj_seccomp_san_table[] = {
	/* The runtime tears down its alternate signal stack at exit.  Its
	 * allocator's madvise calls are already in the main table. */
	ALLOW(sigaltstack),
	/*
	 * Not openat: the tests require it to kill in every build.  An ASan
	 * report that wants /proc/self/maps for symbols dies by SIGSYS
	 * after printing its first lines, which is still a failure.
	 */
};

const size_t kj_seccomp_san_table_len = KJ_ARRAY_SIZE(kj_seccomp_san_table);

/*
 * The rings (IORING_REGISTER_RESTRICTIONS): io_uring operations bypass
 * seccomp entirely, so this is the only gate on what the ring can do.
 */
#define SQE_OP(op) { .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = (op) }
#define REG_OP(op) \
	{ .opcode = IORING_RESTRICTION_REGISTER_OP, .register_op = (op) }

const struct io_uring_restriction kj_uring_restrictions[] = {
	/* Programming sockets: multishot accept and recv (provided buffer
	 * rings), send. */
	SQE_OP(IORING_OP_ACCEPT),
	SQE_OP(IORING_OP_RECV),
	SQE_OP(IORING_OP_SEND),
	/* The keeper channel (unix socketpair): messages, never fds. */
	SQE_OP(IORING_OP_SENDMSG),
	SQE_OP(IORING_OP_RECVMSG),
	/* Connection life cycle, timeouts, cancellation, wake-ups. */
	SQE_OP(IORING_OP_CLOSE),
	SQE_OP(IORING_OP_TIMEOUT),
	SQE_OP(IORING_OP_ASYNC_CANCEL),
	SQE_OP(IORING_OP_NOP),
	SQE_OP(IORING_OP_POLL_ADD),
	/* Provided buffer rings for multishot recv, and the registered ring
	 * fd (a cheaper io_uring_enter).  No fixed files: see SANDBOX.md. */
	REG_OP(IORING_REGISTER_PBUF_RING),
	REG_OP(IORING_UNREGISTER_PBUF_RING),
	REG_OP(IORING_REGISTER_RING_FDS),
	REG_OP(IORING_UNREGISTER_RING_FDS),
	/* Buffer selection (the multishot receives) is the only SQE flag
	 * the engine sets: deadlines are a sweep, not linked timeouts
	 * (engine_deadline.c), so no links, drains, async punts or CQE
	 * skipping; not IOSQE_FIXED_FILE (no files are registered). */
	{ .opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED,
	  .sqe_flags = IOSQE_BUFFER_SELECT },
};

const size_t kj_uring_restrictions_len = KJ_ARRAY_SIZE(kj_uring_restrictions);
