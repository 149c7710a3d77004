// SPDX-License-Identifier: Apache-2.0
/*
 * The injector sandbox (sandbox.h, docs/SANDBOX.md).  Steps in the order of
 * OpenSSH's sandbox-seccomp-filter.c, with one change: the filesystem goes
 * before the capabilities, because the mount-namespace fallback needs
 * CAP_SYS_ADMIN.  The allowlists themselves are data in sandbox_table.c.
 */
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/securebits.h>

#include "sandbox.h"
#include "base/log.h"
#include "sandbox_table.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_restrict_self 446
#endif

static const char *kj_fs_method;

const char *kj_sandbox_fs_method(void)
{
	return kj_fs_method;
}

/* ---- io_uring ---- */

int kj_uring_init_restricted(struct io_uring *ring, unsigned entries,
			     struct io_uring_params *p)
{
	struct io_uring_params local;
	int rc;

	if (!p) {
		memset(&local, 0, sizeof(local));
		p = &local;
	}
	/* Created disabled: nothing can be submitted before the gate. */
	p->flags |= IORING_SETUP_R_DISABLED;
	rc = io_uring_queue_init_params(entries, ring, p);
	if (rc < 0) {
		kj_err("io_uring: io_uring_setup(%u entries): %s", entries,
		       strerror(-rc));
		return rc;
	}
	/*
	 * Raw register calls: Debian's liburing 2.3 declares
	 * io_uring_register_restrictions/io_uring_enable_rings but its
	 * shared library does not export them.
	 */
	rc = io_uring_register((unsigned)ring->ring_fd,
			       IORING_REGISTER_RESTRICTIONS,
			       kj_uring_restrictions,
			       (unsigned)kj_uring_restrictions_len);
	if (rc < 0) {
		kj_err("io_uring: IORING_REGISTER_RESTRICTIONS: %s",
		       strerror(-rc));
		goto err;
	}
	rc = io_uring_register((unsigned)ring->ring_fd,
			       IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (rc < 0) {
		kj_err("io_uring: IORING_REGISTER_ENABLE_RINGS: %s",
		       strerror(-rc));
		goto err;
	}
	return 0;
err:
	io_uring_queue_exit(ring);
	return rc;
}

/* ---- 1. resource limits ---- */

/*
 * Only RLIMIT_CORE: RLIMIT_FSIZE 0 would kill us (SIGXFSZ) when stderr is
 * a file, RLIMIT_NPROC 0 also caps io_uring's io-wq workers, and
 * RLIMIT_MEMLOCK/NOFILE are needed (read-only secretmem mapping, buffer
 * rings, accepted sockets).  seccomp forbids fork and open anyway.
 */
static int step_rlimits(void)
{
	const struct rlimit zero = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &zero) < 0) {
		kj_err("sandbox: setrlimit(RLIMIT_CORE, 0): %s",
		       strerror(errno));
		return -errno;
	}
	return 0;
}

/* ---- 2. no_new_privs, not dumpable ---- */

static int step_privs(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		kj_err("sandbox: prctl(PR_SET_NO_NEW_PRIVS): %s",
		       strerror(errno));
		return -errno;
	}
	/* No ptrace attach by same-uid processes, no core, /proc root-owned. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		kj_err("sandbox: prctl(PR_SET_DUMPABLE, 0): %s",
		       strerror(errno));
		return -errno;
	}
	return 0;
}

/* ---- 3. no filesystem ---- */

/* Landlock access bits by ABI (uapi linux/landlock.h, numbers are ABI). */
#define LL_FS_V1 ((1ULL << 13) - 1) /* EXECUTE .. MAKE_SYM */
#define LL_FS_REFER (1ULL << 13)    /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#define LL_NET_ALL 3ULL		    /* ABI 4: BIND_TCP, CONNECT_TCP */
#define LL_SCOPE_ALL 3ULL	    /* ABI 6: abstract unix, signals */

struct kj_landlock_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

static int landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
			   1U /* LANDLOCK_CREATE_RULESET_VERSION */);

	return abi < 0 ? -errno : (int)abi;
}

/*
 * A ruleset that handles every access right this kernel knows and has no
 * rule: every path, TCP bind/connect, abstract unix connect and signal to
 * outside the domain is refused.
 */
