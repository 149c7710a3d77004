/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --pin-source file:PATH | env:NAME.  A PIN is never a command-line argument
 * and never logged.  The caller keeps it in a stack buffer and wipes it with
 * explicit_bzero right after use (C_Login).
 */
#ifndef KINJECT_PIN_H
#define KINJECT_PIN_H

#include <stddef.h>

#include "base/kinject.h"

#define KJ_PIN_MAX 256

/*
 * Read the PIN named by source into buf (NUL-terminated, *len bytes, one
 * trailing newline of a file dropped).  env: the variable's value is
 * overwritten in place and the variable removed, so children never see it.
 * file: the file must be a regular file; a group/world-readable one is
 * warned about.  -EINVAL with a message naming the source on bad syntax,
 * missing file or variable, empty or over-long PIN.
 */
KJ_MUST_CHECK int kj_pin_read(const char *source, char *buf, size_t cap,
			      size_t *len);

/* Syntax check only (for usage errors before anything runs); logs. */
KJ_MUST_CHECK int kj_pin_source_valid(const char *source);

#endif
