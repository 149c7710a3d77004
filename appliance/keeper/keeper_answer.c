// SPDX-License-Identifier: Apache-2.0
/*
 * The keeper's answers to its injectors, when they may leave and the
 * packets they leave in (keeper.c top comment): an answer waits in `pend`
 * until a journal commit covers what it depends on, a COMMIT verdict then
 * in `cover` until a checkpoint does.  Apart from the loop because this
 * gating is what makes a device's record durable before the injector acts
 * on it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/array.h"
#include "base/log.h"
#include "base/util.h"
#include "journal/journal.h"
#include "wire/ipc.h"
#include "keeper_int.h"

int kj_kp_rq_push(struct rqueue *q, const struct reply *r)
{
	if (q->head + q->n == q->cap) {
		if (q->head) {
			memmove(q->v, q->v + q->head, q->n * sizeof(*q->v));
			q->head = 0;
		}
		if (kj_grow(&q->v, &q->cap, q->n + 1, 256)) {
			kj_err("keeper: out of memory for answers");
			return -ENOMEM;
		}
	}
	q->v[q->head + q->n++] = *r;
	return 0;
}

static struct opkt *opkt_new(void)
{
	struct opkt *o = malloc(sizeof(*o));

	if (o) {
		o->next = NULL;
		o->b.p = o->data;
		o->b.len = 0;
		o->b.n = 0;
	}
	return o;
}

static void inj_queue_full(struct inj *in)
{
	if (in->qtail)
		in->qtail->next = in->cur;
	else
		in->qhead = in->cur;
	in->qtail = in->cur;
	in->cur = NULL;
}

int kj_kp_inj_put(struct inj *in, unsigned type, const void *a, size_t alen,
		  const void *b, size_t blen)
{
	for (int tries = 0; tries < 2; tries++) {
		if (!in->cur && !(in->cur = opkt_new())) {
			kj_err("keeper: out of memory for a packet");
			return -ENOMEM;
		}
		if (kj_ipc_put(&in->cur->b, type, a, alen, b, blen) == 0)
			return 0;
		inj_queue_full(in);
	}
	return -EMSGSIZE;
}

/* Send what is queued without blocking; the rest waits for POLLOUT. */
int kj_kp_inj_flush(struct keeper *k, struct inj *in)
{
	(void)k;
	if (in->state == I_DEAD)
		return 0;
	if (in->cur && in->cur->b.n)
		inj_queue_full(in);
	while (in->qhead) {
		struct opkt *o = in->qhead;
		ssize_t n = send(in->fd, o->b.p, o->b.len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n < 0)
			return -errno; /* the injector is gone: EOF follows */
		in->qhead = o->next;
		if (!in->qhead)
			in->qtail = NULL;
		free(o);
	}
	return 0;
}

/* COMMITs in a packet that never left: withdrawn (EVIDENCE.md §2). */
static void withdraw_unsent(struct keeper *k, const struct opkt *o)
{
	struct kj_ipc_verdict v;
	struct kj_ipc_iter it;
	const uint8_t *body;
	const char *why;
	unsigned type;
	size_t len;
	int rc;

	kj_ipc_iter_init(&it, o->b.p, o->b.len);
	while (kj_ipc_next(&it, &type, &body, &len, &why) > 0) {
		if (type != KJ_IPC_VERDICT)
			continue;
		memcpy(&v, body, sizeof(v));
		if (v.code)
			continue;
		rc = kj_kp_withdraw(k, v.attempt);
		if (rc < 0)
			k->err = rc;
	}
}

void kj_kp_opkt_free_all(struct keeper *k, struct inj *in)
{
	struct opkt *o, *n;

	for (o = in->qhead; o; o = n) {
		n = o->next;
		withdraw_unsent(k, o);
		free(o);
	}
	if (in->cur)
		withdraw_unsent(k, in->cur);
	free(in->cur);
	in->cur = NULL;
	in->qhead = in->qtail = NULL;
}

