/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The secret arena: the only memory that ever holds decrypted firmware,
 * credentials and key material (SPEC.md §2).  Locked, never dumped, never
 * inherited writable, wiped with explicit_bzero on destroy, on job end and on
 * fatal signals.  Shared with the injector by fd, mapped read-only there.
 *
 * Backends, tried in order (arena_kmod.h): the kinject.ko device
 * /dev/kinject when it is there (its zeroize wipes every arena), then
 * memfd_secret(2), then a memfd mapping with mlock + MADV_DONTDUMP and guard
 * pages.  KINJECT_ARENA=memfd_secret|kmod|mlock forces one (tests).
 */
#ifndef KINJECT_ARENA_H
#define KINJECT_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"

enum kj_arena_backend {
	KJ_ARENA_AUTO = 0,
	KJ_ARENA_MEMFD_SECRET,
	KJ_ARENA_KMOD,
	KJ_ARENA_MLOCK,
};

struct kj_arena {
	uint8_t *base; /* writable mapping, owner process only */
	size_t size;   /* usable bytes, a page multiple */
	size_t used;   /* bump allocator position */
	int fd;        /* pass to another process; map with kj_arena_map_ro */
	enum kj_arena_backend backend;
};

/* Create an arena of at least size bytes with the first backend that works. */
KJ_MUST_CHECK int kj_arena_create(struct kj_arena *a, size_t size,
				  enum kj_arena_backend want);

/* Bump-allocate n bytes (64-byte aligned); NULL and a logged error if full. */
void *kj_arena_alloc(struct kj_arena *a, size_t n);

/* Offset of p inside a, for telling the injector where an object lies. */
size_t kj_arena_offset(const struct kj_arena *a, const void *p);

/* Zero every byte (explicit_bzero) and reset the bump allocator. */
void kj_arena_wipe(struct kj_arena *a);

/* Wipe, unmap, close.  Safe on a zeroed or already destroyed arena. */
void kj_arena_destroy(struct kj_arena *a);

/*
 * In the owner: a new fd (O_CLOEXEC) to hand to another process, as weak as
 * the backend allows.  mlock: the memfd reopened O_RDONLY (and it carries
 * F_SEAL_FUTURE_WRITE), so a mapping of it can never be made writable.
 * memfd_secret: cannot be reopened (ENXIO), so a dup; the receiver's
 * mapping is kept read-only by mseal and its seccomp filter (no
 * mprotect(PROT_WRITE), no mremap, no writable shared mmap).  kmod: a dup;
 * the device refuses to make a read-only mapping writable.  -errno, logged.
 */
KJ_MUST_CHECK int kj_arena_share_fd(const struct kj_arena *a);

/*
 * Owner-only memory for secrets that must never be shared: an arena whose
 * fd is closed at once (so it cannot be passed on), with the same locking,
 * no-dump and wipe-on-fatal-signal as a shared one.  Destroy it with
 * kj_arena_destroy().
 */
KJ_MUST_CHECK int kj_arena_create_private(struct kj_arena *a, size_t size);

/* In the receiving process: map an arena fd read-only. */
KJ_MUST_CHECK int kj_arena_map_ro(int fd, size_t size, const uint8_t **out);
void kj_arena_unmap_ro(const uint8_t *p, size_t size);

/*
 * In the receiving process, once: mseal(2) the read-only mapping so it can
 * never be mprotect()ed writable, remapped or unmapped (a memfd_secret fd
 * cannot be made read-only itself).  -ENOSYS on kernels before 6.10 (the
 * caller may go on: seccomp still refuses writable shared mappings).
 * kj_arena_unmap_ro() no longer works on a sealed mapping.
 */
KJ_MUST_CHECK int kj_arena_seal_ro(const uint8_t *p, size_t size);

/* Wipe every live arena of this process (fatal signals, tamper response). */
void kj_arena_wipe_all(void);

/* Install handlers so fatal signals wipe every arena before dying. */
KJ_MUST_CHECK int kj_arena_install_signal_wipe(void);

/* "memfd_secret", "kmod" or "mlock": logged and recorded in the evidence. */
const char *kj_arena_backend_name(enum kj_arena_backend b);

#endif
