// SPDX-License-Identifier: Apache-2.0
/*
 * EVIDENCE.md §6 checks 4-8: the log only grew (consistency), every record
 * is in its checkpoint's tree (inclusion), the job is complete (job_seq),
 * it matches the work order, and the code measurements are golden.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "attest/mtree.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "journal/record.h"
#include "verify_int.h"

/* ---- 4: consistency ---------------------------------------------------------- */

static void check_consistency(const struct kj_evidence *ev,
			      struct kj_verify_report *rep)
{
	size_t n = ev->n_checkpoints;

	if (ev->n_consistency != n - 1) {
		kj_err("consistency: %zu proofs for %zu checkpoints, want %zu",
		       ev->n_consistency, n, n - 1);
		kj_vfail(rep, KJ_VC_CONSISTENCY,
			 "consistency: %zu proofs, %zu checkpoints need %zu",
			 ev->n_consistency, n, n - 1);
		return;
	}
	for (size_t i = 0; i + 1 < n; i++) {
		const struct kj_ev_consistency *c = &ev->consistency[i];
		const struct kj_ev_checkpoint *a = &ev->checkpoints[i];
		const struct kj_ev_checkpoint *b = &ev->checkpoints[i + 1];

		if (c->from != i || c->to != i + 1) {
			kj_vfail(rep, KJ_VC_CONSISTENCY,
				 "consistency[%zu]: links %" PRIu64 " to %" PRIu64 ", not checkpoint %zu to %zu",
				 i, c->from, c->to, i, i + 1);
			return;
		}
		if (a->tree_size > b->tree_size ||
		    kj_mtree_verify_consistency(a->tree_size, b->tree_size,
						a->root, b->root,
						(const uint8_t(*)[32])c->proof,
						c->proof_len) < 0) {
			kj_err("consistency[%zu]: checkpoint %zu (tree size %" PRIu64 ") is not a prefix of checkpoint %zu (tree size %" PRIu64 ")",
			       i, i, a->tree_size, i + 1, b->tree_size);
			kj_vfail(rep, KJ_VC_CONSISTENCY,
				 "checkpoint %zu -> %zu: the proof does not show the log only grew",
				 i, i + 1);
			return;
		}
	}
	kj_vpass(rep, KJ_VC_CONSISTENCY,
		 "%zu consistency proofs chain every checkpoint (tree size %" PRIu64 " -> %" PRIu64 ")",
		 ev->n_consistency, ev->checkpoints[0].tree_size,
		 ev->checkpoints[n - 1].tree_size);
}

/* ---- 5: inclusion ---------------------------------------------------------- */

static void check_inclusion(const struct kj_evidence *ev,
			    const struct kj_record *recs,
			    struct kj_verify_report *rep)
{
	size_t first = 0;

	for (size_t i = 0; i < ev->n_records; i++) {
		const struct kj_ev_record *r = &ev->records[i];
		const struct kj_ev_checkpoint *c = &ev->checkpoints[r->checkpoint];
		uint8_t leaf[32];

		/* The first included checkpoint that covers it (§5). */
		while (first < ev->n_checkpoints &&
		       ev->checkpoints[first].tree_size <= r->leaf_index)
			first++;
		if (first != r->checkpoint) {
			kj_vfail_rec(rep, KJ_VC_INCLUSION, i,
				 "record %zu (leaf %" PRIu64 "): proved against checkpoint %" PRIu64 ", not the first covering it",
				 i, r->leaf_index, r->checkpoint);
			continue;
		}
		if (recs[i].owned_ && recs[i].seq != r->leaf_index) {
			kj_vfail_rec(rep, KJ_VC_INCLUSION, i,
				 "record %zu (leaf %" PRIu64 "): its seq is %" PRIu64,
				 i, r->leaf_index, recs[i].seq);
			continue;
		}
		kj_mtree_leaf_hash(r->jcs, r->jcs_len, leaf);
		if (kj_mtree_verify_inclusion(r->leaf_index, c->tree_size, leaf,
					      (const uint8_t(*)[32])r->proof,
					      r->proof_len, c->root) < 0) {
			kj_err("records[%zu]: the inclusion proof of leaf %" PRIu64 " does not lead to checkpoint %" PRIu64 "'s root",
			       i, r->leaf_index, r->checkpoint);
			kj_vfail_rec(rep, KJ_VC_INCLUSION, i,
				 "record %zu (leaf %" PRIu64 "): not in checkpoint %" PRIu64 "'s tree",
				 i, r->leaf_index, r->checkpoint);
		}
	}
	kj_vpass(rep, KJ_VC_INCLUSION,
		 "%zu records, each in its checkpoint's tree", ev->n_records);
}

