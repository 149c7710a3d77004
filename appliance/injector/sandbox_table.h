/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The injector's allowlists, as data (sandbox_table.c is the one place to
 * review them): the seccomp syscall table and the io_uring restriction
 * table.  Used by sandbox.c only.
 */
#ifndef KINJECT_SANDBOX_TABLE_H
#define KINJECT_SANDBOX_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <liburing.h>
#include <seccomp.h>

/* datum_a placeholder replaced by getpid() when the filter is built. */
#define KJ_SECCOMP_SELF_PID UINT64_MAX

struct kj_seccomp_rule {
	const char *name;	    /* resolved with seccomp_syscall_resolve_name */
	uint32_t action;	    /* SCMP_ACT_ALLOW or SCMP_ACT_ERRNO(e) */
	unsigned int n_args;
	struct scmp_arg_cmp args[2]; /* ANDed; several rules of a name are ORed */
};

extern const struct kj_seccomp_rule kj_seccomp_table[];
extern const size_t kj_seccomp_table_len;

/* Only with kj_sandbox_allow_ktls(): kTLS's setsockopt calls. */
extern const struct kj_seccomp_rule kj_seccomp_ktls_table[];
extern const size_t kj_seccomp_ktls_table_len;

/* Only in -DKJ_SANITIZED builds: what the ASan/UBSan runtime needs. */
extern const struct kj_seccomp_rule kj_seccomp_san_table[];
extern const size_t kj_seccomp_san_table_len;

extern const struct io_uring_restriction kj_uring_restrictions[];
extern const size_t kj_uring_restrictions_len;

#endif
