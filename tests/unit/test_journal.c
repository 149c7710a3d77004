// SPDX-License-Identifier: Apache-2.0
/*
 * The journal against real SQLite in a temp dir (EVIDENCE.md §1-2):
 * reservation → commit → record, gap-free seq and job_seq, job ids bound
 * to one work order, the state dir lock, event log and checkpoints, and
 * job_end.  Crashes are in test_journal_crash.c, group commit, the WAL and
 * a full disk in test_journal_storage.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "evidence/audit.h"
#include "journal/journal.h"
#include "journal/record.h"

#include "journal_fx.h"

static void test_flow(void **state)
{
	struct kj_journal *j;
	struct kj_job_state st;
	struct kj_record r, p;
	struct kj_reservation res;
	struct kj_journal_stats stats;
	const uint8_t *jcs;
	size_t len;

	(void)state;
	j = open_job("WO-1", &st);
	assert_false(st.resumed);
	assert_int_equal(st.next_job_seq, 1);
	assert_int_equal(st.creds_left, NCREDS);
	assert_int_equal(kj_journal_record_count(j), 1); /* job_start */

	reserve(j, 1, &r, &res);
	kj_journal_job_state(j, &st);
	assert_int_equal(st.open_reservations, 1);
	assert_int_equal(res.attempt, 1);
	assert_int_equal(res.cred_index, creds[0].index);
	assert_int_equal(res.cred_pos, 0);
	assert_string_equal(res.serial, "AS10000");
	assert_int_equal(kj_journal_pending(j), 1);
	assert_int_equal(kj_journal_commit(j), 0);
	assert_int_equal(kj_journal_pending(j), 0);

	r.result = KJ_RES_OK;
	r.has_readback = true;
	memset(r.readback, 0xdd, 32);
	assert_int_equal(kj_journal_append_record(j, &r, &jcs, &len), 0);
	assert_int_equal(r.seq, 1);
	assert_int_equal(r.job_seq, 1);
	assert_int_equal(kj_record_parse(jcs, len, &p), 0);
	assert_int_equal(p.seq, 1);
	assert_string_equal(p.serial, "AS10000");
	assert_string_equal(p.job, "WO-1");
	assert_string_equal(p.operator_id, "op1");
	assert_int_equal(p.cred_index, creds[0].index);
	assert_memory_equal(p.cert_sha256, creds[0].cert_sha256, 32);
	kj_record_release(&p);
	assert_int_equal(kj_journal_commit(j), 0);

	/* DUPLICATE lookups. */
	assert_int_equal(kj_journal_uid_done(j, r.uid, r.uid_len), 1);
	hello(&r, 2);
	assert_int_equal(kj_journal_uid_done(j, r.uid, r.uid_len), 0);

	/* A refusal before OFFER: no reservation, no credential. */
	hello(&r, 3);
	r.result = KJ_RES_LOCKED_OUT;
	assert_int_equal(kj_journal_append_record(j, &r, NULL, NULL), 0);
	assert_int_equal(r.job_seq, 2);

	/* A record claiming an attempt that was never reserved. */
	hello(&r, 4);
	r.has_attempt = true;
	r.attempt = 999;
	r.serial = "AS99";
	r.has_cred = true;
	r.result = KJ_RES_TIMEOUT;
	assert_int_equal(kj_journal_append_record(j, &r, NULL, NULL), -EINVAL);
	/* … does not poison the handle or leave a gap. */
	assert_int_equal(kj_journal_commit(j), 0);
	assert_int_equal(kj_journal_record_count(j), 3);

	kj_journal_job_state(j, &st);
	assert_int_equal(st.open_reservations, 0);
	assert_int_equal(st.ok_count, 1);
	assert_int_equal(st.other_count, 1);
	assert_int_equal(st.failed_after_offer, 0);
	assert_int_equal(st.next_serial, 10001);
	kj_journal_stats(j, &stats);
	assert_true(stats.commits >= 3);
	assert_true(stats.fsyncs >= stats.commits);
	assert_int_equal(stats.records, 3);
	assert_int_equal(stats.reservations, 1);
	kj_journal_close(j);
}

static void test_other_work_order(void **state)
{
	struct kj_journal *j;
	struct kj_job_desc d;

	(void)state;
	j = open_job("WO-2", NULL);
	kj_journal_close(j);
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-2", 0x22);
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), -EEXIST);
	desc(&d, "WO-3", 0x22);
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	kj_journal_close(j);
}

/*
 * Issue 11 item 4: one batch under two work orders.  The second job skips
 * every credential the first reserved (by certificate hash, whatever its
 * index) and runs out when they are all used; the first job cannot resume
 * with another batch file.
 */
