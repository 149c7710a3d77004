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
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "injector/injector.h"
#include "wire/ipc.h"
#include "keeper.h"

#define MAX_WORKERS 64
#define PACKETS_PER_TURN 64
#define IPC_SOCKBUF (4 * 1024 * 1024)
#define HOOK_TICK_MS 100 /* hooks.committed also runs on this timer */

/* Injector states: which requests are permitted (table below). */
enum { I_DEAD = 0, I_START, I_RUN, I_STOPPING };
#define IS(s) (1u << (s))

/* Slot states, per injector connection tag. */
enum { K_FREE = 0, K_REFUSING, K_RESERVED, K_DECIDED };

struct kslot {
	uint8_t state;
	bool offer_sent;
	uint8_t uid_len;
	uint16_t socket;
	struct kslot *hnext; /* in-flight uid hash chain */
	uint64_t uid_hash;
	uint8_t uid[KJ_UID_MAX];
	char site[KJ_STR8_MAX + 1];
	char hwrev[KJ_STR8_MAX + 1];
	struct kj_reservation res;
	uint64_t blob_off;
	uint32_t blob_len;
};

struct opkt {
	struct opkt *next;
	struct kj_ipc_buf b;
	uint8_t data[KJ_IPC_MSG_MAX];
};

struct inj {
	unsigned worker;
	uint32_t gen;	/* incremented per start: stale answers dropped */
	int state;
	pid_t pid;
	int fd;
	unsigned max_conns;	/* slots: --max-connections (engine.h) */
	unsigned share;		/* of --max-connections */
	struct kslot *slots;
	struct opkt *cur;	   /* being filled */
	struct opkt *qhead, *qtail; /* full, EAGAIN on send */
	struct kj_ipc_counters cnt;
};

/* An answer waiting for durability (and maybe a checkpoint). */
struct reply {
	unsigned inj;
	uint32_t gen;
	uint16_t type;
	uint32_t tag;
	uint64_t cover; /* COMMIT: tree size that must be attested */
	union {
		struct kj_ipc_refuse refuse;
		struct kj_ipc_verdict verdict;
		struct {
			struct kj_ipc_offer o;
			char serial[KJ_STR8_MAX];
		} offer;
	} u;
};

struct rqueue {
	struct reply *v;
	size_t head, n, cap;
};

struct keeper {
	struct kj_job *job;
	struct kj_keeper_stats st;
	struct inj inj[MAX_WORKERS];
	unsigned n_inj;
	int *lfds;
	const struct kj_readback *fw_rb;
	struct kj_readback *fw_rb_own;
	uint64_t quantity, max_failed;
	uint64_t ok_total, failed_total;
	uint64_t in_flight;
	bool issuing;
	uint16_t refuse_reason; /* QUOTA or STOPPED once not issuing */
	int end;		/* enum kj_keeper_end once decided */
	uint64_t last_commit_ms, last_progress_ms, start_ms;
	uint64_t covered;
	struct rqueue pend;   /* waiting for the next commit */
	struct rqueue cover;  /* COMMITs waiting for a checkpoint */
	struct kj_ipc_counters gone; /* counters of injectors that ended */
	struct kslot **uid_tab;
	size_t uid_tab_n;
	int err;
};

/* ---- small helpers ---------------------------------------------------- */

static int rq_push(struct rqueue *q, const struct reply *r)
{
	if (q->head + q->n == q->cap) {
		if (q->head) {
			memmove(q->v, q->v + q->head, q->n * sizeof(*q->v));
			q->head = 0;
		}
		if (q->n == q->cap) {
			size_t cap = q->cap ? 2 * q->cap : 256;
			struct reply *v = realloc(q->v, cap * sizeof(*v));

			if (!v) {
				kj_err("keeper: out of memory for answers");
				return -ENOMEM;
			}
			q->v = v;
			q->cap = cap;
		}
	}
	q->v[q->head + q->n++] = *r;
	return 0;
}

static uint64_t uid_hash(const uint8_t *uid, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ uid[i]) * 1099511628211ull;
	return h;
}

static bool uid_in_flight(struct keeper *k, const uint8_t *uid, size_t n)
{
	uint64_t h = uid_hash(uid, n);

	for (struct kslot *s = k->uid_tab[h % k->uid_tab_n]; s; s = s->hnext)
		if (s->uid_hash == h && s->uid_len == n &&
		    !memcmp(s->uid, uid, n))
			return true;
	return false;
}

