// SPDX-License-Identifier: Apache-2.0
/*
 * WAL checkpoints off the keeper's path.  SQLite's automatic checkpoint
 * runs inside the COMMIT that crosses 1000 WAL pages: it copies the pages
 * into the database and fsyncs it, a latency spike for every device
 * waiting on that commit.  Instead the writer's WAL hook wakes a thread
 * that runs PASSIVE checkpoints on its own connection, which SQLite allows
 * concurrently with the writer.  The WAL can only restart from its
 * beginning when a write transaction begins with every frame copied, which
 * never happens while the thread copies behind a busy writer; so once the
 * thread has done the bulk of a pass, the writer's next commit runs a
 * PASSIVE checkpoint itself, copying only the frames of the last commits
 * and syncing a database file that is mostly synced already, and its next
 * transaction restarts the WAL.  Durability is SQLite's own: this changes
 * only who calls the checkpoint, and when.  If the thread falls behind
 * (WAL_HARD_PAGES), the writer checkpoints inline as SQLite would.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <time.h>

#include "base/log.h"
#include "journal_int.h"
#include "sqlcount.h"

#define WAL_SOFT_PAGES 1000   /* SQLite's default auto-checkpoint size */
#define WAL_HARD_PAGES 100000 /* ~400 MiB: checkpoint inline */
#define IDLE_WAKE_MS 500

struct kj_jnl_ckpt {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool wanted, stop, warned;
	bool pass_done; /* the thread copied the WAL since the last restart */
	sqlite3 *db; /* the thread's own connection */
	const char *path;
};

static int wal_hook(void *ctx, sqlite3 *db, const char *name, int pages)
{
	struct kj_jnl_ckpt *c = ctx;
	bool inline_ckpt;

	if (pages < WAL_SOFT_PAGES)
		return SQLITE_OK;
	pthread_mutex_lock(&c->lock);
	inline_ckpt = c->pass_done || pages >= WAL_HARD_PAGES;
	if (inline_ckpt) {
		c->pass_done = false;
	} else {
		c->wanted = true;
		pthread_cond_signal(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	if (inline_ckpt)
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
					  NULL, NULL);
	return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
	struct kj_jnl_ckpt *c = arg;
	struct timespec ts;
	int rc;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		if (!c->wanted) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += IDLE_WAKE_MS * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&c->cond, &c->lock, &ts);
			if (!c->wanted)
				continue;
		}
		c->wanted = false;
		pthread_mutex_unlock(&c->lock);
		rc = sqlite3_wal_checkpoint_v2(c->db, NULL,
					       SQLITE_CHECKPOINT_PASSIVE, NULL,
					       NULL);
		pthread_mutex_lock(&c->lock);
		c->pass_done = rc == SQLITE_OK;
		/* BUSY: another checkpoint runs; a full disk is the writer's
		 * to report (its next commit fails), once here is enough. */
		if (rc != SQLITE_OK && rc != SQLITE_BUSY && !c->warned) {
			c->warned = true;
			kj_warn("%s: background WAL checkpoint: SQLite: %s",
				c->path, sqlite3_errstr(rc));
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int kj_jnl_ckpt_start(struct kj_journal *j)
{
	struct kj_jnl_ckpt *c;
	int rc;

	/* A single-threaded SQLite build: keep its inline checkpoints. */
	if (!sqlite3_threadsafe())
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c) {
		kj_err("%s: out of memory", j->path);
		return -ENOMEM;
	}
	c->path = j->path;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	rc = sqlite3_open_v2(j->path, &c->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			     kj_sqlcount_vfs());
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(c->db, 1000);
	/* A connection opens the database (and sees WAL mode) on first read;
	 * until then a checkpoint on it is a no-op. */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_schema",
				  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		kj_err("%s: checkpoint connection: SQLite: %s", j->path,
		       sqlite3_errstr(rc));
		sqlite3_close(c->db);
		free(c);
		return -EIO;
	}
	if (pthread_create(&c->thread, NULL, ckpt_main, c)) {
		kj_err("%s: cannot start the checkpoint thread", j->path);
		sqlite3_close(c->db);
		free(c);
		return -EAGAIN;
	}
	/* Replaces SQLite's auto-checkpoint hook on the writer. */
	sqlite3_wal_hook(j->db, wal_hook, c);
	j->ckpt = c;
	return 0;
}

void kj_jnl_ckpt_stop(struct kj_journal *j)
{
	struct kj_jnl_ckpt *c = j->ckpt;

	if (!c)
		return;
	sqlite3_wal_hook(j->db, NULL, NULL);
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	sqlite3_close(c->db);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
	j->ckpt = NULL;
}
