// SPDX-License-Identifier: Apache-2.0
/*
 * EVIDENCE.md §6 checks 6 (completeness) and 7 (work order), fed one
 * record at a time so that `kinject verify` never holds a bundle's
 * records (issue 12: 1,000,000-device lots).  What the checks need from
 * earlier records is kept in compact entries (verify_set.c): per ok
 * record with an attempt id, 48 bytes (the attempt, its index, 96-bit
 * digests of its uid and serial, 64 bits of its credential and readback:
 * a `withdrawn` record must repeat them); with --work-order, a 16-byte
 * count per distinct uid and serial.  A record that does not parse makes
 * both checks moot, as before: their findings are kept aside until the
 * end and dropped then.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "verify_int.h"

#define DUPS_MAX 65536   /* duplicate names kept to name the first */
#define TAB_FIRST 4096   /* entries the indexes are sized for at first */

enum { OK_PAIRED = 1, OK_GONE = 2, OK_SERIAL = 4 };

struct okent {
	uint64_t attempt;    /* the key */
	uint32_t idx;        /* the record index */
	uint32_t flags;
	uint8_t uid[12], serial[12], rest[8];
};

struct cnt {
	uint8_t d[12];       /* the key: "u" or "s" digest */
	uint32_t n;          /* ok records not withdrawn */
};

struct dup {
	uint8_t d[12];
	bool serial;
	char *s;
};

struct kj_vjob {
	const struct kj_verify_opts *o;
	struct kj_verify_report sh;  /* checks 6, 7: kept aside */
	bool parsed, stopped, ended;
	char *job0;                  /* record 0's job */
	uint64_t qty0;
	uint64_t prev_leaf;
	uint64_t ok, other, wd;      /* check 6 */
	uint64_t ok7, gone;          /* check 7 */
	struct kj_vtab oks, cnts;
	struct dup *dups;
	size_t n_dups;
};

struct kj_vjob *kj_vjob_new(const struct kj_verify_opts *o)
{
	struct kj_vjob *v = calloc(1, sizeof(*v));

	if (v) {
		v->o = o;
		v->parsed = true;
	}
	return v;
}

void kj_vjob_free(struct kj_vjob *v)
{
	if (!v)
		return;
	kj_verify_report_free(&v->sh);
	kj_vtab_free(&v->oks);
	kj_vtab_free(&v->cnts);
	for (size_t i = 0; i < v->n_dups; i++)
		free(v->dups[i].s);
	free(v->dups);
	free(v->job0);
	free(v);
}

static void digest(char dom, const void *p, size_t n, uint8_t *out,
		   size_t out_len)
{
	uint8_t buf[1 + KJ_RECORD_MAX], d[32];

	buf[0] = (uint8_t)dom;
	memcpy(buf + 1, p, n);
	kj_sha256(buf, n + 1, d);
	memcpy(out, d, out_len);
}

/* The fields §2 says a withdrawn record repeats, as stored in okent. */
static void fields(const struct kj_record *r, struct okent *e)
{
	uint8_t rest[1 + 8 + 32 + 1 + 32];

	digest('u', r->uid, r->uid_len, e->uid, sizeof(e->uid));
	if (r->serial) {
		digest('s', r->serial, strlen(r->serial), e->serial,
		       sizeof(e->serial));
		e->flags |= OK_SERIAL;
	}
	rest[0] = r->has_cred;
	kj_put_u64be(rest + 1, r->cred_index);
	memcpy(rest + 9, r->cert_sha256, 32);
	rest[41] = r->has_readback;
	memcpy(rest + 42, r->readback, 32);
	digest('r', rest, sizeof(rest), e->rest, sizeof(e->rest));
}

static bool same_attempt(const struct okent *ok, const struct okent *w)
{
	return (ok->flags & OK_SERIAL) && (w->flags & OK_SERIAL) &&
	       !memcmp(ok->uid, w->uid, sizeof(ok->uid)) &&
	       !memcmp(ok->serial, w->serial, sizeof(ok->serial)) &&
	       !memcmp(ok->rest, w->rest, sizeof(ok->rest));
}

/* Small at first and doubled as they fill: the memory follows the
 * devices the bundle holds, not the quantity its job_start claims. */
static int tables(struct kj_vjob *v)
{
	if (v->oks.cap)
		return 0;
	KJ_TRY(kj_vtab_init(&v->oks, sizeof(struct okent), 8, TAB_FIRST));
	if (v->o->wo)
		KJ_TRY(kj_vtab_init(&v->cnts, sizeof(struct cnt), 12,
				    2 * TAB_FIRST));
	return 0;
}

