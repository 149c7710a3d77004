// SPDX-License-Identifier: Apache-2.0
/*
 * The engine's deadlines (PROTOCOL.md "Limits"): a per-ring sweep instead
 * of a LINK_TIMEOUT per socket operation.  A linked timeout is an SQE, a
 * CQE and an hrtimer armed and cancelled for every receive and send, four
 * times per device, although almost none fires.  Here a connection's
 * deadline is an entry in an intrusive list, and the loop wakes at the
 * nearest one (engine.c) and cancels the expired connections' operations
 * with ASYNC_CANCEL: the operation then ends with -ECANCELED exactly as
 * when its linked timeout fired, so every ABORT reason and counter is
 * unchanged, and a deadline is met to within the loop's wake-up (a
 * millisecond), not a coarser tick.
 *
 * Every deadline is "now + one of a few limits" (the HELLO limit, the
 * programming limit, the ABORT's send limit), so one list per limit is in
 * deadline order when entries are appended: insertion is O(1) and the
 * nearest deadline is one of the few heads.  An entry is not removed when
 * its operation completes: the slow-loris receive re-armed with the same
 * absolute deadline keeps its place, and a stale entry is dropped when it
 * expires (nothing in flight: nothing to cancel) or when the connection
 * arms an operation with another deadline or is freed.
 */
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/log.h"
#include "engine_int.h"

static struct conn *at(struct kj_engine *e, uint32_t slot)
{
	return &e->conns[slot];
}

void kj_eng_dl_drop(struct kj_engine *e, struct conn *c)
{
	struct kj_dlist *l;

	if (c->dl_cls == DL_NONE)
		return;
	l = &e->dl[c->dl_cls];
	if (c->dl_prev != NO_SLOT)
		at(e, c->dl_prev)->dl_next = c->dl_next;
	else
		l->head = c->dl_next;
	if (c->dl_next != NO_SLOT)
		at(e, c->dl_next)->dl_prev = c->dl_prev;
	else
		l->tail = c->dl_prev;
	c->dl_cls = DL_NONE;
}

/* The list of the limit ms; the last one takes any further limit. */
static unsigned dl_class(struct kj_engine *e, unsigned ms)
{
	unsigned k;

	for (k = 0; k < DL_CLASSES; k++) {
		if (e->dl[k].ms == ms)
			return k;
		if (!e->dl[k].used) {
			e->dl[k].ms = ms;
			e->dl[k].used = true;
			return k;
		}
	}
	return DL_CLASSES - 1;
}

void kj_eng_dl_set(struct kj_engine *e, struct conn *c, uint64_t ns,
		   unsigned ms)
{
	uint32_t slot = kj_eng_conn_slot(e, c), p;
	struct kj_dlist *l;
	unsigned k;

	if (c->dl_cls != DL_NONE && c->dl_ns == ns)
		return;		/* re-armed within the same deadline */
	kj_eng_dl_drop(e, c);
	k = dl_class(e, ms);
	l = &e->dl[k];
	c->dl_ns = ns;
	c->dl_cls = (uint8_t)k;
	/* Appended in order but for a shared last list: walk back. */
	for (p = l->tail; p != NO_SLOT && at(e, p)->dl_ns > ns;
	     p = at(e, p)->dl_prev)
		;
	c->dl_prev = p;
	c->dl_next = p == NO_SLOT ? l->head : at(e, p)->dl_next;
	if (p == NO_SLOT)
		l->head = slot;
	else
		at(e, p)->dl_next = slot;
	if (c->dl_next == NO_SLOT)
		l->tail = slot;
	else
		at(e, c->dl_next)->dl_prev = slot;
}

static void cancel(struct kj_engine *e, struct conn *c)
{
	struct io_uring_sqe *sqe = kj_eng_get_sqe(e);

	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, kj_eng_ud(kj_eng_conn_slot(e, c), c->gen,
					      (enum op)c->op_live), 0);
	io_uring_sqe_set_data64(sqe, kj_eng_ud(NO_SLOT, 0, OP_CANCEL));
}

/*
 * Cancel the operations whose deadline has passed; returns the nearest
 * deadline left (UINT64_MAX: none).  An operation that completed in the
 * kernel but is not reaped yet is not found (-ENOENT): its connection
 * re-arms with the passed deadline and is cancelled on the next turn.
 */
uint64_t kj_eng_dl_sweep(struct kj_engine *e)
{
	uint64_t now = kj_eng_mono_ns(), next = UINT64_MAX;

	for (unsigned k = 0; k < DL_CLASSES; k++) {
		struct kj_dlist *l = &e->dl[k];

		while (l->head != NO_SLOT) {
			struct conn *c = at(e, l->head);

			if (c->dl_ns > now) {
				if (c->dl_ns < next)
					next = c->dl_ns;
				break;
			}
			kj_eng_dl_drop(e, c);
			if (c->ops && c->op_live)
				cancel(e, c);
		}
	}
	return next;
}