static int fs_landlock(int abi)
{
	struct kj_landlock_attr attr = { .handled_access_fs = LL_FS_V1 };
	size_t size = sizeof(attr.handled_access_fs);
	int fd, rc = 0;

	if (abi >= 2)
		attr.handled_access_fs |= LL_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LL_FS_TRUNCATE;
	if (abi >= 5)
		attr.handled_access_fs |= LL_FS_IOCTL_DEV;
	if (abi >= 4) {
		attr.handled_access_net = LL_NET_ALL;
		size = offsetof(struct kj_landlock_attr, scoped);
	}
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ALL;
		size = sizeof(attr);
	}
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0U);
	if (fd < 0) {
		kj_err("sandbox: landlock_create_ruleset (ABI %d): %s", abi,
		       strerror(errno));
		return -errno;
	}
	if (syscall(SYS_landlock_restrict_self, fd, 0U) < 0) {
		rc = -errno;
		kj_err("sandbox: landlock_restrict_self: %s", strerror(-rc));
	}
	close(fd);
	return rc;
}

/*
 * Fallback: a private mount namespace whose root is an empty read-only
 * tmpfs, the old root detached.  fsmount() gives a mount we can fchdir()
 * into; pivot_root(".", ".") then stacks the old root under it.
 */
static int fs_mountns(void)
{
	int fs = -1, mnt = -1, rc = 0;

	if (unshare(CLONE_NEWNS) < 0) {
		rc = -errno;
		kj_err("sandbox: unshare(CLONE_NEWNS): %s%s", strerror(-rc),
		       rc == -EPERM ? " (needs CAP_SYS_ADMIN)" : "");
		return rc;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		rc = -errno;
		kj_err("sandbox: mount(/, MS_PRIVATE): %s", strerror(-rc));
		return rc;
	}
	fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "size", "4k", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0555", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		rc = -errno;
		kj_err("sandbox: fsopen/fsconfig(tmpfs): %s", strerror(-rc));
		goto out;
	}
	mnt = fsmount(fs, FSMOUNT_CLOEXEC,
		      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
			      MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (mnt < 0 ||
	    move_mount(mnt, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) < 0 ||
	    fchdir(mnt) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
		rc = -errno;
		kj_err("sandbox: empty root (fsmount, pivot_root): %s",
		       strerror(-rc));
	}
out:
	if (mnt >= 0)
		close(mnt);
	if (fs >= 0)
		close(fs);
	return rc;
}

static int step_filesystem(void)
{
	const char *force = getenv("KINJECT_SANDBOX_FS");
	int abi = landlock_abi();

	if (force && *force && strcmp(force, "landlock") &&
	    strcmp(force, "mountns")) {
		kj_err("KINJECT_SANDBOX_FS: expected landlock or mountns, got `%s'",
		       force);
		return -EINVAL;
	}
	if (force && !strcmp(force, "mountns"))
		abi = 0;
	if (abi > 0) {
		KJ_TRY(fs_landlock(abi));
		kj_fs_method = "landlock";
		return 0;
	}
	if (force && !strcmp(force, "landlock")) {
		kj_err("sandbox: KINJECT_SANDBOX_FS=landlock: kernel has no Landlock (%s)",
		       strerror(-abi));
		return -EOPNOTSUPP;
	}
	KJ_TRY(fs_mountns());
	kj_fs_method = "mountns";
	return 0;
}

/* ---- 4. capabilities ---- */

