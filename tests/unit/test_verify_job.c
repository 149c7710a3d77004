// SPDX-License-Identifier: Apache-2.0
/*
 * Checks 6 and 7 of `kinject verify` (evidence/verify_job.c) give the same
 * verdicts, messages and details whether their sorts stay in memory (one
 * level, as for any lot under about 18,000 devices) or go through several
 * levels of merges on disk (kj_xsort_test_tune: runs of 1 KiB merged 3 at a
 * time, so 3,000 devices make 4-5 levels, as 10,000,000 would with the
 * defaults).  The faults sit far apart in the lot, so their entries are in
 * runs of different level-1 groups and meet only in the upper merges: a
 * duplicate uid or serial, a withdrawn record whose ok record is 3,000
 * records earlier, one withdrawn twice, one with no ok record at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/util.h"
#include "evidence/verify_int.h"

#define N 3000                  /* devices */

static struct kj_work_order wo;
static struct kj_record rec[N + 8];
static char serials[N + 8][16];
static size_t nrec;

/* A lot of N ok devices (records 1..N), job_end appended by finish(). */
static void lot(void)
{
	memset(&wo, 0, sizeof(wo));
	snprintf(wo.id, sizeof(wo.id), "WO-1");
	snprintf(wo.customer, sizeof(wo.customer), "ACME");
	snprintf(wo.product, sizeof(wo.product), "P");
	snprintf(wo.batch, sizeof(wo.batch), "B1");
	snprintf(wo.fw_version_str, sizeof(wo.fw_version_str), "1.0.0");
	memset(wo.fw_sha256, 0xf1, 32);
	memset(wo.sha256, 0x3c, 32);
	memset(rec, 0, sizeof(rec));
	for (size_t i = 0; i <= N; i++) {
		struct kj_record *r = &rec[i];

		r->kind = i ? KJ_REC_DEVICE : KJ_REC_JOB_START;
		r->job_seq = i;
		r->job = wo.id;
		r->customer = wo.customer;
		r->product = wo.product;
		r->batch = wo.batch;
		r->fw_version = wo.fw_version_str;
		memcpy(r->fw_sha256, wo.fw_sha256, 32);
		if (!i) {
			memcpy(r->work_order_sha256, wo.sha256, 32);
			continue;
		}
		kj_put_u32be(r->uid, (uint32_t)i);
		r->uid_len = 4;
		snprintf(serials[i], sizeof(serials[i]), "SN%06zu", i);
		r->serial = serials[i];
		r->has_attempt = true;
		r->attempt = i;
		r->has_cred = true;
		r->cred_index = i;
		memset(r->cert_sha256, (int)(i & 0xff), 32);
		r->has_readback = true;
		memset(r->readback, (int)(i * 7 & 0xff), 32);
		r->result = KJ_RES_OK;
	}
	nrec = N + 1;
}

/* Record nrec: a withdrawn copy of record j. */
static void withdraw(size_t j)
{
	rec[nrec] = rec[j];
	rec[nrec].job_seq = nrec;
	rec[nrec].result = KJ_RES_WITHDRAWN;
	nrec++;
}

/* job_end with the counts, the quantity reached. */
static void finish(void)
{
	uint64_t ok = 0, other = 0;

	for (size_t i = 1; i < nrec; i++)
		if (rec[i].result == KJ_RES_OK) {
			ok++;
		} else {
			other++;
			ok -= rec[i].result == KJ_RES_WITHDRAWN;
		}
	rec[0].quantity = wo.quantity = ok;
	rec[nrec] = rec[0];
	rec[nrec].kind = KJ_REC_JOB_END;
	rec[nrec].job_seq = nrec;
	rec[nrec].result = KJ_RES_COMPLETED;
	rec[nrec].ok_count = ok;
	rec[nrec].failed_count = other;
	nrec++;
}

/* Checks 6 and 7 of the lot into rep; the sorts' costs into st. */
static void judge(bool levels, struct kj_verify_report *rep,
		  struct kj_xsort_stats *st)
{
	struct kj_verify_opts o = { .wo = &wo };
	struct kj_vjob *v;

	memset(rep, 0, sizeof(*rep));
	kj_xsort_test_tune(levels ? 1024 : 0, levels ? 3 : 0);
	v = kj_vjob_new(&o);
	kj_xsort_test_tune(0, 0);
	assert_non_null(v);
	for (size_t i = 0; i < nrec; i++)
		assert_int_equal(kj_vjob_record(v, i, 100 + 2 * i, &rec[i]),
				 0);
	assert_int_equal(kj_vjob_end(v, nrec, rep), 0);
	kj_vjob_sort_stats(v, st);
	kj_vjob_free(v);
}