/* ---- 6: completeness ---------------------------------------------------------- */

/* An `ok` record's attempt and its index, sorted by attempt. */
struct okref {
	uint64_t attempt;
	size_t i;
	bool withdrawn;
};

static int cmp_okref(const void *a, const void *b)
{
	const struct okref *x = a, *y = b;

	return x->attempt < y->attempt ? -1 : x->attempt > y->attempt;
}

static struct okref *ok_index(const struct kj_evidence *ev,
			      const struct kj_record *recs, size_t *n)
{
	struct okref *v = calloc(ev->n_records + 1, sizeof(*v));

	*n = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < ev->n_records; i++)
		if (recs[i].kind == KJ_REC_DEVICE &&
		    recs[i].result == KJ_RES_OK && recs[i].has_attempt)
			v[(*n)++] = (struct okref){ recs[i].attempt, i, false };
	qsort(v, *n, sizeof(*v), cmp_okref);
	return v;
}

static bool same_attempt(const struct kj_record *a, const struct kj_record *b)
{
	return a->uid_len == b->uid_len && !memcmp(a->uid, b->uid, a->uid_len) &&
	       a->serial && b->serial && !strcmp(a->serial, b->serial) &&
	       a->has_cred == b->has_cred && a->cred_index == b->cred_index &&
	       !memcmp(a->cert_sha256, b->cert_sha256, 32) &&
	       a->has_readback == b->has_readback &&
	       !memcmp(a->readback, b->readback, 32);
}

/*
 * §2/§6.6: a `withdrawn` record follows an `ok` record of the same attempt
 * with the same fields, at most one per attempt.  0, or -EBADMSG with the
 * check failed.
 */
static int check_withdrawn(const struct kj_evidence *ev,
			   const struct kj_record *recs, size_t i,
			   struct okref *oks, size_t n_ok,
			   struct kj_verify_report *rep)
{
	const struct kj_record *r = &recs[i];
	struct okref key = { .attempt = r->attempt }, *o;
	uint64_t leaf = ev->records[i].leaf_index;

	o = r->has_attempt ? bsearch(&key, oks, n_ok, sizeof(*oks),
				     cmp_okref) : NULL;
	if (!o || o->i > i) {
		kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
			     "record %zu (leaf %" PRIu64 "): withdrawn without an earlier ok record of its attempt",
			     i, leaf);
		return -EBADMSG;
	}
	if (o->withdrawn) {
		kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
			     "record %zu (leaf %" PRIu64 "): attempt %" PRIu64 " withdrawn a second time",
			     i, leaf, r->attempt);
		return -EBADMSG;
	}
	if (!same_attempt(r, &recs[o->i])) {
		kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
			     "record %zu (leaf %" PRIu64 "): withdrawn record differs from the ok record %zu of attempt %" PRIu64 " (uid, serial, credential or readback)",
			     i, leaf, o->i, r->attempt);
		return -EBADMSG;
	}
	o->withdrawn = true;
	return 0;
}

static void check_completeness(const struct kj_evidence *ev,
			       const struct kj_record *recs, bool parsed,
			       const struct kj_verify_opts *opt,
			       struct kj_verify_report *rep)
{
	uint64_t ok = 0, other = 0, wd = 0;
	struct okref *oks;
	bool ended = false;
	size_t n_ok;