static void uid_add(struct keeper *k, struct kslot *s)
{
	struct kslot **b;

	s->uid_hash = uid_hash(s->uid, s->uid_len);
	b = &k->uid_tab[s->uid_hash % k->uid_tab_n];
	s->hnext = *b;
	*b = s;
}

static void uid_del(struct keeper *k, struct kslot *s)
{
	struct kslot **p = &k->uid_tab[s->uid_hash % k->uid_tab_n];

	for (; *p; p = &(*p)->hnext)
		if (*p == s) {
			*p = s->hnext;
			break;
		}
	s->hnext = NULL;
}

/* ---- records -------------------------------------------------------------- */

static void device_record(const struct kslot *s, struct kj_record *r,
			  enum kj_result res)
{
	memset(r, 0, sizeof(*r));
	r->kind = KJ_REC_DEVICE;
	r->site = s->site;
	r->socket = s->socket;
	memcpy(r->uid, s->uid, s->uid_len);
	r->uid_len = s->uid_len;
	r->hwrev = s->hwrev;
	r->result = res;
}

static int append(struct keeper *k, struct kj_record *r)
{
	const uint8_t *jcs;
	size_t len;
	int rc;

	rc = kj_journal_append_record(k->job->journal, r, &jcs, &len);
	if (rc < 0)
		return rc;
	if (r->kind == KJ_REC_DEVICE && r->result < KJ_RES_COUNT_) {
		k->st.results[r->result]++;
		if (r->result == KJ_RES_OK) {
			k->ok_total++;
			k->st.run_ok++;
		} else if (r->has_attempt &&
			   kj_result_after_offer(r->result)) {
			/* As the journal counts: refusals never count. */
			k->failed_total++;
		}
	}
	if (k->job->hooks.record)
		KJ_TRY(k->job->hooks.record(k->job->hooks.ctx, r->seq, jcs, len));
	return 0;
}

/* An attempt ended after OFFER: record it; the unit of quantity is free. */
static int close_attempt(struct keeper *k, struct kslot *s,
			 enum kj_result res, uint16_t site_code,
			 const uint8_t *readback)
{
	struct kj_record r;

	device_record(s, &r, res);
	kj_record_set_reservation(&r, &s->res);
	r.site_code = site_code;
	if (readback) {
		r.has_readback = true;
		memcpy(r.readback, readback, 32);
	}
	uid_del(k, s);
	k->in_flight--;
	s->state = K_DECIDED;
	return append(k, &r);
}

/* ---- answers ------------------------------------------------------------ */

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

static int inj_put(struct inj *in, unsigned type, const void *a, size_t alen,
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
static int inj_flush(struct keeper *k, struct inj *in)
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

static void send_reply(struct keeper *k, const struct reply *r)
{
	struct inj *in = &k->inj[r->inj];
	struct kslot *s;
	int rc = 0;

	if (in->state == I_DEAD || in->gen != r->gen)
		return; /* that injector died: handled in inj_dead */
	s = &in->slots[r->tag];
	switch (r->type) {
	case KJ_IPC_OFFER:
		s->offer_sent = true;
		rc = inj_put(in, r->type, &r->u.offer.o, sizeof(r->u.offer.o),
			     r->u.offer.serial, r->u.offer.o.serial_len);
		break;
	case KJ_IPC_REFUSE:
		s->state = K_FREE;
		rc = inj_put(in, r->type, &r->u.refuse, sizeof(r->u.refuse),
			     NULL, 0);
		break;
	case KJ_IPC_VERDICT:
		s->state = K_FREE;
		rc = inj_put(in, r->type, &r->u.verdict, sizeof(r->u.verdict),
			     NULL, 0);
		break;
	default:
		break;
	}
	if (rc < 0)
		k->err = rc;
}

/* After a commit: everything in pend is durable. */
static void release_pend(struct keeper *k)
{
	for (size_t i = 0; i < k->pend.n; i++) {
		struct reply *r = &k->pend.v[k->pend.head + i];

		if (r->type == KJ_IPC_VERDICT && r->u.verdict.code == 0 &&
		    r->cover > k->covered) {
			if (rq_push(&k->cover, r) < 0)
				k->err = -ENOMEM;
			continue;
		}
		send_reply(k, r);
	}
	k->pend.head = k->pend.n = 0;
}

static void release_cover(struct keeper *k)
{
	while (k->cover.n && k->cover.v[k->cover.head].cover <= k->covered) {
		send_reply(k, &k->cover.v[k->cover.head]);
		k->cover.head++;
		k->cover.n--;
	}
	if (!k->cover.n)
		k->cover.head = 0;
}

static int commit(struct keeper *k)
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
	k->covered = size;
	if (k->job->hooks.committed) {
		rc = k->job->hooks.committed(k->job->hooks.ctx, size,
					     &k->covered);
		if (rc < 0)
			return rc;
	}
	release_pend(k);
	release_cover(k);
	return k->err;
}

