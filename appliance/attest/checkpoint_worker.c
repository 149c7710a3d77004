// SPDX-License-Identifier: Apache-2.0
/*
 * The pipelined checkpointer (checkpoint_int.h): one thread owns the TPM
 * and quotes (tree_size, root) pairs handed to it one at a time; the
 * keeper's thread, which owns the journal, announces and commits before
 * handing a tree over and stores the result when the eventfd says it is
 * ready.  The TPM's tens to hundreds of milliseconds per quote never block
 * the loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "journal/journal.h"
#include "checkpoint_int.h"
#include "mtree.h"
#include "tpm.h"

enum wstate { W_IDLE, W_REQUESTED, W_DONE };

struct kj_ckpt_worker {
	struct kj_tpm *tpm;
	uint32_t mask;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int efd;
	enum wstate state;
	bool stop;
	struct kj_ckpt c;  /* the request, then its result */
	int rc;                  /* the result's */
	bool have_submitted;
	uint64_t submitted;      /* tree_size of the last submission */
	uint64_t covered;
	uint64_t stuck_ms;
	uint64_t submit_ms;      /* when the request in flight was made */
	bool stuck;              /* detach, never join (see stop) */
	bool orphan;             /* detached: the thread frees w at its end */
	bool failed;             /* a quote failed on the TPM side */
	struct kj_ckpt_stats st;
};

static void free_worker(struct kj_ckpt_worker *w)
{
	kj_checkpoint_release(&w->c);
	close(w->efd);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}

static void *worker_main(void *arg)
{
	struct kj_ckpt_worker *w = arg;
	int rc;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->state != W_REQUESTED && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		pthread_mutex_unlock(&w->mu);
		/* Only this thread touches w->c while W_REQUESTED. */
		rc = kj_checkpoint_quote(w->tpm, &w->c);
		pthread_mutex_lock(&w->mu);
		w->rc = rc;
		w->state = W_DONE;
		pthread_cond_broadcast(&w->cv);
		if (eventfd_write(w->efd, 1) < 0)
			kj_warn("checkpoint worker: eventfd: %s",
				strerror(errno));
	}
	if (w->orphan) {
		pthread_mutex_unlock(&w->mu);
		free_worker(w);
		return NULL;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int kj_ckpt_worker_start(struct kj_tpm *tpm,
			 const struct kj_checkpoint_policy *pol,
			 uint64_t covered, struct kj_ckpt_worker **out)
{
	struct kj_ckpt_worker *w = calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return -ENOMEM;
	w->tpm = tpm;
	w->mask = pol && pol->pcr_mask ? pol->pcr_mask : KJ_PCR_DEFAULT_MASK;
	w->covered = covered;
	w->stuck_ms = pol && pol->stuck_ms ? pol->stuck_ms :
					     KJ_CHECKPOINT_STUCK_MS;
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		rc = -errno;
		kj_err("checkpoint worker: eventfd: %s", strerror(errno));
		free(w);
		return rc;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	rc = pthread_create(&w->th, NULL, worker_main, w);
	if (rc) {
		kj_err("checkpoint worker: pthread_create: %s", strerror(rc));
		close(w->efd);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w);
		return -rc;
	}
	*out = w;
	return 0;
}

void kj_ckpt_worker_stop(struct kj_ckpt_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	if (w->stuck && w->state == W_REQUESTED) {
		/* Blocked in the TCTI: joining would hang the exit.  The
		 * thread keeps the TPM handle and frees w if it ever
		 * returns; the process is about to end anyway. */
		w->orphan = true;
		pthread_mutex_unlock(&w->mu);
		pthread_detach(w->th);
		return;
	}
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	free_worker(w);
}

int kj_ckpt_worker_fd(const struct kj_ckpt_worker *w)
{
	return w->efd;
}

static enum wstate get_state(const struct kj_ckpt_worker *w)
{
	struct kj_ckpt_worker *m = (struct kj_ckpt_worker *)w;
	enum wstate s;

	pthread_mutex_lock(&m->mu);
	s = m->state;
	pthread_mutex_unlock(&m->mu);
	return s;
}

bool kj_ckpt_worker_busy(const struct kj_ckpt_worker *w)
{
	return get_state(w) != W_IDLE;
}

