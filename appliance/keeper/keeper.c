// SPDX-License-Identifier: Apache-2.0
/*
 * The keeper (keeper.h, docs/ENGINE.md).  One poll loop over the injectors'
 * channels.  Requests are dispatched from a table in the style of OpenSSH
 * monitor.c: {type, states it is permitted in, handler}; a request that is
 * not permitted, or malformed, kills the injector, whose devices in flight
 * are recorded `internal`, and a fresh injector takes over the listeners.
 *
 * Every answer waits in `pend` until a journal commit covers what it
 * depends on (the reservation for OFFER, the record for REFUSE and
 * VERDICT); COMMIT verdicts then also wait until a checkpoint covers the
 * record when the caller asks for it (hooks.committed).  Commits are
 * grouped: at most one per commit_interval_ms, covering every request
 * that arrived meanwhile, so fsyncs/s do not grow with the device rate.
 *
 * The table and its policy are in keeper_request.c, a device's records in
 * keeper_record.c, the answers and their gating in keeper_answer.c, the
 * injector processes in keeper_inj.c; this file holds the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keeper.h"
#include "base/log.h"
#include "base/util.h"
#include "injector/listen.h"
#include "inputs/creds.h"
#include "journal/journal.h"
#include "journal/record.h"
#include "secret/arena.h"
#include "wire/ipc.h"
#include "wire/readback.h"
#include "keeper_int.h"

#define HOOK_TICK_MS 100 /* hooks.committed also runs on this timer */

/* ---- the loop ------------------------------------------------------------------ */

static void stats_snapshot(struct keeper *k)
{
	struct kj_keeper_stats *st = &k->st;

	st->quantity = k->quantity;
	st->ok = k->ok_total;
	st->failed_after_offer = k->failed_total;
	st->in_flight = k->in_flight;
	st->issuing = k->issuing;
	st->elapsed_ms = kj_now_ms() - k->start_ms;
	st->conns_accepted = k->gone.accepted;
	st->pre_hello_failures = k->gone.pre_hello_protocol +
				 k->gone.pre_hello_timeout +
				 k->gone.pre_hello_eof;
	st->over_limit = k->gone.over_limit;
	st->refusal_closed = k->gone.refusal_closed;
	st->bytes_sent = k->gone.bytes_sent;
	st->tls_ktls = k->gone.tls_ktls;
	st->tls_user = k->gone.tls_user;
	st->tls_refused = k->gone.tls_refused;
	st->tls_signed = k->sign.signed_n;
	st->tls_sign_limited = k->sign.limited_n;
	st->conns_open = 0;
	for (unsigned i = 0; i < k->n_inj; i++) {
		const struct kj_ipc_counters *c = &k->inj[i].cnt;

		st->conns_accepted += c->accepted;
		st->conns_open += c->open;
		st->pre_hello_failures += c->pre_hello_protocol +
					  c->pre_hello_timeout +
					  c->pre_hello_eof;
		st->over_limit += c->over_limit;
		st->refusal_closed += c->refusal_closed;
		st->bytes_sent += c->bytes_sent;
		st->tls_ktls += c->tls_ktls;
		st->tls_user += c->tls_user;
		st->tls_refused += c->tls_refused;
	}
}

static void progress(struct keeper *k, bool force)
{
	uint64_t now = kj_now_ms();

	if (!k->job->hooks.progress ||
	    (!force && now - k->last_progress_ms <
			       k->job->limits.progress_interval_ms))
		return;
	k->last_progress_ms = now;
	stats_snapshot(k);
	k->job->hooks.progress(k->job->hooks.ctx, &k->st);
}

static bool all_dead(const struct keeper *k)
{
	for (unsigned i = 0; i < k->n_inj; i++)
		if (k->inj[i].state != I_DEAD)
			return false;
	return true;
}

/* Nothing in flight and every answer delivered: tell injectors to stop. */
static void maybe_stop_injectors(struct keeper *k)
{
	struct kj_ipc_stop s = { .reason = k->refuse_reason };

	if (k->issuing || k->in_flight || k->pend.n || k->cover.n)
		return;
	for (unsigned i = 0; i < k->n_inj; i++) {
		struct inj *in = &k->inj[i];

		if (in->state != I_RUN)
			continue;
		if (kj_kp_inj_put(in, KJ_IPC_STOP, &s, sizeof(s), NULL, 0) == 0)
			in->state = I_STOPPING;
	}
}

static int poll_timeout(const struct keeper *k)
{
	uint64_t now = kj_now_ms(), t = 100;
	unsigned ci = k->job->limits.commit_interval_ms;

	if (kj_journal_pending(k->job->journal) || k->pend.n) {
		uint64_t due = k->last_commit_ms + ci;

		t = due > now ? due - now : 0;
	} else if (k->cover.n) {
		t = ci;
	}
	return (int)t;
}

