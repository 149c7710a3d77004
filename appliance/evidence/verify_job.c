// SPDX-License-Identifier: Apache-2.0
/*
 * EVIDENCE.md §6 checks 6 (completeness) and 7 (work order), fed one
 * record at a time so that `kinject verify` never holds a bundle's
 * records (issue 12: 1,000,000-device lots).  What needs earlier or later
 * records goes into two external sorts (verify_sort.c, merged in levels
 * on disk), read at the end in one pass each, so memory does not grow
 * with the lot:
 * - the attempt entries (56 bytes: an ok record with an attempt id, or a
 *   withdrawn record, with 96-bit digests of its uid and serial and 64
 *   bits of its credential and readback), sorted by attempt and index:
 *   each withdrawn record meets the ok record of its attempt (§2);
 * - with --work-order, a 24-byte entry per uid and serial of an ok record
 *   (+1, its name's place among the names: 256 KB in memory, the rest in
 *   a temporary file) and per withdrawn one (-1),
 *   sorted by digest: a sum above 1 is a duplicate, the least name named.
 * Check 6 names its first fault as before: the first fault of the
 * record-by-record part is kept aside until the pairing's first fault is
 * known, and the earlier of the two is the one reported.  A record that
 * does not parse makes both checks moot, as before: their findings are
 * kept aside until the end and dropped then.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "verify_int.h"

enum { A_OK = 1, A_WD = 2 };
enum { OK_SERIAL = 1, NO_ATTEMPT = 2 };

struct aent {
	uint8_t key[12];     /* attempt, record index: big-endian */
	uint8_t kind, flags;
	uint8_t pad[2];
	uint64_t leaf;
	uint8_t uid[12], serial[12], rest[8];
};

struct dent {
	uint8_t key[13];     /* 'u' or 's', the digest */
	int8_t w;            /* +1 an ok record, -1 it was withdrawn */
	uint16_t len;        /* the name among the names (w = +1) */
	uint64_t off;
};

struct fault {
	bool set;
	size_t i;                    /* the record */
	char msg[512];
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
	struct fault f;              /* check 6's earliest fault */
	struct kj_xsort *atts, *digs;
	uint8_t *names;              /* uid and serial names (check 7): */
	size_t n_names;              /* the last bytes, in memory, */
	uint64_t names_on_disk;      /* after those in names_fd */
	int names_fd;
	char *dup_uid, *dup_serial;  /* the least duplicate names */
};

struct kj_vjob *kj_vjob_new(const struct kj_verify_opts *o)
{
	struct kj_vjob *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->o = o;
	v->parsed = true;
	v->names_fd = -1;
	v->atts = kj_xsort_new(sizeof(struct aent), 12);
	if (o->wo)
		v->digs = kj_xsort_new(sizeof(struct dent), 13);
	if (!v->atts || (o->wo && !v->digs)) {
		kj_vjob_free(v);
		return NULL;
	}
	return v;
}

void kj_vjob_sort_stats(const struct kj_vjob *v, struct kj_xsort_stats *st)
{
	struct kj_xsort_stats d = { 0 };

	kj_xsort_stats(v->atts, st);
	if (v->digs)
		kj_xsort_stats(v->digs, &d);
	st->runs += d.runs;
	st->merges += d.merges;
	st->bytes_written += d.bytes_written;
	st->bytes_read += d.bytes_read;
	if (d.levels > st->levels)
		st->levels = d.levels;
}

void kj_vjob_free(struct kj_vjob *v)
{
	if (!v)
		return;
	kj_verify_report_free(&v->sh);
	kj_xsort_free(v->atts);
	kj_xsort_free(v->digs);
	free(v->names);
	if (v->names_fd >= 0)
		close(v->names_fd);
	free(v->dup_uid);
	free(v->dup_serial);
	free(v->job0);
	free(v);
}