/* ---- 7: uids and serials of ok records not withdrawn, counted ---------- */

static int count(struct kj_vjob *v, const uint8_t d[12], bool serial,
		 const char *name, int by)
{
	struct cnt *c;
	bool fresh;

	if (!v->o->wo)
		return 0;
	c = kj_vtab_add(&v->cnts, d, &fresh);
	if (!c)
		return -ENOMEM;
	c->n += (uint32_t)by;
	if (by < 0 || c->n != 2 || v->n_dups == DUPS_MAX)
		return 0;
	/* A second ok record of it: named at the end if it stays so. */
	if (!v->n_dups) {
		v->dups = calloc(DUPS_MAX, sizeof(*v->dups));
		if (!v->dups)
			return -ENOMEM;
	}
	v->dups[v->n_dups].s = strdup(name);
	if (!v->dups[v->n_dups].s)
		return -ENOMEM;
	memcpy(v->dups[v->n_dups].d, d, 12);
	v->dups[v->n_dups++].serial = serial;
	return 0;
}

/* The least name of a uid (or serial) with more than one ok record. */
static const char *first_dup(const struct kj_vjob *v, bool serial)
{
	const char *best = NULL;

	for (size_t i = 0; i < v->n_dups; i++) {
		const struct dup *d = &v->dups[i];
		const struct cnt *c = kj_vtab_find(&v->cnts, d->d);

		if (d->serial == serial && c && c->n > 1 &&
		    (!best || strcmp(d->s, best) < 0))
			best = d->s;
	}
	return best;
}

static int ok_record(struct kj_vjob *v, size_t i, const struct kj_record *r)
{
	struct okent e = { .attempt = r->attempt }, *o;
	char hex[2 * KJ_RECORD_UID_MAX + 1];
	bool fresh;

	fields(r, &e);
	v->ok7++;
	kj_hex_encode(r->uid, r->uid_len, hex);
	KJ_TRY(count(v, e.uid, false, hex, 1));
	if (r->serial)
		KJ_TRY(count(v, e.serial, true, r->serial, 1));
	if (!r->has_attempt)
		return 0;
	o = kj_vtab_add(&v->oks, &e.attempt, &fresh);
	if (!o)
		return -ENOMEM;
	if (fresh) {
		e.idx = (uint32_t)i;
		*o = e;
	}
	return 0;
}

/* §2: the ok record it withdraws no longer counts (check 7). */
static int gone(struct kj_vjob *v, struct okent *o)
{
	if (!o || (o->flags & OK_GONE))
		return 0;
	o->flags |= OK_GONE;
	v->gone++;
	KJ_TRY(count(v, o->uid, false, NULL, -1));
	if (o->flags & OK_SERIAL)
		KJ_TRY(count(v, o->serial, true, NULL, -1));
	return 0;
}

/* ---- 6: completeness --------------------------------------------------- */

/*
 * §2/§6.6: a `withdrawn` record follows an `ok` record of the same attempt
 * with the same fields, at most one per attempt.
 */
static int check_withdrawn(struct kj_vjob *v, size_t i, uint64_t leaf,
			   const struct kj_record *r, struct okent *o)
{
	struct okent w = { 0 };

	if (!o || !r->has_attempt) {
		kj_vfail_rec(&v->sh, KJ_VC_COMPLETENESS, i,
			     "record %zu (leaf %" PRIu64 "): withdrawn without an earlier ok record of its attempt",
			     i, leaf);
		return -EBADMSG;
	}
	if (o->flags & OK_PAIRED) {
		kj_vfail_rec(&v->sh, KJ_VC_COMPLETENESS, i,
			     "record %zu (leaf %" PRIu64 "): attempt %" PRIu64 " withdrawn a second time",
			     i, leaf, r->attempt);
		return -EBADMSG;
	}
	fields(r, &w);
	if (!same_attempt(o, &w)) {
		kj_vfail_rec(&v->sh, KJ_VC_COMPLETENESS, i,
			     "record %zu (leaf %" PRIu64 "): withdrawn record differs from the ok record %u of attempt %" PRIu64 " (uid, serial, credential or readback)",
			     i, leaf, o->idx, r->attempt);
		return -EBADMSG;
	}
	o->flags |= OK_PAIRED;
	return 0;
}