	if (!parsed)
		return; /* named by the parse failure already */
	oks = ok_index(ev, recs, &n_ok);
	if (!oks) {
		kj_vfail(rep, KJ_VC_COMPLETENESS, "out of memory");
		return;
	}
	for (size_t i = 0; i < ev->n_records; i++) {
		const struct kj_record *r = &recs[i];
		uint64_t leaf = ev->records[i].leaf_index;

		if (i && leaf <= ev->records[i - 1].leaf_index) {
			kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
				 "record %zu (leaf %" PRIu64 "): out of log order",
				 i, leaf);
			goto out;
		}
		if (r->job_seq != i) {
			kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
				 "record %zu (leaf %" PRIu64 "): job_seq %" PRIu64 " where %zu was expected (a record is missing, repeated or out of order)",
				 i, leaf, r->job_seq, i);
			goto out;
		}
		if ((i == 0) != (r->kind == KJ_REC_JOB_START)) {
			kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
				 "record %zu (leaf %" PRIu64 "): %s where the job_start record belongs only at job_seq 0",
				 i, leaf, kj_record_kind_name(r->kind));
			goto out;
		}
		if (strcmp(r->job, recs[0].job)) {
			kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
				 "record %zu (leaf %" PRIu64 "): of another job",
				 i, leaf);
			goto out;
		}
		if (ended) {
			kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
				 "record %zu (leaf %" PRIu64 "): follows the job_end record",
				 i, leaf);
			goto out;
		}
		if (r->kind == KJ_REC_DEVICE) {
			/* §2: each attempt once, a withdrawn one as failed */
			if (r->result == KJ_RES_OK) {
				ok++;
			} else if (r->result == KJ_RES_WITHDRAWN) {
				if (check_withdrawn(ev, recs, i, oks, n_ok,
						    rep) < 0)
					goto out;
				ok--;
				wd++;
				other++;
			} else {
				other++;
			}
		} else if (r->kind == KJ_REC_JOB_END) {
			bool done = ok >= recs[0].quantity;

			ended = true;
			/* §2: completed when the quantity was reached (more ok
			 * records than the quantity fail check 7). */
			if ((r->result == KJ_RES_COMPLETED) != done) {
				kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
					 "record %zu (job_end): result %s with %" PRIu64 " ok of quantity %" PRIu64,
					 i, kj_result_name(r->result), ok,
					 recs[0].quantity);
				goto out;
			}
			if (r->ok_count != ok || r->failed_count != other) {
				kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
					 "record %zu (job_end): ok_count %" PRIu64 " / failed_count %" PRIu64 ", the records have %" PRIu64 " / %" PRIu64,
					 i, r->ok_count, r->failed_count, ok,
					 other);
				goto out;
			}
		}
	}
	rep->n_ok = ok;
	rep->n_devices = ok + other;
	rep->n_withdrawn = wd;
	rep->ended = ended;
	if (kj_vdetail(rep, KJ_VC_COMPLETENESS))
		json_object_update_new(kj_vdetail(rep, KJ_VC_COMPLETENESS),
			json_pack("{s:b,s:I,s:I,s:I}", "job_ended", ended,
				  "devices", (json_int_t)(ok + other), "ok",
				  (json_int_t)ok, "withdrawn", (json_int_t)wd));
	/* §6.6: a bundle cut short could hide the last devices */
	if (!ended && !opt->partial)
		kj_vfail(rep, KJ_VC_COMPLETENESS,
			 "no job_end record: the job has not ended, or the bundle was cut short (it shows %" PRIu64 " devices); --partial verifies a job that is still running",
			 ok + other);
	kj_vpass(rep, KJ_VC_COMPLETENESS,
		 "job_seq 0..%zu without gap; %" PRIu64 " ok, %" PRIu64 " other device attempts (%" PRIu64 " withdrawn, each after its ok record); %s",
		 ev->n_records - 1, ok, other, wd,
		 ended ? "job_end counts match" : "job not ended (--partial)");
out:
	free(oks);
}

/* ---- 7: work order ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* First duplicate in a sorted-in-place array of n strings, or NULL. */
static const char *dup_of(const char **v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(v[i - 1], v[i]))
			return v[i];
	return NULL;
}

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

/* gone[i]: record i is an ok record a later record withdrew (NULL: out
 * of memory). */