/* Check 6's fault at record i, kept aside if it is the earliest. */
static void fault(struct fault *f, size_t i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fault(struct fault *f, size_t i, const char *fmt, ...)
{
	va_list ap;

	if (f->set && f->i <= i)
		return;
	f->set = true;
	f->i = i;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
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

/* The fields §2 says a withdrawn record repeats, as stored in aent. */
static void fields(const struct kj_record *r, struct aent *e)
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

static bool same_attempt(const struct aent *ok, const struct aent *w)
{
	return (ok->flags & OK_SERIAL) && (w->flags & OK_SERIAL) &&
	       !memcmp(ok->uid, w->uid, sizeof(ok->uid)) &&
	       !memcmp(ok->serial, w->serial, sizeof(ok->serial)) &&
	       !memcmp(ok->rest, w->rest, sizeof(ok->rest));
}

/* An ok record with an attempt id, or a withdrawn record: sorted. */
static int attempt_entry(struct kj_vjob *v, size_t i, uint64_t leaf,
			 const struct kj_record *r, int kind)
{
	struct aent e = { .kind = (uint8_t)kind, .leaf = leaf };

	fields(r, &e);
	if (!r->has_attempt)
		e.flags |= NO_ATTEMPT;
	kj_put_u64be(e.key, r->attempt);
	kj_put_u32be(e.key + 8, (uint32_t)i);
	return kj_xsort_add(v->atts, &e);
}

/* ---- 7: uids and serials of ok records not withdrawn, counted ---------- */

#define NAMES_MEM (256u << 10) /* names kept in memory before the file */

/* Name's place in the names (memory, then a temporary file) in e. */
static int put_name(struct kj_vjob *v, const char *name, struct dent *e)
{
	size_t len = strlen(name);

	if (!v->names && !(v->names = malloc(NAMES_MEM)))
		return -ENOMEM;
	if (v->n_names + len > NAMES_MEM) {
		if (v->names_fd < 0 && (v->names_fd = kj_vtmp_fd()) < 0)
			return v->names_fd;
		KJ_TRY(kj_vtmp_write(v->names_fd, v->names, v->n_names,
				     v->names_on_disk));
		v->names_on_disk += v->n_names;
		v->n_names = 0;
	}
	memcpy(v->names + v->n_names, name, len);
	e->off = v->names_on_disk + v->n_names;
	e->len = (uint16_t)len;
	v->n_names += len;
	return 0;
}

static int count(struct kj_vjob *v, char kind, const uint8_t d[12],
		 const char *name, int by)
{
	struct dent e = { .w = (int8_t)by };

	if (!v->o->wo)
		return 0;
	e.key[0] = (uint8_t)kind;
	memcpy(e.key + 1, d, 12);
	if (by > 0)
		KJ_TRY(put_name(v, name, &e));
	return kj_xsort_add(v->digs, &e);
}

static int ok_record(struct kj_vjob *v, size_t i, uint64_t leaf,
		     const struct kj_record *r)
{
	char hex[2 * KJ_RECORD_UID_MAX + 1];
	struct aent e = { 0 };

	v->ok7++;
	if (v->o->wo) {
		fields(r, &e);
		kj_hex_encode(r->uid, r->uid_len, hex);
		KJ_TRY(count(v, 'u', e.uid, hex, 1));
		if (r->serial)
			KJ_TRY(count(v, 's', e.serial, r->serial, 1));
	}
	return r->has_attempt ? attempt_entry(v, i, leaf, r, A_OK) : 0;
}

/* ---- 6: completeness --------------------------------------------------- */

static int job_end(struct kj_vjob *v, size_t i, const struct kj_record *r)
{
	bool done = v->ok >= v->qty0;

	v->ended = true;
	/* §2: completed when the quantity was reached (more ok records
	 * than the quantity fail check 7). */
	if ((r->result == KJ_RES_COMPLETED) != done) {
		fault(&v->f, i, "record %zu (job_end): result %s with %" PRIu64 " ok of quantity %" PRIu64,
			     i, kj_result_name(r->result), v->ok, v->qty0);
		return -EBADMSG;
	}
	if (r->ok_count != v->ok || r->failed_count != v->other) {
		fault(&v->f, i, "record %zu (job_end): ok_count %" PRIu64 " / failed_count %" PRIu64 ", the records have %" PRIu64 " / %" PRIu64,
			     i, r->ok_count, r->failed_count, v->ok, v->other);
		return -EBADMSG;
	}
	return 0;
}

/*
 * One record's part of check 6; -EBADMSG stops the check (first fault).
 * A withdrawn record is counted here and paired at the end.
 */
static int complete(struct kj_vjob *v, size_t i, uint64_t leaf,
		    const struct kj_record *r)
{
	const char *why = NULL;

	if (i && leaf <= v->prev_leaf)
		why = "out of log order";
	else if (r->job_seq != i)
		fault(&v->f, i, "record %zu (leaf %" PRIu64 "): job_seq %" PRIu64 " where %zu was expected (a record is missing, repeated or out of order)",
			     i, leaf, r->job_seq, i);
	else if ((i == 0) != (r->kind == KJ_REC_JOB_START))
		fault(&v->f, i, "record %zu (leaf %" PRIu64 "): %s where the job_start record belongs only at job_seq 0",
			     i, leaf, kj_record_kind_name(r->kind));
	else if (strcmp(r->job, v->job0))
		why = "of another job";
	else if (v->ended)
		why = "follows the job_end record";
	else
		goto fine;
	if (why)
		fault(&v->f, i, "record %zu (leaf %" PRIu64 "): %s", i, leaf,
		      why);
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
	if (!v->stopped && complete(v, i, leaf, r) < 0)
		v->stopped = true;
	if (v->o->wo)
		work_order(v, i, leaf, r);
	if (r->kind == KJ_REC_DEVICE && r->result == KJ_RES_OK)
		KJ_TRY(ok_record(v, i, leaf, r));
	if (r->kind == KJ_REC_DEVICE && r->result == KJ_RES_WITHDRAWN)
		KJ_TRY(attempt_entry(v, i, leaf, r, A_WD));
	v->prev_leaf = leaf;
	return 0;
}

/* ---- the merges ------------------------------------------------------ */

/* One attempt's ok record (the first), as the merge met it. */
struct pairing {
	bool have, paired, gone;
	struct aent ok;
};

/*
 * §2/§6.6: a `withdrawn` record follows an `ok` record of the same attempt
 * with the same fields, at most one per attempt; its ok record no longer
 * counts for check 7 (-1 entries).
 */
static int withdrawn(struct kj_vjob *v, struct pairing *p,
		     const struct aent *w)
{
	size_t i = kj_get_u32be(w->key + 8);
	uint64_t attempt = kj_get_u64be(w->key);

	if (!p->have || (w->flags & NO_ATTEMPT))
		fault(&v->f, i, "record %zu (leaf %" PRIu64 "): withdrawn without an earlier ok record of its attempt",
		      i, w->leaf);
	else if (p->paired)
		fault(&v->f, i, "record %zu (leaf %" PRIu64 "): attempt %" PRIu64 " withdrawn a second time",
		      i, w->leaf, attempt);
	else if (!same_attempt(&p->ok, w))
		fault(&v->f, i, "record %zu (leaf %" PRIu64 "): withdrawn record differs from the ok record %u of attempt %" PRIu64 " (uid, serial, credential or readback)",
		      i, w->leaf, kj_get_u32be(p->ok.key + 8), attempt);
	else
		p->paired = true;
	if (!p->have || p->gone)
		return 0;
	p->gone = true;
	v->gone++;
	KJ_TRY(count(v, 'u', p->ok.uid, NULL, -1));
	if (p->ok.flags & OK_SERIAL)
		KJ_TRY(count(v, 's', p->ok.serial, NULL, -1));
	return 0;
}

/* The attempt entries in (attempt, index) order; check 6's first fault. */
static int pair_all(struct kj_vjob *v)
{
	struct pairing p = { 0 };
	struct aent e;
	int rc;

	KJ_TRY(kj_xsort_done(v->atts));
	while ((rc = kj_xsort_next(v->atts, &e)) > 0) {
		if (p.have && memcmp(e.key, p.ok.key, 8))
			p.have = p.paired = p.gone = false;
		if (e.kind == A_OK && !p.have) {
			p.have = true;
			p.ok = e;
		} else if (e.kind == A_WD) {
			KJ_TRY(withdrawn(v, &p, &e));
		}
	}
	if (rc < 0)
		return rc;
	v->stopped = v->f.set;
	if (v->stopped)
		kj_vfail_rec(&v->sh, KJ_VC_COMPLETENESS, v->f.i, "%s",
			     v->f.msg);
	return 0;
}

/* Keep e's name in *best if it is less. */
static int least(struct kj_vjob *v, const struct dent *e, char **best)
{
	char *name = malloc((size_t)e->len + 1);
	ssize_t got;

	if (!name)
		return -ENOMEM;
	if (e->off >= v->names_on_disk) {
		memcpy(name, v->names + (e->off - v->names_on_disk), e->len);
		got = e->len;
	} else {
		got = pread(v->names_fd, name, e->len, (off_t)e->off);
	}
	if (got != e->len) {
		free(name);
		kj_err("the verifier's temporary file: cannot read it back");
		return -EIO;
	}
	name[e->len] = 0;
	if (*best && strcmp(name, *best) >= 0) {
		free(name);
		return 0;
	}
	free(*best);
	*best = name;
	return 0;
}

/* The uid and serial entries in digest order: the least duplicates. */
static int dups_all(struct kj_vjob *v)
{
	struct dent e, first = { 0 };
	int64_t sum = 0;
	bool any = false;
	int rc;

	KJ_TRY(kj_xsort_done(v->digs));
	for (;;) {
		rc = kj_xsort_next(v->digs, &e);
		if (rc < 0)
			return rc;
		if (any && (!rc || memcmp(e.key, first.key, 13))) {
			if (sum > 1)
				KJ_TRY(least(v, &first, first.key[0] == 's' ?
					     &v->dup_serial : &v->dup_uid));
			any = false;
		}
		if (!rc)
			return 0;
		if (!any) {
			any = true;
			sum = 0;
			first = e;
		}
		sum += e.w;
		if (e.w > 0)
			first = e;
	}
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
	if ((d = v->dup_uid))
		kj_vfail(sh, KJ_VC_WORK_ORDER,
			 "uid %s has more than one ok record", d);
	else if ((d = v->dup_serial))
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
	KJ_TRY(pair_all(v));
	if (v->o->wo)
		KJ_TRY(dups_all(v));
	end_completeness(v, n, rep);
	take(v, KJ_VC_COMPLETENESS, rep);
	if (v->o->wo) {
		end_work_order(v, &v->sh);
		take(v, KJ_VC_WORK_ORDER, rep);
	}
	return 0;
}
