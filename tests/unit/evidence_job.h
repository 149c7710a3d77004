/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A real job's state for attestation tests, made with the journal, TPM and
 * checkpoint APIs the keeper uses (no mock): AK, counter check, job-start
 * measurements, job_start, N device records (every 50th a LOCKED_OUT
 * refusal), job_end, checkpoints through the pipelined worker every
 * `every` records and a final synchronous one.  Also writes the work order
 * the job_start record hashes to wo_path.
 */
#ifndef KJ_TEST_EVIDENCE_JOB_H
#define KJ_TEST_EVIDENCE_JOB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/checkpoint_int.h"
#include "attest/measure.h"
#include "attest/mtree.h"
#include "attest/tpm.h"
#include "base/util.h"
#include "evidence/evidence.h"
#include "journal/journal.h"

struct ej_opts {
	const char *dir;       /* state dir (created) */
	const char *tcti;
	const char *wo_path;   /* WO.json written here (NULL: not written) */
	unsigned n_devices;
	uint64_t quantity;     /* of the work order; 0: n_devices */
	uint32_t pcr_mask;     /* checkpoint quotes; 0: default */
	unsigned every;        /* records between checkpoint submissions */
	const char *job;       /* work order id; NULL: "WO-2027-0315" */
	/* The officers approved a fresh journal (reset-journal) on a TPM
	 * whose NV counter is in use: kj_checkpoint_allow_fresh first. */
	bool officers_fresh;
};

struct ej_result {
	uint64_t records;
	uint64_t checkpoints;
	uint64_t quote_ms_total, quote_ms_max;
	uint64_t sync_ms;      /* the final synchronous take */
};

