/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The user-space interface of kinject.ko, shared with the programs that use
 * it (tests/vm/arena_probe.c): kept apart from kinject.c so that user space
 * never includes kernel-only headers.
 */
#ifndef KINJECT_IOCTL_H
#define KINJECT_IOCTL_H

#include <linux/ioctl.h>

/* Wipe every live arena of every process at once (tamper response). */
#define KINJECT_IOC_ZEROIZE _IO('k', 0x01)

#endif