static int turn(struct keeper *k, uint8_t *buf)
{
	struct pollfd pfd[MAX_WORKERS];
	unsigned map[MAX_WORKERS], n = 0;
	int rc;

	for (unsigned i = 0; i < k->n_inj; i++) {
		struct inj *in = &k->inj[i];

		if (in->state == I_DEAD)
			continue;
		pfd[n].fd = in->fd;
		pfd[n].events = POLLIN | (in->qhead ? POLLOUT : 0);
		pfd[n].revents = 0;
		map[n++] = i;
	}
	rc = poll(pfd, n, poll_timeout(k));
	if (rc < 0 && errno != EINTR) {
		kj_err("keeper: poll: %s", strerror(errno));
		return -errno;
	}
	for (unsigned i = 0; rc > 0 && i < n; i++) {
		struct inj *in = &k->inj[map[i]];

		if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
			KJ_TRY(kj_kp_inj_read(k, in, buf));
	}
	kj_kp_update_issuing(k);
	if ((kj_journal_pending(k->job->journal) || k->pend.n ||
	     k->cover.n) &&
	    kj_now_ms() - k->last_commit_ms >= k->job->limits.commit_interval_ms)
		KJ_TRY(kj_kp_commit(k));
	else if (k->job->hooks.committed &&
		 kj_now_ms() - k->last_commit_ms >= HOOK_TICK_MS)
		/* the checkpoint cadence goes on idle */
		KJ_TRY(kj_kp_commit(k));
	maybe_stop_injectors(k);
	kj_kp_inj_load(k);
	for (unsigned i = 0; i < k->n_inj; i++)
		(void)kj_kp_inj_flush(k, &k->inj[i]);
	progress(k, false);
	return k->err;
}

static void limits_default(struct kj_keeper_limits *l)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (!l->workers)
		l->workers = ncpu > 0 ? (unsigned)ncpu : 1;
	if (l->workers > MAX_WORKERS)
		l->workers = MAX_WORKERS;
	if (!l->max_connections)
		l->max_connections = KJ_MAX_CONNECTIONS_DEFAULT;
	if (!l->hello_timeout_ms)
		l->hello_timeout_ms = 600000;
	if (!l->program_timeout_ms)
		l->program_timeout_ms = 120000;
	if (!l->commit_interval_ms)
		l->commit_interval_ms = 2;
	if (!l->progress_interval_ms)
		l->progress_interval_ms = 250;
	if (!l->max_restarts)
		l->max_restarts = 100;
	if (l->workers > l->max_connections)
		l->workers = l->max_connections;
}

/*
 * What the keeper decides with, copied out of the shared arena while no
 * injector exists yet: each credential's blob place (bounds-checked
 * against the arena) and the firmware's readback midstate (secret: up to
 * 63 firmware bytes, so in owner-only locked memory).
 */
static int private_copies(struct keeper *k)
{
	const struct kj_job *job = k->job;
	const struct kj_cred_table *t = job->creds->table;
	struct kj_readback *rb;
	size_t asz = job->arena->size;

	if (job->fw_off > asz || job->fw_size > asz - job->fw_off) {
		kj_err("keeper: firmware at %zu+%u outside the %zu-byte arena",
		       job->fw_off, job->fw_size, asz);
		return -EINVAL;
	}
	k->n_creds = job->creds->count;
	k->creds = calloc(k->n_creds ? k->n_creds : 1, sizeof(*k->creds));
	if (!k->creds) {
		kj_err("keeper: out of memory for %zu credentials", k->n_creds);
		return -ENOMEM;
	}
	for (size_t i = 0; i < k->n_creds; i++) {
		const struct kj_cred *c = &t->cred[i];

		if (c->blob_off > asz || c->blob_len > asz - c->blob_off ||
		    (i && c->index <= k->creds[i - 1].index)) {
			kj_err("keeper: credential table entry %zu (line %u) "
			       "is inconsistent", i, c->line);
			return -EINVAL;
		}
		k->creds[i].index = c->index;
		k->creds[i].blob_off = c->blob_off;
		k->creds[i].blob_len = c->blob_len;
	}
	KJ_TRY(kj_arena_create_private(&k->priv, sizeof(*rb)));
	rb = kj_arena_alloc(&k->priv, sizeof(*rb));
	if (!rb)
		return -ENOMEM;
	kj_readback_begin(rb);
	kj_readback_update(rb, job->arena->base + job->fw_off, job->fw_size);
	k->fw_rb = rb;
	return 0;
}

/* What an injector is started from: the binary, the arena's shared fd. */
static int injector_handles(struct keeper *k)
{
	k->exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
	if (k->exe_fd < 0) {
		kj_err("keeper: /proc/self/exe: %s (injectors are exec'd from "
		       "it: is /proc mounted?)", strerror(errno));
		return -errno;
	}
	k->share_fd = kj_arena_share_fd(k->job->arena);
	if (k->share_fd < 0)
		return k->share_fd;
	return 0;
}

