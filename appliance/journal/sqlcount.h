/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pass-through SQLite VFS over the default one that counts xSync calls,
 * so the journal can report real fsyncs per second (QUALITY.md), not an
 * estimate from the number of transactions.
 */
#ifndef KINJECT_SQLCOUNT_H
#define KINJECT_SQLCOUNT_H

#include <stdint.h>

#include "base/kinject.h"

/* Register the VFS once per process; returns its name for
 * sqlite3_open_v2, or NULL (logged) on failure. */
const char *kj_sqlcount_vfs(void);

/* xSync calls made through the VFS by this process so far. */
uint64_t kj_sqlcount_syncs(void);

#endif