int kj_ckpt_worker_submit(struct kj_ckpt_worker *w, struct kj_journal *j,
			  const struct kj_mtree *t)
{
	uint64_t size = kj_mtree_size(t);
	struct kj_ckpt c;

	if (get_state(w) != W_IDLE)
		return 0;
	if (w->have_submitted ? size <= w->submitted : size <= w->covered)
		return 0;
	if (size != kj_journal_record_count(j)) {
		kj_err("checkpoint: Merkle tree has %" PRIu64 " leaves, the journal %" PRIu64 " records",
		       size, kj_journal_record_count(j));
		return -EINVAL;
	}
	memset(&c, 0, sizeof(c));
	c.tree_size = size;
	c.pcr_mask = w->mask;
	KJ_TRY(kj_mtree_root(t, size, c.root));
	KJ_TRY(kj_checkpoint_epoch(j, &c.epoch, &c.event_log_length));
	/* Durable before the increment: the counter bound and the leaves. */
	KJ_TRY(kj_checkpoint_announce(j));
	KJ_TRY(kj_journal_commit(j));
	pthread_mutex_lock(&w->mu);
	w->c = c;
	w->state = W_REQUESTED;
	w->submit_ms = kj_now_ms();
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	w->have_submitted = true;
	w->submitted = size;
	return 1;
}

/* Take a finished result out of w (called with the state W_DONE). */
static int store_result(struct kj_ckpt_worker *w, struct kj_journal *j)
{
	struct kj_ckpt c;
	eventfd_t v;
	int rc;

	pthread_mutex_lock(&w->mu);
	c = w->c;
	rc = w->rc;
	memset(&w->c, 0, sizeof(w->c));
	w->state = W_IDLE;
	pthread_mutex_unlock(&w->mu);
	(void)eventfd_read(w->efd, &v); /* non-blocking: clears it */
	if (rc < 0)
		w->failed = true;
	if (rc >= 0)
		rc = kj_checkpoint_store(j, &c);
	if (rc >= 0) {
		w->covered = c.tree_size;
		w->st.taken++;
		w->st.quote_ms_total += c.quote_ms;
		if (c.quote_ms > w->st.quote_ms_max)
			w->st.quote_ms_max = c.quote_ms;
		rc = 1;
	}
	kj_checkpoint_release(&c);
	return rc;
}

int kj_ckpt_worker_collect(struct kj_ckpt_worker *w, struct kj_journal *j)
{
	if (get_state(w) != W_DONE)
		return 0;
	return store_result(w, j);
}

int kj_ckpt_worker_stuck(struct kj_ckpt_worker *w)
{
	uint64_t since;
	bool stuck;

	pthread_mutex_lock(&w->mu);
	since = kj_now_ms() - w->submit_ms;
	stuck = w->state == W_REQUESTED && since > w->stuck_ms;
	if (stuck && !w->stuck)
		kj_err("checkpoint: TPM %s has not answered a quote for %llu ms: stopping",
		       kj_tpm_tcti(w->tpm), (unsigned long long)since);
	w->stuck |= stuck;
	pthread_mutex_unlock(&w->mu);
	return stuck ? -ETIMEDOUT : 0;
}

int kj_ckpt_worker_drain(struct kj_ckpt_worker *w, struct kj_journal *j)
{
	struct timespec ts;

	pthread_mutex_lock(&w->mu);
	while (w->state == W_REQUESTED) {
		/* Wake up now and then to notice a TPM that stopped. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		if (w->state == W_REQUESTED &&
		    kj_now_ms() - w->submit_ms > w->stuck_ms) {
			pthread_mutex_unlock(&w->mu);
			return kj_ckpt_worker_stuck(w);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return kj_ckpt_worker_collect(w, j);
}

bool kj_ckpt_worker_failed(const struct kj_ckpt_worker *w)
{
	return w->failed;
}

uint64_t kj_ckpt_worker_covered(const struct kj_ckpt_worker *w)
{
	return w->covered;
}

void kj_ckpt_worker_stats(const struct kj_ckpt_worker *w,
			  struct kj_ckpt_stats *st)
{
	*st = w->st;
}