static void test_two_work_orders_one_batch(void **state)
{
	struct kj_cred_ref batch[6];
	struct kj_reservation res;
	struct kj_journal *j;
	struct kj_job_desc d;
	struct kj_record r;
	uint8_t used[4][32];

	(void)state;
	for (unsigned i = 0; i < 6; i++) {
		batch[i].index = 7000 + i;
		memset(batch[i].cert_sha256, 0xb0 + (int)i, 32);
	}
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-ONE", 0x31);
	memset(d.creds_sha256, 0xc1, 32);
	d.creds = batch;
	d.n_creds = 6;
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	for (unsigned i = 0; i < 4; i++) {
		reserve(j, 900 + i, &r, &res);
		memcpy(used[i], res.cert_sha256, 32);
		finish(j, &r, KJ_RES_OK);
	}
	assert_int_equal(kj_journal_commit(j), 0);
	kj_journal_close(j);

	/* Another signed work order, the same CREDS.cms. */
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-TWO", 0x32);
	memset(d.creds_sha256, 0xc1, 32);
	d.creds = batch;
	d.n_creds = 6;
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	for (unsigned i = 0; i < 2; i++) {
		reserve(j, 950 + i, &r, &res);
		for (unsigned k = 0; k < 4; k++)
			assert_memory_not_equal(res.cert_sha256, used[k], 32);
		assert_int_equal(res.cred_index, 7004 + i);
		finish(j, &r, KJ_RES_OK);
	}
	hello(&r, 960);
	assert_int_equal(kj_journal_reserve(j, &r, &res), -ENOBUFS);
	assert_int_equal(kj_journal_commit(j), 0);
	kj_journal_close(j);

	/* The first job, resumed with another batch file: refused. */
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-ONE", 0x31);
	memset(d.creds_sha256, 0xc2, 32);
	d.creds = batch;
	d.n_creds = 6;
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), -EEXIST);
	memset(d.creds_sha256, 0xc1, 32);
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	hello(&r, 970);
	assert_int_equal(kj_journal_reserve(j, &r, &res), -ENOBUFS);
	kj_journal_close(j);
}

