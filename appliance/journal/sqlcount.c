// SPDX-License-Identifier: Apache-2.0
/*
 * Counting VFS: every file method forwards to the default VFS's file; xSync
 * also bumps a counter.  The file object is ours followed by the real one
 * (szOsFile grows by our header), the usual shape of a shim VFS.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "sqlcount.h"
#include "base/log.h"

struct cfile {
	sqlite3_file base;
	sqlite3_file *real;
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs count_vfs;
static _Atomic uint64_t syncs;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int reg_rc = SQLITE_ERROR;

#define REAL(f) (((struct cfile *)(f))->real)

static int c_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int c_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}

static int c_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}

static int c_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int c_sync(sqlite3_file *f, int flags)
{
	atomic_fetch_add(&syncs, 1);
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int c_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int c_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int c_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int c_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int c_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int c_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int c_device_chars(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int c_shm_map(sqlite3_file *f, int pg, int pgsz, int ext,
		     void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, ext, pp);
}

static int c_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void c_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int c_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int c_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int c_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods c_methods = {
	.iVersion = 3,
	.xClose = c_close,
	.xRead = c_read,
	.xWrite = c_write,
	.xTruncate = c_truncate,
	.xSync = c_sync,
	.xFileSize = c_file_size,
	.xLock = c_lock,
	.xUnlock = c_unlock,
	.xCheckReservedLock = c_check_reserved,
	.xFileControl = c_file_control,
	.xSectorSize = c_sector_size,
	.xDeviceCharacteristics = c_device_chars,
	.xShmMap = c_shm_map,
	.xShmLock = c_shm_lock,
	.xShmBarrier = c_shm_barrier,
	.xShmUnmap = c_shm_unmap,
	.xFetch = c_fetch,
	.xUnfetch = c_unfetch,
};

static int c_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
		  int flags, int *out_flags)
{
	struct cfile *c = (struct cfile *)f;
	int rc;

	(void)vfs;
	c->real = (sqlite3_file *)(c + 1);
	rc = real_vfs->xOpen(real_vfs, name, c->real, flags, out_flags);
	/* SQLite closes a file only if pMethods is set. */
	c->base.pMethods = rc == SQLITE_OK && c->real->pMethods ? &c_methods
								 : NULL;
	return rc;
}

static void do_register(void)
{
	/*
	 * The first SQLite call of the process, so the one place for its
	 * global configuration, before sqlite3_vfs_find() initialises it.
	 * Memory statistics (nobody reads them) take a global mutex around
	 * every allocation SQLite makes: about 5 % of the keeper's CPU at
	 * 10,000 devices/s (docs/PERFORMANCE.md).  SQLITE_MISUSE if another
	 * library got there first: then it stays on, only slower.
	 */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs)
		return;
	/* Same limits and helpers (pAppData, mxPathname, …) as the real. */
	count_vfs = *real_vfs;
	count_vfs.pNext = NULL;
	count_vfs.zName = "kinject-count";
	count_vfs.szOsFile = (int)sizeof(struct cfile) + real_vfs->szOsFile;
	count_vfs.xOpen = c_open;
	reg_rc = sqlite3_vfs_register(&count_vfs, 0);
}

const char *kj_sqlcount_vfs(void)
{
	pthread_once(&once, do_register);
	if (reg_rc != SQLITE_OK) {
		kj_err("SQLite: cannot register the counting VFS: %s",
		       sqlite3_errstr(reg_rc));
		return NULL;
	}
	return count_vfs.zName;
}

uint64_t kj_sqlcount_syncs(void)
{
	return atomic_load(&syncs);
}