static int job_end(struct kj_vjob *v, size_t i, const struct kj_record *r)
{
	bool done = v->ok >= v->qty0;

	v->ended = true;
	/* §2: completed when the quantity was reached (more ok records
	 * than the quantity fail check 7). */
	if ((r->result == KJ_RES_COMPLETED) != done) {
		kj_vfail_rec(&v->sh, KJ_VC_COMPLETENESS, i,
			     "record %zu (job_end): result %s with %" PRIu64 " ok of quantity %" PRIu64,
			     i, kj_result_name(r->result), v->ok, v->qty0);
		return -EBADMSG;
	}
	if (r->ok_count != v->ok || r->failed_count != v->other) {
		kj_vfail_rec(&v->sh, KJ_VC_COMPLETENESS, i,
			     "record %zu (job_end): ok_count %" PRIu64 " / failed_count %" PRIu64 ", the records have %" PRIu64 " / %" PRIu64,
			     i, r->ok_count, r->failed_count, v->ok, v->other);
		return -EBADMSG;
	}
	return 0;
}

/* One record's part of check 6; -EBADMSG stops the check (first fault). */
static int complete(struct kj_vjob *v, size_t i, uint64_t leaf,
		    const struct kj_record *r, struct okent *o)
{
	const char *why = NULL;

	if (i && leaf <= v->prev_leaf)
		why = "out of log order";
	else if (r->job_seq != i)
		kj_vfail_rec(&v->sh, KJ_VC_COMPLETENESS, i,
			     "record %zu (leaf %" PRIu64 "): job_seq %" PRIu64 " where %zu was expected (a record is missing, repeated or out of order)",
			     i, leaf, r->job_seq, i);
	else if ((i == 0) != (r->kind == KJ_REC_JOB_START))
		kj_vfail_rec(&v->sh, KJ_VC_COMPLETENESS, i,
			     "record %zu (leaf %" PRIu64 "): %s where the job_start record belongs only at job_seq 0",
			     i, leaf, kj_record_kind_name(r->kind));
	else if (strcmp(r->job, v->job0))
		why = "of another job";
	else if (v->ended)
		why = "follows the job_end record";
	else
		goto fine;
	if (why)
		kj_vfail_rec(&v->sh, KJ_VC_COMPLETENESS, i,
			     "record %zu (leaf %" PRIu64 "): %s", i, leaf, why);
	return -EBADMSG;
fine:
	if (r->kind == KJ_REC_JOB_END)
		return job_end(v, i, r);
	if (r->kind != KJ_REC_DEVICE)
		return 0;
	/* §2: each attempt once, a withdrawn one as failed */
	if (r->result == KJ_RES_OK) {
		v->ok++;
	} else if (r->result == KJ_RES_WITHDRAWN) {
		KJ_TRY(check_withdrawn(v, i, leaf, r, o));
		v->ok--;
		v->wd++;
		v->other++;
	} else {
		v->other++;
	}
	return 0;
}

/* ---- 7: work order ------------------------------------------------------ */

static bool same_job(const struct kj_record *r, const struct kj_work_order *wo)
{
	return !strcmp(r->job, wo->id) && !strcmp(r->customer, wo->customer) &&
	       !strcmp(r->product, wo->product) &&
	       !strcmp(r->batch, wo->batch);
}

static bool same_fw(const struct kj_record *r, const struct kj_work_order *wo)
{
	if (r->kind == KJ_REC_JOB_END)
		return true;
	return r->fw_version && !strcmp(r->fw_version, wo->fw_version_str) &&
	       !memcmp(r->fw_sha256, wo->fw_sha256, 32);
}

static void work_order(struct kj_vjob *v, size_t i, uint64_t leaf,
		       const struct kj_record *r)
{
	const struct kj_work_order *wo = v->o->wo;

	if (i == 0 && (r->kind != KJ_REC_JOB_START ||
		       memcmp(r->work_order_sha256, wo->sha256, 32)))
		kj_vfail(&v->sh, KJ_VC_WORK_ORDER,
			 "record 0: work_order_sha256 is not the SHA-256 of the work order given");
	if (!same_job(r, wo) || !same_fw(r, wo))
		kj_vfail_rec(&v->sh, KJ_VC_WORK_ORDER, i,
			     "record %zu (leaf %" PRIu64 "): job, customer, product, batch or firmware differ from the work order",
			     i, leaf);
}