/* ---- policy ------------------------------------------------------------- */

static void update_issuing(struct keeper *k)
{
	if (!k->issuing)
		return;
	if (k->job->stop && *k->job->stop) {
		k->issuing = false;
		k->refuse_reason = KJ_ABORT_STOPPED;
		k->end = KJ_KEEPER_STOPPED;
	} else if (k->failed_total > k->max_failed) {
		k->issuing = false;
		k->refuse_reason = KJ_ABORT_QUOTA;
		k->end = KJ_KEEPER_MAX_FAILED;
		kj_warn("job: %llu failed attempts exceed max_failed %llu: "
			"no more devices are started",
			(unsigned long long)k->failed_total,
			(unsigned long long)k->max_failed);
	} else if (k->ok_total >= k->quantity) {
		k->issuing = false;
		k->refuse_reason = KJ_ABORT_QUOTA;
		k->end = KJ_KEEPER_COMPLETED;
	}
}

static enum kj_result refusal_result(unsigned code)
{
	switch (code) {
	case KJ_ABORT_LOCKED_OUT: return KJ_RES_LOCKED_OUT;
	case KJ_ABORT_QUOTA: return KJ_RES_QUOTA;
	case KJ_ABORT_DUPLICATE: return KJ_RES_DUPLICATE;
	case KJ_ABORT_STOPPED: return KJ_RES_STOPPED;
	case KJ_ABORT_UNAUTHORIZED: return KJ_RES_UNAUTHORIZED;
	default: return KJ_RES_INTERNAL;
	}
}

/* PROTOCOL.md: which ABORT (0: none) a valid HELLO gets before OFFER. */
static int admit_check(struct keeper *k, const struct kslot *s)
{
	const struct kj_job *job = k->job;
	int rc;

	if (job->sites && !kj_sites_allowed(job->sites, s->site,
					    strlen(s->site), s->socket))
		return KJ_ABORT_UNAUTHORIZED;
	if (!kj_order_hwrev_allowed(job->wo, s->hwrev, strlen(s->hwrev)))
		return KJ_ABORT_LOCKED_OUT;
	if (uid_in_flight(k, s->uid, s->uid_len))
		return KJ_ABORT_DUPLICATE;
	rc = kj_journal_uid_done(job->journal, s->uid, s->uid_len);
	if (rc < 0)
		return rc;
	if (rc > 0)
		return KJ_ABORT_DUPLICATE;
	update_issuing(k);
	if (!k->issuing)
		return k->refuse_reason;
	if (k->ok_total + k->in_flight >= k->quantity)
		return KJ_ABORT_QUOTA;
	return 0;
}

static int refuse(struct keeper *k, struct inj *in, uint32_t tag,
		  struct kslot *s, unsigned code)
{
	struct reply r = { .inj = (unsigned)(in - k->inj), .gen = in->gen,
			   .type = KJ_IPC_REFUSE, .tag = tag };
	struct kj_record rec;

	device_record(s, &rec, refusal_result(code));
	KJ_TRY(append(k, &rec));
	s->state = K_REFUSING;
	r.u.refuse.tag = tag;
	r.u.refuse.code = (uint16_t)code;
	return rq_push(&k->pend, &r);
}

static int reserve(struct keeper *k, struct inj *in, uint32_t tag,
		   struct kslot *s)
{
	struct reply r = { .inj = (unsigned)(in - k->inj), .gen = in->gen,
			   .type = KJ_IPC_OFFER, .tag = tag };
	const struct kj_cred *c;
	struct kj_record hello;
	size_t slen;
	int rc;