static int keeper_setup(struct keeper *k, struct kj_job *job)
{
	struct kj_job_state js;
	unsigned per;

	limits_default(&job->limits);
	k->job = job;
	k->start_ms = kj_now_ms();
	k->issuing = true;
	k->quantity = job->wo->quantity;
	k->max_failed = job->wo->max_failed;
	kj_journal_job_state(job->journal, &js);
	k->ok_total = js.ok_count;
	k->failed_total = js.failed_after_offer;
	/* First: from here on the listeners are ours to close. */
	k->lfds = calloc(job->n_listen + 1, sizeof(int));
	if (!k->lfds) {
		kj_err("keeper: out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < job->n_listen; i++)
		k->lfds[i] = job->listen_fds ? job->listen_fds[i] : -1;
	KJ_TRY(private_copies(k));
	KJ_TRY(injector_handles(k));
	k->n_inj = job->limits.workers;
	per = (job->limits.max_connections + k->n_inj - 1) / k->n_inj;
	k->uid_tab_n = (size_t)job->limits.max_connections * 2 + 1;
	k->uid_tab = calloc(k->uid_tab_n, sizeof(*k->uid_tab));
	if (!k->uid_tab) {
		kj_err("keeper: out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < k->n_inj; i++) {
		k->inj[i].worker = i;
		k->inj[i].fd = -1;
		k->inj[i].share = per;
		k->inj[i].max_conns = job->limits.max_connections;
		k->inj[i].slots = calloc(k->inj[i].max_conns,
					 sizeof(struct kslot));
		if (!k->inj[i].slots) {
			kj_err("keeper: out of memory for %u slots", per);
			return -ENOMEM;
		}
	}
	KJ_TRY(kj_kp_auth_setup(k));
	KJ_TRY(kj_kp_cred_setup(k, per * k->n_inj));
	kj_kp_sign_setup(k, kj_now_ms());
	for (size_t i = 0; i < job->n_listen && !job->listen_fds; i++) {
		int fd = kj_listen_open(&job->listen[i], KJ_LISTEN_BACKLOG);

		if (fd < 0)
			return fd;
		k->lfds[i] = fd;
	}
	return 0;
}

static void keeper_teardown(struct keeper *k)
{
	for (unsigned i = 0; i < k->n_inj; i++) {
		if (k->inj[i].state != I_DEAD)
			(void)kj_kp_inj_dead(k, &k->inj[i], false);
		free(k->inj[i].slots);
	}
	for (size_t i = 0; i < k->job->n_listen; i++) {
		int fd = k->lfds ? k->lfds[i] : k->job->listen_fds ?
			 k->job->listen_fds[i] : -1;

		if (fd >= 0)
			kj_listen_close(&k->job->listen[i], fd);
	}
	kj_arena_destroy(&k->priv); /* wipes the midstate */
	free(k->creds);
	if (k->exe_fd >= 0)
		close(k->exe_fd);
	if (k->share_fd >= 0)
		close(k->share_fd);
	kj_kp_auth_teardown(k);
	kj_kp_cred_teardown(k);
	free(k->lfds);
	free(k->uid_tab);
	free(k->pend.v);
	free(k->cover.v);
}

static int finish(struct keeper *k)
{
	struct kj_record rec;
	const uint8_t *jcs;
	size_t len;

	if (k->end != KJ_KEEPER_COMPLETED && k->end != KJ_KEEPER_MAX_FAILED)
		return kj_kp_commit(k);
	/* EVIDENCE.md §2: after the listeners closed and the last device
	 * record; then made durable and, via the hook, checkpointed. */
	KJ_TRY(kj_journal_job_end(k->job->journal, &rec, &jcs, &len));
	if (k->job->hooks.record)
		KJ_TRY(k->job->hooks.record(k->job->hooks.ctx, rec.seq, jcs,
					    len));
	return kj_kp_commit(k);
}

int kj_keeper_run(struct kj_job *job, struct kj_keeper_stats *st)
{
	struct keeper *k = calloc(1, sizeof(*k));
	uint8_t *buf = malloc(KJ_IPC_MSG_MAX + 1);
	int rc = 0;

	if (!k || !buf) {
		kj_err("keeper: out of memory");
		free(k);
		free(buf);
		return -ENOMEM;
	}
	k->exe_fd = k->share_fd = -1;
	k->priv.fd = -1;
	KJ_TRY_GOTO(rc, keeper_setup(k, job), out);
	kj_kp_update_issuing(k);
	for (unsigned i = 0; i < k->n_inj; i++)
		KJ_TRY_GOTO(rc, kj_kp_inj_start(k, &k->inj[i]), out);
	/* Injectors stop only once nothing is in flight (maybe_stop...). */
	while (!all_dead(k))
		KJ_TRY_GOTO(rc, turn(k, buf), out);
	/* Listeners closed by the last injector's exit: no new device. */
	for (size_t i = 0; i < job->n_listen; i++) {
		kj_listen_close(&job->listen[i], k->lfds[i]);
		k->lfds[i] = -1;
	}
	KJ_TRY_GOTO(rc, finish(k), out);
	rc = k->end;
out:
	keeper_teardown(k);
	stats_snapshot(k);
	if (job->hooks.progress)
		job->hooks.progress(job->hooks.ctx, &k->st);
	if (st)
		*st = k->st;
	free(buf);
	free(k);
	return rc;
}