static int step_capabilities(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	/* As root: never regain capabilities through uid 0 or setuid. */
	if (prctl(PR_SET_SECUREBITS,
		  SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
			  SECBIT_NO_SETUID_FIXUP |
			  SECBIT_NO_SETUID_FIXUP_LOCKED |
			  SECBIT_KEEP_CAPS_LOCKED, 0, 0, 0) < 0 &&
	    errno != EPERM) {
		kj_err("sandbox: prctl(PR_SET_SECUREBITS): %s",
		       strerror(errno));
		return -errno;
	}
	for (int cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break; /* past CAP_LAST_CAP of this kernel */
		kj_err("sandbox: prctl(PR_CAPBSET_DROP, %d): %s", cap,
		       strerror(errno));
		return -errno;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
		kj_err("sandbox: prctl(PR_CAP_AMBIENT_CLEAR_ALL): %s",
		       strerror(errno));
		return -errno;
	}
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0) {
		kj_err("sandbox: capset(0): %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* ---- 5. seccomp ---- */

#ifdef KJ_SECCOMP_TRAP
/* Debug builds: name the refused syscall, then die by SIGSYS anyway. */
static void sigsys_report(int sig, siginfo_t *info, void *uctx)
{
	char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE,
						      info->si_syscall);
	char buf[128];
	int n;

	(void)uctx;
	n = snprintf(buf, sizeof(buf),
		     "kinject: seccomp: syscall %d (%s) not in the allowlist (sandbox_table.c)\n",
		     info->si_syscall, name ? name : "?");
	if (n > 0)
		(void)!write(2, buf, (size_t)n < sizeof(buf) ? (size_t)n :
							       sizeof(buf) - 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

#define KJ_SECCOMP_DEFAULT SCMP_ACT_TRAP

static int install_trap_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigsys_report;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		kj_err("sandbox: sigaction(SIGSYS): %s", strerror(errno));
		return -errno;
	}
	return 0;
}
#else
#define KJ_SECCOMP_DEFAULT SCMP_ACT_KILL_PROCESS

static int install_trap_handler(void)
{
	return 0;
}
#endif

static bool allow_ktls;

void kj_sandbox_allow_ktls(void)
{
	allow_ktls = true;
}

static int add_rules(scmp_filter_ctx ctx, const struct kj_seccomp_rule *t,
		     size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct scmp_arg_cmp args[2];
		int nr = seccomp_syscall_resolve_name(t[i].name), rc;

		if (nr == __NR_SCMP_ERROR)
			continue; /* not a syscall on this architecture */
		memcpy(args, t[i].args, sizeof(args));
		for (unsigned a = 0; a < t[i].n_args; a++) {
			if (args[a].datum_a == KJ_SECCOMP_SELF_PID)
				args[a].datum_a = (uint64_t)getpid();
		}
		rc = seccomp_rule_add_array(ctx, t[i].action, nr, t[i].n_args,
					    args);
		if (rc < 0) {
			kj_err("sandbox: seccomp rule for %s: %s", t[i].name,
			       strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int step_seccomp(void)
{
	scmp_filter_ctx ctx;
	int rc;

	KJ_TRY(install_trap_handler());
	ctx = seccomp_init(KJ_SECCOMP_DEFAULT);
	if (!ctx) {
		kj_err("sandbox: seccomp_init: failed");
		return -ENOMEM;
	}
	/* Another ABI (x32, i386 via int 0x80) would bypass the table. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
			      SCMP_ACT_KILL_PROCESS);
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc < 0) {
		kj_err("sandbox: seccomp_attr_set: %s", strerror(-rc));
		goto out;
	}
	KJ_TRY_GOTO(rc, add_rules(ctx, kj_seccomp_table, kj_seccomp_table_len),
		    out);
	if (allow_ktls)
		KJ_TRY_GOTO(rc, add_rules(ctx, kj_seccomp_ktls_table,
					  kj_seccomp_ktls_table_len), out);
#ifdef KJ_SANITIZED
	KJ_TRY_GOTO(rc, add_rules(ctx, kj_seccomp_san_table,
				  kj_seccomp_san_table_len), out);
#endif
	rc = seccomp_load(ctx);
	if (rc < 0)
		kj_err("sandbox: seccomp_load: %s", strerror(-rc));
out:
	seccomp_release(ctx);
	return rc;
}

int kj_sandbox_enter(void)
{
	/* glibc reads the zone file on the first gmtime_r (the JSON log
	 * lines' timestamps): once here, never inside the sandbox. */
	tzset();
	KJ_TRY(step_rlimits());
	KJ_TRY(step_privs());
	KJ_TRY(step_filesystem());
	KJ_TRY(step_capabilities());
	KJ_TRY(step_seccomp());
	kj_info("sandbox: entered (filesystem: %s, seccomp: %s%s)",
		kj_fs_method,
		KJ_SECCOMP_DEFAULT == SCMP_ACT_TRAP ? "trap" : "kill",
		allow_ktls ? ", kTLS setsockopt" : "");
	return 0;
}