	device_record(s, &hello, KJ_RES_NONE);
	rc = kj_journal_reserve(k->job->journal, &hello, &s->res);
	if (rc == -ENOBUFS) {
		k->issuing = false;
		k->refuse_reason = KJ_ABORT_QUOTA;
		k->end = KJ_KEEPER_EXHAUSTED;
		return refuse(k, in, tag, s, KJ_ABORT_INTERNAL);
	}
	if (rc < 0)
		return rc;
	c = kj_creds_find(k->job->creds->table, s->res.cred_index);
	if (!c) {
		kj_err("keeper: credential index %llu reserved but not in the "
		       "batch table", (unsigned long long)s->res.cred_index);
		return -EIO;
	}
	s->blob_off = c->blob_off;
	s->blob_len = c->blob_len;
	s->state = K_RESERVED;
	s->offer_sent = false;
	uid_add(k, s);
	k->in_flight++;
	slen = strlen(s->res.serial);
	r.u.offer.o.tag = tag;
	r.u.offer.o.blob_len = c->blob_len;
	r.u.offer.o.attempt = s->res.attempt;
	r.u.offer.o.blob_off = c->blob_off;
	r.u.offer.o.serial_len = (uint8_t)slen;
	memcpy(r.u.offer.serial, s->res.serial, slen);
	return rq_push(&k->pend, &r);
}

/* ---- requests (the dispatch table) ---------------------------------------- */

static int on_ready(struct keeper *k, struct inj *in, const uint8_t *b,
		    size_t len)
{
	struct kj_ipc_ready m;

	(void)k;
	(void)len;
	memcpy(&m, b, sizeof(m));
	if (m.worker != in->worker || m.max_conns != in->max_conns ||
	    (pid_t)m.pid != in->pid)
		return -EPROTO;
	in->state = I_RUN;
	kj_debug("keeper: injector %u (pid %d) ready", in->worker, in->pid);
	return 0;
}

static struct kslot *slot_of(struct inj *in, uint32_t tag)
{
	return tag < in->max_conns ? &in->slots[tag] : NULL;
}

static int on_admit(struct keeper *k, struct inj *in, const uint8_t *b,
		    size_t len)
{
	struct kj_ipc_admit m;
	struct kslot *s;
	const uint8_t *v = b + sizeof(m);
	int code;

	(void)len;
	memcpy(&m, b, sizeof(m));
	s = slot_of(in, m.tag);
	if (!s || s->state != K_FREE)
		return -EPROTO;
	/* The injector is not trusted: the HELLO rules again (str8). */
	if (!kj_str8_valid(v, m.site_len) ||
	    !kj_str8_valid(v + m.site_len + m.uid_len, m.hwrev_len))
		return -EPROTO;
	memcpy(s->site, v, m.site_len);
	s->site[m.site_len] = 0;
	v += m.site_len;
	memcpy(s->uid, v, m.uid_len);
	s->uid_len = m.uid_len;
	v += m.uid_len;
	memcpy(s->hwrev, v, m.hwrev_len);
	s->hwrev[m.hwrev_len] = 0;
	s->socket = m.socket;
	k->st.hellos++;
	code = admit_check(k, s);
	if (code < 0)
		return code == -EPROTO ? -EIO : code;
	if (code > 0)
		return refuse(k, in, m.tag, s, (unsigned)code);
	return reserve(k, in, m.tag, s);
}

static enum kj_result outcome_result(unsigned kind)
{
	switch (kind) {
	case KJ_OUT_TIMEOUT: return KJ_RES_TIMEOUT;
	case KJ_OUT_DISCONNECTED: return KJ_RES_DISCONNECTED;
	case KJ_OUT_PROTOCOL: return KJ_RES_PROTOCOL;
	case KJ_OUT_SITE_ABORT: return KJ_RES_SITE_ABORT;
	default: return KJ_RES_INTERNAL;
	}
}