#define EJ_CHECK(expr)                                                     \
	do {                                                               \
		int ej_rc_ = (expr);                                       \
		if (ej_rc_ < 0) {                                          \
			fprintf(stderr, "%s:%d: %s = %d\n", __FILE__,      \
				__LINE__, #expr, ej_rc_);                  \
			rc = ej_rc_;                                       \
			goto out;                                          \
		}                                                          \
	} while (0)

static inline int ej_append(struct kj_journal *j, struct kj_mtree *t,
			    struct kj_record *r)
{
	const uint8_t *jcs;
	size_t len;

	KJ_TRY(kj_journal_append_record(j, r, &jcs, &len));
	return kj_mtree_append(t, jcs, len);
}

static inline int ej_tree_cb(void *ctx, uint64_t seq, const uint8_t *jcs,
			     size_t len)
{
	struct kj_mtree *t = ctx;

	if (seq != kj_mtree_size(t))
		return -EBADMSG;
	return kj_mtree_append(t, jcs, len);
}

static inline int ej_make_job(const struct ej_opts *o, struct ej_result *res)
{
	static const char product[] = "{\"kinject_product\": 1}";
	const char *job = o->job ? o->job : "WO-2027-0315";
	uint64_t qty = o->quantity ? o->quantity : o->n_devices;
	struct kj_checkpoint_policy pol = { .pcr_mask = o->pcr_mask };
	struct kj_measure_in min = { .kmod_path = "" };
	struct kj_measure_out mout;
	struct kj_ckpt_worker *w = NULL;
	struct kj_cred_ref *creds = NULL;
	struct kj_journal *j = NULL;
	struct kj_tpm *tpm = NULL;
	struct kj_mtree *t = NULL;
	struct kj_ckpt last;
	struct kj_job_desc d;
	struct kj_job_state st;
	uint32_t off;
	size_t n_creds = (size_t)(qty > o->n_devices ? qty : o->n_devices) + 1;
	struct kj_ckpt_stats cs;
	char wo[1024];
	int rc = 0, wo_len, repair = 0;
	uint64_t t0;

	memset(res, 0, sizeof(*res));
	wo_len = snprintf(wo, sizeof(wo),
		"{\"kinject_work_order\": 1, \"id\": \"%s\", \"customer\": \"acme\",\n"
		" \"product\": \"acme-sensor\", \"batch\": \"LOT-7\", \"quantity\": %llu,\n"
		" \"max_failed\": 200, \"hardware_revisions\": [\"B\"],\n"
		" \"firmware\": {\"version\": \"3.1.5\", \"sha256\": \"%064d\"},\n"
		" \"serial\": {\"prefix\": \"AS\", \"start\": 10000}}\n",
		job, (unsigned long long)qty, 7);
	/* The batch depends on the work order only: a resumed job has the
	 * same one. */
	creds = calloc(n_creds, sizeof(*creds));
	t = kj_mtree_new();
	if (!creds || !t) {
		rc = -ENOMEM;
		goto out;
	}
	EJ_CHECK(kj_mkdir_p(o->dir, 0700));
	if (o->wo_path)
		EJ_CHECK(kj_write_file_atomic(o->wo_path, wo, (size_t)wo_len,
					      0644));
	EJ_CHECK(kj_tpm_open(o->tcti, &tpm));
	EJ_CHECK(kj_tpm_ak_setup(tpm, o->dir));
	EJ_CHECK(kj_tpm_save_ek_pem(tpm, o->dir));
	EJ_CHECK(kj_journal_open(o->dir, 0, &j));
	EJ_CHECK(kj_journal_meta_set(j, "secret_memory", "mlock", 5));
	EJ_CHECK(kj_journal_commit(j));
	if (o->officers_fresh && !kj_journal_checkpoint_count(j))
		EJ_CHECK(kj_checkpoint_allow_fresh(j, "test: reset-journal"));
	/* 1: a quote was taken but not stored before a kill (re-quoted
	 * below, once the tree holds every record, as the keeper does). */
	EJ_CHECK(repair = kj_checkpoint_check(tpm, j));
	min.pcr_mask = o->pcr_mask;
	min.work_order = (const uint8_t *)wo;
	min.work_order_len = (size_t)wo_len;
	min.product = (const uint8_t *)product;
	min.product_len = sizeof(product) - 1;
	min.state_dir = o->dir;
	EJ_CHECK(kj_measure_job_start(tpm, j, &min, &mout));

	/* Each job its own certificates: a journal never reuses one. */
	for (size_t i = 0; i < n_creds; i++) {
		char cert[96];

		creds[i].index = 5000 + i;
		snprintf(cert, sizeof(cert), "%s/%zu", job, i);
		kj_sha256(cert, strlen(cert), creds[i].cert_sha256);
	}
	memset(&d, 0, sizeof(d));
	d.job = job;
	d.customer = "acme";
	d.product = "acme-sensor";
	d.batch = "LOT-7";
	d.operator_id = "op1";
	kj_sha256(wo, (size_t)wo_len, d.work_order_sha256);
	d.quantity = qty;
	d.fw_version = "3.1.5";
	EJ_CHECK(kj_hex_decode("0000000000000000000000000000000000000000000000000000000000000007",
			       d.fw_sha256, 32));
	d.serial_prefix = "AS";
	d.serial_start = 10000;
	d.creds = creds;
	d.n_creds = n_creds;
	EJ_CHECK(kj_journal_job_begin(j, &d, &st));
	/* A resumed job (after a kill): new devices get new uids. */
	off = st.resumed ? (uint32_t)st.next_job_seq : 0;
	/* The tree holds every record of the state, earlier jobs' too. */
	EJ_CHECK(kj_journal_foreach_record(j, 0, NULL, ej_tree_cb, t));
	if (repair > 0)
		EJ_CHECK(kj_checkpoint_requote(tpm, j, t, &pol));
	EJ_CHECK(kj_ckpt_worker_start(tpm, &pol, 0, &w));
	for (unsigned i = 1; i <= o->n_devices; i++) {
		struct kj_reservation rv;
		struct kj_record r;

		memset(&r, 0, sizeof(r));
		r.kind = KJ_REC_DEVICE;
		r.site = "line1";
		r.socket = (uint16_t)(i % 64);
		kj_put_u32be(r.uid, i + off);
		r.uid[4] = 0xa5;
		r.uid_len = 5;
		r.hwrev = "B";
		if (i % 50 == 0) {
			r.result = KJ_RES_LOCKED_OUT;
		} else {
			EJ_CHECK(kj_journal_reserve(j, &r, &rv));
			kj_record_set_reservation(&r, &rv);
			r.result = KJ_RES_OK;
			r.has_readback = true;
			kj_sha256(r.uid, r.uid_len, r.readback);
		}
		EJ_CHECK(ej_append(j, t, &r));
		if (i % 64 == 0)
			EJ_CHECK(kj_journal_commit(j));
		EJ_CHECK(kj_ckpt_worker_collect(w, j));
		if (o->every && i % o->every == 0)
			EJ_CHECK(kj_ckpt_worker_submit(w, j, t));
	}
	{
		struct kj_record e;
		const uint8_t *jcs;
		size_t len;

		memset(&e, 0, sizeof(e));
		EJ_CHECK(kj_journal_job_end(j, &e, &jcs, &len));
		EJ_CHECK(kj_mtree_append(t, jcs, len));
	}
	EJ_CHECK(kj_journal_commit(j));
	EJ_CHECK(kj_ckpt_worker_drain(w, j));
	kj_ckpt_worker_stats(w, &cs);
	kj_ckpt_worker_stop(w);
	w = NULL;
	t0 = kj_now_ms();
	/* Job end: one synchronous checkpoint over the whole tree. */
	EJ_CHECK(kj_checkpoint_take(tpm, j, t, &pol, &last));
	res->sync_ms = kj_now_ms() - t0;
	res->records = kj_mtree_size(t);
	res->checkpoints = kj_journal_checkpoint_count(j);
	res->quote_ms_total = cs.quote_ms_total + last.quote_ms;
	res->quote_ms_max = cs.quote_ms_max > last.quote_ms ? cs.quote_ms_max :
							     last.quote_ms;
out:
	kj_ckpt_worker_stop(w);
	kj_journal_close(j);
	kj_tpm_close(tpm);
	kj_mtree_free(t);
	free(creds);
	return rc < 0 ? rc : 0;
}

#endif