static void test_lock_and_readonly(void **state)
{
	struct kj_journal *j, *j2, *ro;
	struct collect c = { 0 };
	struct kj_record r;
	struct kj_reservation res;

	(void)state;
	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &ro),
			 -ENOENT);
	j = open_job("WO-4", NULL);
	assert_int_equal(kj_journal_open(dir, 0, &j2), -EBUSY);
	reserve(j, 1, &r, &res);
	assert_int_equal(kj_journal_commit(j), 0);
	finish(j, &r, KJ_RES_OK);
	/* Not committed yet: a reader does not see it. */
	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &ro), 0);
	assert_int_equal(kj_journal_foreach_record(ro, 0, NULL, collect_cb,
						   &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(kj_journal_commit(j), 0);
	/* A reader keeps the snapshot of its open … */
	memset(&c, 0, sizeof(c));
	assert_int_equal(kj_journal_foreach_record(ro, 0, NULL, collect_cb,
						   &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(kj_journal_record_count(ro), 1);
	kj_journal_close(ro);
	/* … a new one sees the commit. */
	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &ro), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(kj_journal_foreach_record(ro, 0, NULL, collect_cb,
						   &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(kj_journal_add_event(ro, 0, 13, "x", r.readback,
					      NULL), -EPERM);
	kj_journal_close(ro);
	kj_journal_close(j);
}

struct ev_seen {
	unsigned n;
	bool void_seen[4];
};

static int ev_cb(void *ctx, uint64_t index, uint32_t epoch, uint32_t pcr,
		 const char *name, const uint8_t digest[32], bool is_void)
{
	struct ev_seen *e = ctx;

	assert_int_equal(index, e->n);
	assert_int_equal(epoch, index / 2);
	assert_int_equal(pcr, 13 + index % 2);
	assert_string_equal(name, index % 2 ? "policy" : "kinject");
	assert_int_equal(digest[0], index);
	e->void_seen[index] = is_void;
	e->n++;
	return 0;
}

static int ck_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	unsigned *n = ctx;

	assert_int_equal(c->id, *n);
	assert_int_equal(c->tree_size, 10 + *n);
	assert_int_equal(c->nv_counter, 57 + *n);
	assert_int_equal(c->pcr_mask, (1u << 13) | (1u << 14));
	assert_int_equal(c->pcrs[13][0], 13);
	assert_int_equal(c->pcrs[14][0], 14);
	assert_int_equal(c->pcrs[0][0], 0);
	assert_int_equal(c->attest_len, 5);
	assert_memory_equal(c->quote_attest, "ATTST", 5);
	assert_int_equal(c->sig_len, 3);
	assert_memory_equal(c->quote_sig, "SIG", 3);
	assert_int_equal(c->event_log_length, 4);
	(*n)++;
	return 0;
}

static void test_events_checkpoints(void **state)
{
	struct kj_journal *j;
	struct kj_journal_checkpoint c;
	struct ev_seen e = { 0 };
	uint8_t d[32] = { 0 };
	uint64_t idx;
	unsigned n = 0;
	uint8_t *v;
	size_t len;

	(void)state;
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	for (unsigned i = 0; i < 4; i++) {
		d[0] = (uint8_t)i;
		assert_int_equal(kj_journal_add_event(j, i / 2, 13 + i % 2,
						      i % 2 ? "policy"
							    : "kinject",
						      d, &idx), 0);
		assert_int_equal(idx, i);
	}
	assert_int_equal(kj_journal_void_event(j, 3), 0);
	assert_int_equal(kj_journal_void_event(j, 9), -ENOENT);
	memset(&c, 0, sizeof(c));
	c.pcr_mask = (1u << 13) | (1u << 14);
	c.pcrs[13][0] = 13;
	c.pcrs[14][0] = 14;
	c.quote_attest = (const uint8_t *)"ATTST";
	c.attest_len = 5;
	c.quote_sig = (const uint8_t *)"SIG";
	c.sig_len = 3;
	c.event_log_length = 4;
	for (unsigned i = 0; i < 3; i++) {
		c.tree_size = 10 + i;
		c.nv_counter = 57 + i;
		c.time_ms = 0;
		assert_int_equal(kj_journal_add_checkpoint(j, &c), 0);
		assert_int_equal(c.id, i);
	}
	assert_int_equal(kj_journal_add_checkpoint(j, &c), -EINVAL);
	assert_int_equal(kj_journal_meta_set(j, "ak_name", "abc", 3), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	kj_journal_close(j);

	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &j), 0);
	assert_int_equal(kj_journal_event_count(j), 4);
	assert_int_equal(kj_journal_checkpoint_count(j), 3);
	assert_int_equal(kj_journal_foreach_event(j, ev_cb, &e), 0);
	assert_int_equal(e.n, 4);
	assert_false(e.void_seen[2]);
	assert_true(e.void_seen[3]);
	assert_int_equal(kj_journal_foreach_checkpoint(j, 0, ck_cb, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(kj_journal_meta_get(j, "ak_name", &v, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(v, "abc", 3);
	free(v);
	assert_int_equal(kj_journal_meta_get(j, "nope", &v, &len), -ENOENT);
	kj_journal_close(j);
	/* The nv_counter rule holds across reopen. */
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	c.nv_counter = 59;
	assert_int_equal(kj_journal_add_checkpoint(j, &c), -EINVAL);
	kj_journal_close(j);
}

static void test_job_end_and_exhaustion(void **state)
{
	struct kj_journal *j;
	struct kj_job_state st;
	struct kj_job_desc d;
	struct kj_record r, end;
	struct kj_reservation res;
	struct collect c = { 0 };
	const uint8_t *jcs;
	size_t len;
	unsigned i;

	(void)state;
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-5", 0x55);
	d.n_creds = 4;
	d.quantity = 3;
	assert_int_equal(kj_journal_job_begin(j, &d, &st), 0);
	for (i = 0; i < 4; i++) {
		reserve(j, i, &r, &res);
		finish(j, &r, i == 1 ? KJ_RES_READBACK : KJ_RES_OK);
	}
	hello(&r, 9);
	assert_int_equal(kj_journal_reserve(j, &r, &res), -ENOBUFS);
	assert_int_equal(kj_journal_job_end(j, &end, &jcs, &len), 0);
	assert_int_equal(end.result, KJ_RES_COMPLETED);
	assert_int_equal(end.ok_count, 3);
	assert_int_equal(end.failed_count, 1);
	assert_int_equal(end.job_seq, 5);
	assert_non_null(strstr((const char *)jcs, "\"kind\":\"job_end\""));
	assert_int_equal(kj_journal_reserve(j, &r, &res), -EINVAL);
	assert_int_equal(kj_journal_commit(j), 0);
	kj_journal_close(j);

	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	assert_int_equal(kj_journal_job_begin(j, &d, &st), 0);
	assert_true(st.ended);
	assert_int_equal(st.end_result, KJ_RES_COMPLETED);
	assert_int_equal(kj_journal_foreach_record(j, 0, "WO-5", collect_cb,
						   &c), 0);
	assert_int_equal(c.n, 6);
	assert_true(c.have_end);
	kj_journal_close(j);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_work_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_two_work_orders_one_batch,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_and_readonly, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_events_checkpoints, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_job_end_and_exhaustion,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