static int on_outcome(struct keeper *k, struct inj *in, const uint8_t *b,
		      size_t len)
{
	struct reply r = { .inj = (unsigned)(in - k->inj), .gen = in->gen,
			   .type = KJ_IPC_VERDICT };
	struct kj_ipc_outcome m;
	uint8_t want[KJ_DIGEST_LEN];
	struct kslot *s;
	bool ok;

	(void)len;
	memcpy(&m, b, sizeof(m));
	s = slot_of(in, m.tag);
	if (!s || s->state != K_RESERVED || !s->offer_sent ||
	    m.attempt != s->res.attempt || m.kind < KJ_OUT_READBACK ||
	    m.kind > KJ_OUT_MAX_)
		return -EPROTO;
	r.tag = m.tag;
	r.u.verdict.tag = m.tag;
	r.u.verdict.attempt = m.attempt;
	if (m.kind == KJ_OUT_READBACK) {
		kj_readback_device(k->fw_rb, s->uid, s->uid_len,
				   k->job->arena->base + s->blob_off,
				   s->blob_len, want);
		ok = kj_readback_equal(want, m.digest);
		explicit_bzero(want, sizeof(want));
		KJ_TRY(close_attempt(k, s, ok ? KJ_RES_OK : KJ_RES_READBACK, 0,
				     m.digest));
		r.u.verdict.code = ok ? 0 : KJ_ABORT_READBACK;
		r.u.verdict.leaf_index = kj_journal_record_count(
						 k->job->journal) - 1;
		r.cover = r.u.verdict.leaf_index + 1;
	} else {
		if (m.kind == KJ_OUT_SITE_ABORT &&
		    (m.site_code < KJ_ABORT_MIN || m.site_code > KJ_ABORT_MAX))
			return -EPROTO;
		KJ_TRY(close_attempt(k, s, outcome_result(m.kind),
				     m.kind == KJ_OUT_SITE_ABORT ? m.site_code
								 : 0,
				     NULL));
		r.u.verdict.code = KJ_VERDICT_SILENT;
	}
	return rq_push(&k->pend, &r);
}

static int on_counters(struct keeper *k, struct inj *in, const uint8_t *b,
		       size_t len)
{
	(void)k;
	(void)len;
	memcpy(&in->cnt, b, sizeof(in->cnt));
	return 0;
}

typedef int (*handler_fn)(struct keeper *, struct inj *, const uint8_t *,
			  size_t);

/* What an injector may ask, and when (OpenSSH monitor.c style). */
static const struct {
	unsigned type;
	unsigned states;
	handler_fn fn;
} dispatch[] = {
	{ KJ_IPC_READY, IS(I_START), on_ready },
	{ KJ_IPC_ADMIT, IS(I_RUN) | IS(I_STOPPING), on_admit },
	{ KJ_IPC_OUTCOME, IS(I_RUN) | IS(I_STOPPING), on_outcome },
	{ KJ_IPC_COUNTERS, IS(I_RUN) | IS(I_STOPPING), on_counters },
};

static int on_packet(struct keeper *k, struct inj *in, const uint8_t *p,
		     size_t len)
{
	struct kj_ipc_iter it;
	const uint8_t *body;
	const char *why = "request not permitted now";
	unsigned type = 0;
	size_t blen;
	int rc;

	kj_ipc_iter_init(&it, p, len);
	while ((rc = kj_ipc_next(&it, &type, &body, &blen, &why)) > 0) {
		size_t i;

		for (i = 0; i < KJ_ARRAY_SIZE(dispatch); i++)
			if (dispatch[i].type == type)
				break;
		if (i == KJ_ARRAY_SIZE(dispatch) ||
		    !(dispatch[i].states & IS(in->state))) {
			why = "request not permitted in this state";
			rc = -EPROTO;
			break;
		}
		rc = dispatch[i].fn(k, in, body, blen);
		if (rc < 0) {
			why = "request does not fit the connection's state";
			break;
		}
	}
	if (rc == -EPROTO || rc == -EBADMSG) {
		kj_err("keeper: injector %u (pid %d): %s %s: killing it",
		       in->worker, in->pid, kj_ipc_type_name(type), why);
		return -EPROTO;
	}
	return rc < 0 ? rc : 0;
}

/* ---- injector life -------------------------------------------------------- */

