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

/* Record i; rec NULL when it does not parse.  *first: the first included
 * checkpoint that covers the records so far (they come in log order). */
static void check_inclusion(const struct kj_evidence *ev, size_t i,
			    const struct kj_ev_record *r,
			    const struct kj_record *rec, size_t *first,
			    struct kj_verify_report *rep)
{
	const struct kj_ev_checkpoint *c = &ev->checkpoints[r->checkpoint];
	uint8_t leaf[32];

	/* The first included checkpoint that covers it (§5). */
	while (*first < ev->n_checkpoints &&
	       ev->checkpoints[*first].tree_size <= r->leaf_index)
		(*first)++;
	if (*first != r->checkpoint) {
		kj_vfail_rec(rep, KJ_VC_INCLUSION, i,
			 "record %zu (leaf %" PRIu64 "): proved against checkpoint %" PRIu64 ", not the first covering it",
			 i, r->leaf_index, r->checkpoint);
		return;
	}
	if (rec && rec->seq != r->leaf_index) {
		kj_vfail_rec(rep, KJ_VC_INCLUSION, i,
			 "record %zu (leaf %" PRIu64 "): its seq is %" PRIu64,
			 i, r->leaf_index, rec->seq);
		return;
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

/* ---- 8: golden measurements ------------------------------------------------- */

bool kj_golden_has(const json_t *list, const uint8_t digest[32])
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
					   "pcrs", NULL };
	const char *file = o->golden_name ? o->golden_name : "golden.json";
	const json_t *m;
	json_t *g;
	size_t n = 0;
	char boot[160];
	int warn;

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
		if (!json_is_array(list) || !kj_golden_has(list, e->digest)) {
			char hex[65];

			kj_hex_encode(e->digest, 32, hex);
			kj_err("event_log[%zu]: %s digest %s is not in %s",
			       i, e->name, hex, file);
			kj_vfail(rep, KJ_VC_GOLDEN,
				 "event %zu: %s %s is not a golden measurement",
				 i, e->name, hex);
		}
	}
	warn = kj_verify_golden_boot(ev, g, file, rep, boot, sizeof(boot));
	json_decref(g);
	if (warn < 0)
		return warn;
	kj_vpass(rep, KJ_VC_GOLDEN,
		 "%zu PCR %d measurements, each listed in %s%s", n, KJ_PCR_CODE,
		 file, boot);
	if (warn && rep->check[KJ_VC_GOLDEN].status != KJ_VS_FAIL)
		rep->check[KJ_VC_GOLDEN].status = KJ_VS_WARN;
	return 0;
}

/* ---- 4-8 ------------------------------------------------------------------- */

/* Record i of the bundle: 1, 0 after the last, < 0 (logged). */
static int next(const struct kj_evidence *ev, size_t i,
		struct kj_ev_record *tmp, const struct kj_ev_record **r)
{
	int rc;

	if (!ev->stream) {
		*r = &ev->records[i];
		return i < ev->n_records;
	}
	*r = tmp;
	rc = kj_evidence_next_record((struct kj_evidence *)ev, tmp);
	/* Not a check's finding: the bundle is not one. */
	return rc == -EBADMSG ? -EINVAL : rc;
}

/* One record through checks 5-7: streamed bundles are never held. */
static int one_record(const struct kj_evidence *ev, size_t i,
		      const struct kj_ev_record *r, size_t *first,
		      struct kj_vjob *v, struct kj_verify_report *rep)
{
	struct kj_record rec;
	bool parsed;
	int rc;

	memset(&rec, 0, sizeof(rec));
	parsed = kj_record_parse(r->jcs, r->jcs_len, &rec) == 0;
	if (!parsed)
		kj_vfail_rec(rep, KJ_VC_COMPLETENESS, i,
			 "record %zu (leaf %" PRIu64 "): not a valid record",
			 i, r->leaf_index);
	else if (i == 0 && rec.job)
		snprintf(rep->job, sizeof(rep->job), "%s", rec.job);
	check_inclusion(ev, i, r, parsed ? &rec : NULL, first, rep);
	rc = kj_vjob_record(v, i, r->leaf_index, parsed ? &rec : NULL);
	kj_record_release(&rec);
	return rc;
}

int kj_verify_log(const struct kj_evidence *ev, const struct kj_verify_opts *o,
		  struct kj_verify_report *rep)
{
	struct kj_vjob *v = kj_vjob_new(o);
	const struct kj_ev_record *r;
	struct kj_ev_record tmp;
	size_t i, first = 0;
	int rc = 0;

	if (!v)
		return -ENOMEM;
	for (i = 0; (rc = next(ev, i, &tmp, &r)) > 0; i++) {
		rc = one_record(ev, i, r, &first, v, rep);
		if (ev->stream)
			kj_ev_record_release(&tmp);
		if (rc < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	rep->n_records = i;
	/* Only parse failures are on rep yet: as before, the job is named
	 * only when every record parses. */
	if (rep->check[KJ_VC_COMPLETENESS].status == KJ_VS_FAIL)
		rep->job[0] = 0;
	check_consistency(ev, rep);
	kj_vpass(rep, KJ_VC_INCLUSION,
		 "%zu records, each in its checkpoint's tree", i);
	KJ_TRY_GOTO(rc, kj_vjob_end(v, i, rep), out);
	rc = check_golden(ev, o, rep);
out:
	kj_vjob_free(v);
	return rc;
}