static bool *withdrawn_oks(const struct kj_evidence *ev,
			   const struct kj_record *recs)
{
	bool *gone = calloc(ev->n_records + 1, sizeof(*gone));
	struct okref *oks, key, *o;
	size_t n;

	oks = ok_index(ev, recs, &n);
	if (!gone || !oks) {
		free(gone);
		free(oks);
		return NULL;
	}
	for (size_t i = 0; i < ev->n_records; i++) {
		if (recs[i].kind != KJ_REC_DEVICE ||
		    recs[i].result != KJ_RES_WITHDRAWN)
			continue;
		key.attempt = recs[i].attempt;
		o = bsearch(&key, oks, n, sizeof(*oks), cmp_okref);
		if (o && o->i < i)
			gone[o->i] = true;
	}
	free(oks);
	return gone;
}

static int uniq_ok(const struct kj_evidence *ev, const struct kj_record *recs,
		   const bool *gone, struct kj_verify_report *rep)
{
	const char **uids = calloc(ev->n_records + 1, sizeof(*uids));
	const char **ser = calloc(ev->n_records + 1, sizeof(*ser));
	char *hex = calloc(ev->n_records + 1, 2 * KJ_RECORD_UID_MAX + 1);
	const char *d;
	size_t n = 0, ns = 0;
	int rc = 0;

	if (!uids || !ser || !hex) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ev->n_records; i++) {
		const struct kj_record *r = &recs[i];
		char *h = hex + n * (2 * KJ_RECORD_UID_MAX + 1);

		if (r->kind != KJ_REC_DEVICE || r->result != KJ_RES_OK ||
		    gone[i])
			continue;
		kj_hex_encode(r->uid, r->uid_len, h);
		uids[n++] = h;
		if (r->serial)
			ser[ns++] = r->serial;
	}
	if ((d = dup_of(uids, n)))
		kj_vfail(rep, KJ_VC_WORK_ORDER,
			 "uid %s has more than one ok record", d);
	else if ((d = dup_of(ser, ns)))
		kj_vfail(rep, KJ_VC_WORK_ORDER,
			 "serial %s has more than one ok record", d);
out:
	free(uids);
	free(ser);
	free(hex);
	return rc;
}

static int check_work_order(const struct kj_evidence *ev,
			    const struct kj_record *recs, bool parsed,
			    const struct kj_work_order *wo,
			    struct kj_verify_report *rep)
{
	uint64_t ok = 0;
	bool *gone;
	int rc;

	if (!wo) {
		rep->check[KJ_VC_WORK_ORDER].status = KJ_VS_SKIPPED;
		snprintf(rep->check[KJ_VC_WORK_ORDER].detail,
			 sizeof(rep->check[0].detail),
			 "no --work-order given");
		return 0;
	}
	if (!parsed) {
		kj_vfail(rep, KJ_VC_WORK_ORDER, "records do not parse");
		return 0;
	}
	if (recs[0].kind != KJ_REC_JOB_START ||
	    memcmp(recs[0].work_order_sha256, wo->sha256, 32))
		kj_vfail(rep, KJ_VC_WORK_ORDER,
			 "record 0: work_order_sha256 is not the SHA-256 of the work order given");
	gone = withdrawn_oks(ev, recs);
	if (!gone)
		return -ENOMEM;
	for (size_t i = 0; i < ev->n_records; i++) {
		const struct kj_record *r = &recs[i];

		if (!same_job(r, wo) || !same_fw(r, wo))
			kj_vfail_rec(rep, KJ_VC_WORK_ORDER, i,
				 "record %zu (leaf %" PRIu64 "): job, customer, product, batch or firmware differ from the work order",
				 i, ev->records[i].leaf_index);
		if (r->kind == KJ_REC_DEVICE && r->result == KJ_RES_OK &&
		    !gone[i])
			ok++;
	}
	if (ok > wo->quantity)
		kj_vfail(rep, KJ_VC_WORK_ORDER,
			 "%" PRIu64 " ok records (not withdrawn) exceed the work order quantity %" PRIu64,
			 ok, wo->quantity);
	rc = uniq_ok(ev, recs, gone, rep);
	free(gone);
	KJ_TRY(rc);
	kj_vpass(rep, KJ_VC_WORK_ORDER,
		 "work order %s: hash, customer, job and firmware match; %" PRIu64 " ok (not withdrawn) <= quantity %" PRIu64 "; uids and serials unique",
		 wo->id, ok, wo->quantity);
	return 0;
}

