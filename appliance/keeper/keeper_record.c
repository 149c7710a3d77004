// SPDX-License-Identifier: Apache-2.0
/*
 * What one device attempt leaves behind: its records in the journal, and
 * its uid in the in-flight table while it holds a reservation (a second
 * HELLO with that uid is a DUPLICATE).  Apart because both the requests
 * (keeper_request.c) and an injector's death (keeper_inj.c) end attempts.
 */
#include <string.h>

#include "base/kinject.h"
#include "journal/journal.h"
#include "journal/record.h"
#include "keeper_int.h"

static uint64_t uid_hash(const uint8_t *uid, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ uid[i]) * 1099511628211ull;
	return h;
}

bool kj_kp_uid_in_flight(struct keeper *k, const uint8_t *uid, size_t n)
{
	uint64_t h = uid_hash(uid, n);

	for (struct kslot *s = k->uid_tab[h % k->uid_tab_n]; s; s = s->hnext)
		if (s->uid_hash == h && s->uid_len == n &&
		    !memcmp(s->uid, uid, n))
			return true;
	return false;
}

void kj_kp_uid_add(struct keeper *k, struct kslot *s)
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

void kj_kp_device_record(const struct kslot *s, struct kj_record *r,
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

int kj_kp_append(struct keeper *k, struct kj_record *r)
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

/*
 * EVIDENCE.md §2: the COMMIT of attempt's `ok` record will never be sent
 * (its injector is gone, or no checkpoint can cover it any more): append
 * its `withdrawn` record.  The unit of quantity is free again; the
 * attempt counts against max_failed.
 */
int kj_kp_withdraw(struct keeper *k, uint64_t attempt)
{
	const uint8_t *jcs;
	uint64_t seq;
	size_t len;

	KJ_TRY(kj_journal_withdraw(k->job->journal, attempt, &seq, &jcs,
				   &len));
	k->st.results[KJ_RES_WITHDRAWN]++;
	k->ok_total--;
	k->st.run_ok--;
	k->failed_total++;
	if (k->job->hooks.record)
		KJ_TRY(k->job->hooks.record(k->job->hooks.ctx, seq, jcs, len));
	return 0;
}

/* An attempt ended after OFFER: record it; the unit of quantity is free. */
int kj_kp_close_attempt(struct keeper *k, struct kslot *s, enum kj_result res,
			uint16_t site_code, const uint8_t *readback)
{
	struct kj_record r;

	kj_kp_device_record(s, &r, res);
	kj_record_set_reservation(&r, &s->res);
	r.site_code = site_code;
	if (readback) {
		r.has_readback = true;
		memcpy(r.readback, readback, 32);
	}
	uid_del(k, s);
	kj_kp_cred_release(k, s);
	k->in_flight--;
	s->state = K_DECIDED;
	return kj_kp_append(k, &r);
}