static int inj_start(struct keeper *k, struct inj *in)
{
	const struct kj_job *job = k->job;
	struct kj_injector_args a = { 0 };
	int sv[2], buf = IPC_SOCKBUF;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		kj_err("keeper: socketpair: %s", strerror(errno));
		return -errno;
	}
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	(void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	(void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		kj_err("keeper: fork injector: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		close(sv[0]);
		a.arena_fd = job->arena->fd;
		a.arena_size = job->arena->size;
		a.cfg.worker = in->worker;
		a.cfg.fw_off = job->fw_off;
		a.cfg.fw_size = job->fw_size;
		snprintf(a.cfg.fw_version, sizeof(a.cfg.fw_version), "%s",
			 job->wo->fw_version_str);
		memcpy(a.cfg.fw_sha256, job->wo->fw_sha256, 32);
		a.cfg.listen_fds = k->lfds;
		a.cfg.n_listen = (unsigned)job->n_listen;
		a.cfg.ipc_fd = sv[1];
		a.cfg.max_conns = in->max_conns;
		a.cfg.accept_limit = in->share;
		a.cfg.hello_timeout_ms = job->limits.hello_timeout_ms;
		a.cfg.program_timeout_ms = job->limits.program_timeout_ms;
		kj_injector_main(&a);
	}
	close(sv[1]);
	in->fd = sv[0];
	in->pid = pid;
	in->gen++;
	in->state = I_START;
	memset(&in->cnt, 0, sizeof(in->cnt));
	return 0;
}

static void opkt_free_all(struct inj *in)
{
	struct opkt *o, *n;

	for (o = in->qhead; o; o = n) {
		n = o->next;
		free(o);
	}
	free(in->cur);
	in->cur = NULL;
	in->qhead = in->qtail = NULL;
}

/*
 * The injector is gone (exited, crashed, or killed for a bad request):
 * its devices that were OFFERed, or about to be, are recorded `internal`
 * (SPEC §2); a fresh injector starts unless the job is ending.
 */
static int inj_dead(struct keeper *k, struct inj *in, bool restart)
{
	int status = 0, rc;

	if (in->state == I_DEAD)
		return 0;
	kill(in->pid, SIGKILL);
	while (waitpid(in->pid, &status, 0) < 0 && errno == EINTR)
		;
	close(in->fd);
	in->fd = -1;
	opkt_free_all(in);
	if (in->state == I_STOPPING && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0) {
		restart = false;
	} else if (restart) {
		if (WIFSIGNALED(status))
			kj_warn("keeper: injector %u (pid %d) died by signal "
				"%d (%s)%s", in->worker, in->pid,
				WTERMSIG(status), strsignal(WTERMSIG(status)),
				WTERMSIG(status) == SIGSYS ?
				": a sandbox violation (seccomp), see "
				"docs/SANDBOX.md" : "");
		else
			kj_warn("keeper: injector %u (pid %d) exited with "
				"status %d", in->worker, in->pid,
				WEXITSTATUS(status));
	}
	if (in->state == I_STOPPING)
		restart = false;
	if (in->state == I_START && restart) {
		/* It never got as far as READY: a fresh one would fail the
		 * same way (no io_uring, sandbox refused: see above). */
		kj_err("keeper: injector %u could not start (its messages "
		       "above say why)", in->worker);
		restart = false;
		k->err = -EIO;
	}
	in->state = I_DEAD;
	for (unsigned t = 0; t < in->max_conns; t++) {
		struct kslot *s = &in->slots[t];

		if (s->state == K_RESERVED) {
			rc = close_attempt(k, s, KJ_RES_INTERNAL, 0, NULL);
			if (rc < 0)
				return rc;
		}
		s->state = K_FREE;
	}
	k->gone.accepted += in->cnt.accepted;
	k->gone.pre_hello_protocol += in->cnt.pre_hello_protocol;
	k->gone.pre_hello_timeout += in->cnt.pre_hello_timeout;
	k->gone.pre_hello_eof += in->cnt.pre_hello_eof;
	k->gone.over_limit += in->cnt.over_limit;
	k->gone.bytes_sent += in->cnt.bytes_sent;
	memset(&in->cnt, 0, sizeof(in->cnt));
	if (!restart)
		return k->err;
	if (++k->st.injector_restarts > k->job->limits.max_restarts) {
		kj_err("keeper: injectors died %llu times: giving up",
		       (unsigned long long)k->st.injector_restarts);
		return -EIO;
	}
	return inj_start(k, in);
}

static int inj_read(struct keeper *k, struct inj *in, uint8_t *buf)
{
	for (int i = 0; i < PACKETS_PER_TURN; i++) {
		ssize_t n = recv(in->fd, buf, KJ_IPC_MSG_MAX + 1,
				 MSG_DONTWAIT | MSG_TRUNC);
		int rc;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0)
			return inj_dead(k, in, true);
		if ((size_t)n > KJ_IPC_MSG_MAX) {
			kj_err("keeper: injector %u: packet of %zd bytes over "
			       "the %u cap: killing it", in->worker, n,
			       KJ_IPC_MSG_MAX);
			return inj_dead(k, in, true);
		}
		rc = on_packet(k, in, buf, (size_t)n);
		if (rc == -EPROTO)
			return inj_dead(k, in, true);
		if (rc < 0)
			return rc;
		if (in->state == I_DEAD)
			return 0;
	}
	return 0;
}

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
	st->bytes_sent = k->gone.bytes_sent;
	st->conns_open = 0;
	for (unsigned i = 0; i < k->n_inj; i++) {
		const struct kj_ipc_counters *c = &k->inj[i].cnt;

		st->conns_accepted += c->accepted;
		st->conns_open += c->open;
		st->pre_hello_failures += c->pre_hello_protocol +
					  c->pre_hello_timeout +
					  c->pre_hello_eof;
		st->over_limit += c->over_limit;
		st->bytes_sent += c->bytes_sent;
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
		if (inj_put(in, KJ_IPC_STOP, &s, sizeof(s), NULL, 0) == 0)
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
			KJ_TRY(inj_read(k, in, buf));
	}
	update_issuing(k);
	if ((kj_journal_pending(k->job->journal) || k->pend.n ||
	     k->cover.n) &&
	    kj_now_ms() - k->last_commit_ms >= k->job->limits.commit_interval_ms)
		KJ_TRY(commit(k));
	else if (k->job->hooks.committed &&
		 kj_now_ms() - k->last_commit_ms >= HOOK_TICK_MS)
		KJ_TRY(commit(k)); /* the checkpoint cadence goes on idle */
	maybe_stop_injectors(k);
	for (unsigned i = 0; i < k->n_inj; i++)
		(void)inj_flush(k, &k->inj[i]);
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
		l->max_connections = 4096;
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
	k->fw_rb = job->fw_readback;
	if (!k->fw_rb) {
		k->fw_rb_own = kj_arena_alloc(job->arena, sizeof(*k->fw_rb_own));
		if (!k->fw_rb_own)
			return -ENOMEM;
		kj_readback_begin(k->fw_rb_own);
		kj_readback_update(k->fw_rb_own, job->arena->base + job->fw_off,
				   job->fw_size);
		k->fw_rb = k->fw_rb_own;
	}
	k->n_inj = job->limits.workers;
	per = (job->limits.max_connections + k->n_inj - 1) / k->n_inj;
	k->uid_tab_n = (size_t)job->limits.max_connections * 2 + 1;
	k->uid_tab = calloc(k->uid_tab_n, sizeof(*k->uid_tab));
	k->lfds = calloc(job->n_listen + 1, sizeof(int));
	if (!k->uid_tab || !k->lfds) {
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
	for (size_t i = 0; i < job->n_listen; i++)
		k->lfds[i] = -1;
	for (size_t i = 0; i < job->n_listen; i++) {
		int fd = kj_listen_open(&job->listen[i], 4096);

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
			(void)inj_dead(k, &k->inj[i], false);
		free(k->inj[i].slots);
	}
	if (k->lfds)
		for (size_t i = 0; i < k->job->n_listen; i++)
			if (k->lfds[i] >= 0)
				kj_listen_close(&k->job->listen[i], k->lfds[i]);
	if (k->fw_rb_own)
		kj_readback_wipe(k->fw_rb_own);
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
		return commit(k);
	/* EVIDENCE.md §2: after the listeners closed and the last device
	 * record; then made durable and, via the hook, checkpointed. */
	KJ_TRY(kj_journal_job_end(k->job->journal, &rec, &jcs, &len));
	if (k->job->hooks.record)
		KJ_TRY(k->job->hooks.record(k->job->hooks.ctx, rec.seq, jcs,
					    len));
	return commit(k);
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
	KJ_TRY_GOTO(rc, keeper_setup(k, job), out);
	update_issuing(k);
	for (unsigned i = 0; i < k->n_inj; i++)
		KJ_TRY_GOTO(rc, inj_start(k, &k->inj[i]), out);
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