static void send_reply(struct keeper *k, const struct reply *r)
{
	struct inj *in = &k->inj[r->inj];
	struct kslot *s;
	int rc = 0;

	if (in->state == I_DEAD || in->gen != r->gen) {
		/* That injector died (kj_kp_inj_dead recorded its devices in
		 * flight); a COMMIT it can no longer pass on is withdrawn. */
		if (r->type == KJ_IPC_VERDICT && r->u.verdict.code == 0) {
			rc = kj_kp_withdraw(k, r->u.verdict.attempt);
			if (rc < 0)
				k->err = rc;
		}
		return;
	}
	s = &in->slots[r->tag];
	switch (r->type) {
	case KJ_IPC_OFFER:
		s->offer_sent = true;
		rc = kj_kp_inj_put(in, r->type, &r->u.offer.o,
				   sizeof(r->u.offer.o), r->u.offer.serial,
				   r->u.offer.o.serial_len);
		break;
	case KJ_IPC_REFUSE:
		s->state = K_FREE;
		rc = kj_kp_inj_put(in, r->type, &r->u.refuse,
				   sizeof(r->u.refuse), NULL, 0);
		break;
	case KJ_IPC_VERDICT:
		s->state = K_FREE;
		rc = kj_kp_inj_put(in, r->type, &r->u.verdict,
				   sizeof(r->u.verdict), NULL, 0);
		break;
	default:
		break;
	}
	if (rc < 0)
		k->err = rc;
}

/*
 * The attestation is lost: a COMMIT no checkpoint covers can never go.
 * The device gets ABORT INTERNAL and its ok record a `withdrawn` one.
 */
static void withdraw_commit(struct keeper *k, const struct reply *r)
{
	struct reply a = *r;
	struct inj *in = &k->inj[r->inj];
	int rc;

	if (in->state == I_DEAD || in->gen != r->gen) {
		send_reply(k, r); /* withdraws it */
		return;
	}
	rc = kj_kp_withdraw(k, r->u.verdict.attempt);
	if (rc < 0) {
		k->err = rc;
		return;
	}
	a.u.verdict.code = KJ_ABORT_INTERNAL;
	send_reply(k, &a);
}

/* After a commit: everything in pend is durable. */
static void release_pend(struct keeper *k)
{
	for (size_t i = 0; i < k->pend.n; i++) {
		struct reply *r = &k->pend.v[k->pend.head + i];

		if (r->type == KJ_IPC_VERDICT && r->u.verdict.code == 0 &&
		    r->cover > k->covered) {
			if (k->tpm_lost)
				withdraw_commit(k, r);
			else if (kj_kp_rq_push(&k->cover, r) < 0)
				k->err = -ENOMEM;
			continue;
		}
		send_reply(k, r);
	}
	k->pend.head = k->pend.n = 0;
}

static void release_cover(struct keeper *k)
{
	while (k->cover.n && (k->tpm_lost ||
			      k->cover.v[k->cover.head].cover <= k->covered)) {
		if (k->tpm_lost)
			withdraw_commit(k, &k->cover.v[k->cover.head]);
		else
			send_reply(k, &k->cover.v[k->cover.head]);
		k->cover.head++;
		k->cover.n--;
	}
	if (!k->cover.n)
		k->cover.head = 0;
}

/* hooks.committed said KJ_KEEPER_ATTEST_LOST (keeper.h). */
static void attest_lost(struct keeper *k)
{
	if (k->tpm_lost)
		return;
	k->tpm_lost = true;
	k->issuing = false;
	k->refuse_reason = KJ_ABORT_INTERNAL;
	k->end = KJ_KEEPER_TPM_LOST;
	kj_err("keeper: the TPM is lost (see above): %zu device(s) waiting "
	       "for a checkpoint get ABORT INTERNAL and are recorded "
	       "withdrawn, the job stops; bring the TPM back (is its "
	       "service running?) and run the same command again to resume",
	       k->cover.n);
}

int kj_kp_commit(struct keeper *k)
{
	uint64_t size;
	int rc;

	if (kj_journal_pending(k->job->journal)) {
		rc = kj_journal_commit(k->job->journal);
		if (rc < 0)
			return rc;
		k->st.commits++;
	}
	k->last_commit_ms = kj_now_ms();
	size = kj_journal_record_count(k->job->journal);
	if (!k->job->hooks.committed) {
		k->covered = size;
	} else if (!k->tpm_lost) {
		uint64_t covered = k->covered;

		rc = k->job->hooks.committed(k->job->hooks.ctx, size,
					     &covered);
		if (rc == KJ_KEEPER_ATTEST_LOST)
			attest_lost(k);
		else if (rc < 0)
			return rc;
		else
			k->covered = covered;
	}
	release_pend(k);
	release_cover(k);
	/* withdrawn records made durable now, not at the next turn */
	if (k->tpm_lost && kj_journal_pending(k->job->journal)) {
		rc = kj_journal_commit(k->job->journal);
		if (rc < 0)
			return rc;
		k->st.commits++;
	}
	return k->err;
}