/* ---- 8: golden measurements ------------------------------------------------- */

static bool golden_has(const json_t *list, const uint8_t digest[32])
{
	char hex[65];
	size_t i;
	json_t *v;

	kj_hex_encode(digest, 32, hex);
	json_array_foreach(list, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), hex))
			return true;
	return false;
}

static int check_golden(const struct kj_evidence *ev,
			const struct kj_verify_opts *o,
			struct kj_verify_report *rep)
{
	static const char *const top[] = { "kinject_golden", "measurements",
					   NULL };
	const char *file = o->golden_name ? o->golden_name : "golden.json";
	const json_t *m;
	json_t *g;
	size_t n = 0;

	if (!o->golden) {
		rep->check[KJ_VC_GOLDEN].status = KJ_VS_SKIPPED;
		snprintf(rep->check[KJ_VC_GOLDEN].detail,
			 sizeof(rep->check[0].detail), "no --golden given");
		return 0;
	}
	if (kj_json_load(o->golden, o->golden_len, file, &g) < 0)
		return -EINVAL;
	if (kj_json_only_keys(g, file, "", top) < 0 ||
	    kj_json_version(g, file, "kinject_golden", 1) < 0 ||
	    !(m = kj_json_get(g, file, "", "measurements", JSON_OBJECT))) {
		json_decref(g);
		return -EINVAL;
	}
	for (size_t i = 0; i < ev->n_events; i++) {
		const struct kj_event *e = &ev->events[i];
		const json_t *list;

		/* A void entry never reached the TPM: nothing ran from it. */
		if (e->pcr != KJ_PCR_CODE || e->is_void)
			continue;
		n++;
		list = json_object_get(m, e->name);
		if (!json_is_array(list) || !golden_has(list, e->digest)) {
			char hex[65];

			kj_hex_encode(e->digest, 32, hex);
			kj_err("event_log[%zu]: %s digest %s is not in %s",
			       i, e->name, hex, file);
			kj_vfail(rep, KJ_VC_GOLDEN,
				 "event %zu: %s %s is not a golden measurement",
				 i, e->name, hex);
		}
	}
	json_decref(g);
	kj_vpass(rep, KJ_VC_GOLDEN,
		 "%zu PCR %d measurements, each listed in %s", n, KJ_PCR_CODE,
		 file);
	return 0;
}

/* ---- 4-8 ------------------------------------------------------------------- */

int kj_verify_log(const struct kj_evidence *ev, const struct kj_verify_opts *o,
		  struct kj_verify_report *rep)
{
	struct kj_record *recs = calloc(ev->n_records, sizeof(*recs));
	bool parsed = true;
	int rc = 0;

	if (!recs)
		return -ENOMEM;
	rep->n_records = ev->n_records;
	for (size_t i = 0; i < ev->n_records; i++) {
		if (kj_record_parse(ev->records[i].jcs, ev->records[i].jcs_len,
				    &recs[i]) < 0) {
			parsed = false;
			kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
				 "record %zu (leaf %" PRIu64 "): not a valid record",
				 i, ev->records[i].leaf_index);
		}
	}
	if (parsed && recs[0].job)
		snprintf(rep->job, sizeof(rep->job), "%s", recs[0].job);
	check_consistency(ev, rep);
	check_inclusion(ev, recs, rep);
	check_completeness(ev, recs, parsed, o, rep);
	KJ_TRY_GOTO(rc, check_work_order(ev, recs, parsed, o->wo, rep), out);
	rc = check_golden(ev, o, rep);
out:
	for (size_t i = 0; i < ev->n_records; i++)
		kj_record_release(&recs[i]);
	free(recs);
	return rc;
}