static void same_check(const struct kj_vresult *a, const struct kj_vresult *b)
{
	char *ja = a->json ? json_dumps(a->json, JSON_SORT_KEYS) : NULL;
	char *jb = b->json ? json_dumps(b->json, JSON_SORT_KEYS) : NULL;

	assert_int_equal(a->status, b->status);
	assert_string_equal(a->detail, b->detail);
	assert_true(!ja == !jb);
	if (ja)
		assert_string_equal(ja, jb);
	free(ja);
	free(jb);
}

/*
 * The lot as it is now, judged in memory and through the levels: the same
 * outcome; check c (6 or 7) has status and a detail containing want.
 */
static void both(enum kj_vcheck c, enum kj_vstatus status, const char *want)
{
	struct kj_verify_report one, many;
	struct kj_xsort_stats s1, sn;

	judge(false, &one, &s1);
	judge(true, &many, &sn);
	print_message("%-12s %s\n  in memory: %u level(s), %llu bytes to disk; tuned: %u levels, %llu runs, %llu merges, %llu bytes written\n",
		      c == KJ_VC_COMPLETENESS ? "completeness" : "work-order",
		      many.check[c].detail, s1.levels,
		      (unsigned long long)s1.bytes_written, sn.levels,
		      (unsigned long long)sn.runs,
		      (unsigned long long)sn.merges,
		      (unsigned long long)sn.bytes_written);
	assert_int_equal(s1.levels, 0);
	/* 167 runs of attempt entries merged 3 at a time: 5 levels, each
	 * entry (56 bytes, and 2 x 24 for its uid and serial) written once
	 * a level: n log n bytes, not the n^2 / fanin of merging every
	 * fanin runs with all that came before */
	assert_true(sn.levels >= 3 && sn.levels <= 6);
	assert_true(sn.bytes_written <= (uint64_t)sn.levels * nrec *
					  (56 + 2 * 24));
	assert_true(sn.bytes_read == sn.bytes_written);
	same_check(&one.check[KJ_VC_COMPLETENESS],
		   &many.check[KJ_VC_COMPLETENESS]);
	same_check(&one.check[KJ_VC_WORK_ORDER], &many.check[KJ_VC_WORK_ORDER]);
	assert_true(one.n_ok == many.n_ok && one.n_devices == many.n_devices &&
		    one.n_withdrawn == many.n_withdrawn);
	assert_int_equal(many.check[c].status, status);
	if (!strstr(many.check[c].detail, want))
		fail_msg("no \"%s\" in \"%s\"", want, many.check[c].detail);
	kj_verify_report_free(&one);
	kj_verify_report_free(&many);
}

static void test_clean(void **state)
{
	(void)state;
	lot();
	finish();
	both(KJ_VC_COMPLETENESS, KJ_VS_PASS, "3000 ok, 0 other");
	both(KJ_VC_WORK_ORDER, KJ_VS_PASS, "uids and serials unique");
}

static void test_duplicates(void **state)
{
	(void)state;
	/* records 3 and 2998: runs 3,000 records apart */
	lot();
	memcpy(rec[N - 2].uid, rec[3].uid, 4);
	memcpy(rec[N - 5].uid, rec[7].uid, 4);
	finish();
	both(KJ_VC_WORK_ORDER, KJ_VS_FAIL,
	     "uid 00000003 has more than one ok record");
	lot();
	rec[N - 1].serial = rec[2].serial;
	finish();
	both(KJ_VC_WORK_ORDER, KJ_VS_FAIL,
	     "serial SN000002 has more than one ok record");
}

static void test_withdrawn(void **state)
{
	(void)state;
	/* record 2's attempt withdrawn at the end, its uid done again in
	 * the middle: one ok record not withdrawn, the lot passes */
	lot();
	memcpy(rec[N / 2].uid, rec[2].uid, 4);
	withdraw(2);
	finish();
	both(KJ_VC_COMPLETENESS, KJ_VS_PASS, "(1 withdrawn, each after");
	both(KJ_VC_WORK_ORDER, KJ_VS_PASS, "uids and serials unique");
	/* twice */
	lot();
	withdraw(4);
	withdraw(4);
	finish();
	both(KJ_VC_COMPLETENESS, KJ_VS_FAIL,
	     "record 3002 (leaf 6104): attempt 4 withdrawn a second time");
	/* a withdrawn device whose ok record is missing */
	lot();
	withdraw(5);
	rec[N + 1].attempt = 7777;
	finish();
	both(KJ_VC_COMPLETENESS, KJ_VS_FAIL,
	     "record 3001 (leaf 6102): withdrawn without an earlier ok record of its attempt");
	/* a withdrawn record that differs from its ok record */
	lot();
	withdraw(6);
	rec[N + 1].cred_index = 1;
	finish();
	both(KJ_VC_COMPLETENESS, KJ_VS_FAIL,
	     "withdrawn record differs from the ok record 6 of attempt 6");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_withdrawn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