int kj_vjob_record(struct kj_vjob *v, size_t i, uint64_t leaf,
		   const struct kj_record *r)
{
	struct okent *o = NULL;

	if (!r) {
		v->parsed = false;
		return 0;
	}
	if (!v->parsed)
		return 0; /* both checks are moot already */
	if (i == 0) {
		v->job0 = strdup(r->job ? r->job : "");
		if (!v->job0)
			return -ENOMEM;
		v->qty0 = r->quantity;
	}
	KJ_TRY(tables(v));
	if (r->kind == KJ_REC_DEVICE && r->result == KJ_RES_WITHDRAWN)
		o = kj_vtab_find(&v->oks, &r->attempt);
	if (o && o->idx >= i)
		o = NULL;
	if (!v->stopped && complete(v, i, leaf, r, o) < 0)
		v->stopped = true;
	if (v->o->wo)
		work_order(v, i, leaf, r);
	if (r->kind == KJ_REC_DEVICE && r->result == KJ_RES_OK)
		KJ_TRY(ok_record(v, i, r));
	if (r->kind == KJ_REC_DEVICE && r->result == KJ_RES_WITHDRAWN)
		KJ_TRY(gone(v, o));
	v->prev_leaf = leaf;
	return 0;
}

/* ---- the outcomes ------------------------------------------------------- */

static void end_completeness(struct kj_vjob *v, size_t n,
			     struct kj_verify_report *rep)
{
	struct kj_verify_report *sh = &v->sh;
	json_t *d;

	if (v->stopped)
		return;
	rep->n_ok = v->ok;
	rep->n_devices = v->ok + v->other;
	rep->n_withdrawn = v->wd;
	rep->ended = v->ended;
	d = kj_vdetail(sh, KJ_VC_COMPLETENESS);
	if (d)
		json_object_update_new(d, json_pack("{s:b,s:I,s:I,s:I}",
			"job_ended", v->ended, "devices",
			(json_int_t)(v->ok + v->other), "ok",
			(json_int_t)v->ok, "withdrawn", (json_int_t)v->wd));
	/* §6.6: a bundle cut short could hide the last devices */
	if (!v->ended && !v->o->partial)
		kj_vfail(sh, KJ_VC_COMPLETENESS,
			 "no job_end record: the job has not ended, or the bundle was cut short (it shows %" PRIu64 " devices); --partial verifies a job that is still running",
			 v->ok + v->other);
	kj_vpass(sh, KJ_VC_COMPLETENESS,
		 "job_seq 0..%zu without gap; %" PRIu64 " ok, %" PRIu64 " other device attempts (%" PRIu64 " withdrawn, each after its ok record); %s",
		 n - 1, v->ok, v->other, v->wd,
		 v->ended ? "job_end counts match" : "job not ended (--partial)");
}

static void end_work_order(struct kj_vjob *v, struct kj_verify_report *sh)
{
	const struct kj_work_order *wo = v->o->wo;
	uint64_t ok = v->ok7 - v->gone;
	const char *d;

	if (ok > wo->quantity)
		kj_vfail(sh, KJ_VC_WORK_ORDER,
			 "%" PRIu64 " ok records (not withdrawn) exceed the work order quantity %" PRIu64,
			 ok, wo->quantity);
	if ((d = first_dup(v, false)))
		kj_vfail(sh, KJ_VC_WORK_ORDER,
			 "uid %s has more than one ok record", d);
	else if ((d = first_dup(v, true)))
		kj_vfail(sh, KJ_VC_WORK_ORDER,
			 "serial %s has more than one ok record", d);
	kj_vpass(sh, KJ_VC_WORK_ORDER,
		 "work order %s: hash, customer, job and firmware match; %" PRIu64 " ok (not withdrawn) <= quantity %" PRIu64 "; uids and serials unique",
		 wo->id, ok, wo->quantity);
}

/* Check c of the kept-aside report becomes rep's. */
static void take(struct kj_vjob *v, enum kj_vcheck c,
		 struct kj_verify_report *rep)
{
	json_decref(rep->check[c].json);
	rep->check[c] = v->sh.check[c];
	v->sh.check[c].json = NULL;
}

int kj_vjob_end(struct kj_vjob *v, size_t n, struct kj_verify_report *rep)
{
	if (!v->o->wo) {
		rep->check[KJ_VC_WORK_ORDER].status = KJ_VS_SKIPPED;
		snprintf(rep->check[KJ_VC_WORK_ORDER].detail,
			 sizeof(rep->check[0].detail),
			 "no --work-order given");
	} else if (!v->parsed || !n) {
		kj_vfail(rep, KJ_VC_WORK_ORDER, "records do not parse");
	}
	if (!v->parsed || !n)
		return 0; /* named by the parse failure already */
	end_completeness(v, n, rep);
	take(v, KJ_VC_COMPLETENESS, rep);
	if (v->o->wo) {
		end_work_order(v, &v->sh);
		take(v, KJ_VC_WORK_ORDER, rep);
	}
	return 0;
}
