// SPDX-License-Identifier: Apache-2.0
/*
 * The journal against real SQLite in a temp dir (EVIDENCE.md §1-2):
 * reservation → commit → record, resume after a real crash (a child
 * killed with SIGKILL mid-job), gap-free seq and job_seq, no credential
 * index used twice across restarts, job ids bound to one work order, the
 * state dir lock, event log and checkpoints, job_end, and a full disk
 * (a small tmpfs; skipped when mounting is not allowed).
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

#define NCREDS 64

static char dir[64];
static struct kj_cred_ref creds[NCREDS];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/kj-journal.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* Batch order is not index order: the journal must follow the file. */
	for (int i = 0; i < NCREDS; i++) {
		creds[i].index = (uint64_t)((i * 37) % NCREDS) + 1000;
		memset(creds[i].cert_sha256, (int)creds[i].index & 0xff, 32);
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "umount -l '%s/full' 2>/dev/null; "
		 "rm -rf '%s'", dir, dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void desc(struct kj_job_desc *d, const char *job, uint8_t wo)
{
	memset(d, 0, sizeof(*d));
	d->job = job;
	d->customer = "acme";
	d->product = "acme-sensor";
	d->batch = "LOT-1";
	d->operator_id = "op1";
	memset(d->work_order_sha256, wo, 32);
	d->quantity = 40;
	d->fw_version = "3.1.5";
	memset(d->fw_sha256, 0xf0, 32);
	d->serial_prefix = "AS";
	d->serial_start = 10000;
	d->creds = creds;
	d->n_creds = NCREDS;
}

static void hello(struct kj_record *h, unsigned n)
{
	memset(h, 0, sizeof(*h));
	h->kind = KJ_REC_DEVICE;
	h->site = "line1";
	h->socket = (uint16_t)(n % 8);
	h->uid[0] = (uint8_t)(n >> 8);
	h->uid[1] = (uint8_t)n;
	h->uid[2] = 0x5a;
	h->uid_len = 3;
	h->hwrev = "B";
}

static struct kj_journal *open_job(const char *job, struct kj_job_state *st)
{
	struct kj_journal *j;
	struct kj_job_desc d;

	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, job, 0x11);
	assert_int_equal(kj_journal_job_begin(j, &d, st), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	return j;
}

/* Reserve for device n and commit (the credential may now leave). */
static void reserve(struct kj_journal *j, unsigned n, struct kj_record *r,
		    struct kj_reservation *res)
{
	hello(r, n);
	assert_int_equal(kj_journal_reserve(j, r, res), 0);
	kj_record_set_reservation(r, res);
}

static void finish(struct kj_journal *j, struct kj_record *r,
		   enum kj_result result)
{
	r->result = result;
	r->has_readback = result == KJ_RES_OK;
	memset(r->readback, 0xdd, 32);
	assert_int_equal(kj_journal_append_record(j, r, NULL, NULL), 0);
}

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

struct collect {
	uint64_t n;
	uint64_t job_seq_next;
	uint64_t ok, interrupted;
	uint64_t used[NCREDS + 8];
	size_t n_used;
	bool have_end;
};

static int collect_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct collect *c = ctx;
	struct kj_record r;

	assert_int_equal(seq, c->n);
	assert_int_equal(kj_record_parse(jcs, len, &r), 0);
	assert_int_equal(r.seq, seq);
	assert_int_equal(r.job_seq, c->job_seq_next);
	c->n++;
	c->job_seq_next++;
	if (r.kind == KJ_REC_DEVICE && r.has_cred) {
		for (size_t i = 0; i < c->n_used; i++)
			if (c->used[i] == r.cred_index)
				fail_msg("credential %llu used twice",
					 (unsigned long long)r.cred_index);
		assert_true(c->n_used < KJ_ARRAY_SIZE(c->used));
		c->used[c->n_used++] = r.cred_index;
	}
	c->ok += r.result == KJ_RES_OK;
	c->interrupted += r.result == KJ_RES_INTERRUPTED;
	c->have_end |= r.kind == KJ_REC_JOB_END;
	kj_record_release(&r);
	return 0;
}

/*
 * A child runs part of a job: `done` devices finish ok, `open` more are
 * reserved and committed (their credential "left"), one more is reserved
 * but never committed; then it dies by SIGKILL, no cleanup at all.
 */
static void crash_child(unsigned base, unsigned done, unsigned open)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct kj_journal *j;
		struct kj_job_state st;
		struct kj_record r[16];
		struct kj_reservation res[16];
		unsigned k;

		j = open_job("WO-CRASH", &st);
		for (k = 0; k < done + open; k++)
			reserve(j, base + k, &r[k], &res[k]);
		if (kj_journal_commit(j))
			_exit(2);
		for (k = 0; k < done; k++)
			finish(j, &r[k], KJ_RES_OK);
		if (kj_journal_commit(j))
			_exit(2);
		reserve(j, base + 15, &r[15], &res[15]); /* never committed */
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void test_crash_resume(void **state)
{
	struct kj_journal *j;
	struct kj_job_state st;
	struct kj_record r;
	struct kj_reservation res;
	struct collect c = { 0 };

	(void)state;
	crash_child(0, 2, 3);
	/* Reopen: the 3 committed-but-open reservations become interrupted;
	 * the uncommitted one never existed. */
	j = open_job("WO-CRASH", &st);
	assert_true(st.resumed);
	assert_false(st.ended);
	assert_int_equal(st.ok_count, 2);
	assert_int_equal(st.other_count, 3);
	assert_int_equal(st.failed_after_offer, 3);
	assert_int_equal(st.next_serial, 10005);
	assert_int_equal(st.next_job_seq, 6);
	assert_int_equal(st.creds_used, 5);
	assert_int_equal(kj_journal_record_count(j), 6);
	/* The next credential is the 6th of the batch, never a burned one. */
	reserve(j, 100, &r, &res);
	assert_int_equal(res.cred_index, creds[5].index);
	assert_string_equal(res.serial, "AS10005");
	assert_int_equal(res.attempt, 6);
	assert_int_equal(kj_journal_commit(j), 0);
	finish(j, &r, KJ_RES_OK);
	assert_int_equal(kj_journal_commit(j), 0);
	assert_int_equal(kj_journal_foreach_record(j, 0, NULL, collect_cb, &c),
			 0);
	assert_int_equal(c.n, 7);
	assert_int_equal(c.ok, 3);
	assert_int_equal(c.interrupted, 3);
	kj_journal_close(j);
}

static void test_three_restarts(void **state)
{
	struct kj_journal *j;
	struct kj_job_state st;
	struct collect c = { 0 };

	(void)state;
	crash_child(0, 3, 2);
	crash_child(20, 0, 4);
	crash_child(40, 5, 1);
	j = open_job("WO-CRASH", &st);
	assert_int_equal(st.ok_count, 8);
	assert_int_equal(st.other_count, 7);
	assert_int_equal(st.creds_used, 15);
	assert_int_equal(st.creds_left, NCREDS - 15);
	assert_int_equal(st.next_serial, 10015);
	assert_int_equal(kj_journal_foreach_record(j, 0, "WO-CRASH",
						   collect_cb, &c), 0);
	assert_int_equal(c.n, 16);
	assert_int_equal(c.n_used, 15);
	assert_int_equal(c.interrupted, 7);
	/* No reservation is left open after a restart. */
	kj_journal_close(j);
	j = open_job("WO-CRASH", &st);
	assert_int_equal(st.other_count, 7);
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

/*
 * Torture: a child appends as fast as it can (random groups, results and
 * refusals) and is SIGKILLed at a random moment, five times over; then
 * the whole journal must pass `audit verify` (canonical, gap-free seq and
 * job_seq, no credential, serial or attempt twice) and every reservation
 * has exactly one record.
 */
enum { TORTURE_CREDS = 20000 };
static struct kj_cred_ref torture_creds[TORTURE_CREDS];

static void torture_child(unsigned seed)
{
	struct kj_journal *j;
	struct kj_job_desc d;
	struct kj_record r[32];
	struct kj_reservation res[32];
	unsigned n = seed * 100000;

	srand(seed);
	if (kj_journal_open(dir, 0, &j))
		_exit(2);
	desc(&d, "WO-TORTURE", 0x99);
	d.creds = torture_creds;
	d.n_creds = TORTURE_CREDS;
	if (kj_journal_job_begin(j, &d, NULL) || kj_journal_commit(j))
		_exit(2);
	for (;;) {
		unsigned g = 1 + (unsigned)rand() % 32;

		for (unsigned k = 0; k < g; k++) {
			hello(&r[k], n++);
			if (kj_journal_reserve(j, &r[k], &res[k]))
				_exit(0); /* batch exhausted */
			kj_record_set_reservation(&r[k], &res[k]);
		}
		if (kj_journal_commit(j))
			_exit(2);
		for (unsigned k = 0; k < g; k++) {
			r[k].result = rand() % 4 ? KJ_RES_OK : KJ_RES_TIMEOUT;
			r[k].has_readback = r[k].result == KJ_RES_OK;
			if (kj_journal_append_record(j, &r[k], NULL, NULL))
				_exit(2);
			if (rand() % 8 == 0 && kj_journal_commit(j))
				_exit(2);
		}
		hello(&r[0], n++);
		r[0].result = KJ_RES_QUOTA;
		if (kj_journal_append_record(j, &r[0], NULL, NULL) ||
		    kj_journal_commit(j))
			_exit(2);
	}
}

static int count_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	uint64_t *with_cred = ctx;
	struct kj_record r;

	(void)seq;
	assert_int_equal(kj_record_parse(jcs, len, &r), 0);
	*with_cred += r.kind == KJ_REC_DEVICE && r.has_cred;
	kj_record_release(&r);
	return 0;
}

/* Every audit verify line passes but the checkpoint coverage one. */
static void fail_if_more_than_coverage(const char *report)
{
	const char *p = report;
	unsigned fails = 0;

	while ((p = strstr(p, "FAIL "))) {
		fails++;
		p++;
	}
	assert_int_equal(fails, 1);
	assert_non_null(strstr(report, "FAIL records covered by a checkpoint"));
}

static void test_crash_torture(void **state)
{
	struct kj_journal *j;
	struct kj_job_state st;
	struct kj_job_desc d;
	uint64_t with_cred = 0;
	char report[4096];
	FILE *f;

	(void)state;
	for (unsigned i = 0; i < TORTURE_CREDS; i++)
		torture_creds[i].index = i;
	for (unsigned round = 1; round <= 5; round++) {
		pid_t pid = fork();
		int status;

		assert_true(pid >= 0);
		if (pid == 0)
			torture_child(round);
		usleep(20000 + (useconds_t)(rand() % 100000));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status))
			assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-TORTURE", 0x99);
	d.creds = torture_creds;
	d.n_creds = TORTURE_CREDS;
	assert_int_equal(kj_journal_job_begin(j, &d, &st), 0);
	assert_int_equal(kj_journal_foreach_record(j, 0, NULL, count_cb,
						   &with_cred), 0);
	/* Every reservation ever made has exactly one record. */
	assert_int_equal(with_cred, st.creds_used);
	f = fmemopen(report, sizeof(report), "w");
	assert_non_null(f);
	/* No checkpoints in this journal: only the coverage check fails
	 * (SPEC.md §4: a record no quote covers is a failure). */
	assert_int_equal(kj_audit_verify(j, NULL, 0, f), -EBADMSG);
	fclose(f);
	fail_if_more_than_coverage(report);
	printf("journal torture: 5 SIGKILLs, %llu records, %llu "
	       "reservations, %llu ok: audit verify passes but for coverage\n",
	       (unsigned long long)kj_journal_record_count(j),
	       (unsigned long long)st.creds_used,
	       (unsigned long long)st.ok_count);
	kj_journal_close(j);
}

/* Group commit: many devices, one transaction; prints the rate. */
static void test_group_commit_rate(void **state)
{
	enum { N = 3000, GROUP = 100 };
	static struct kj_cred_ref many[N];
	struct kj_journal *j;
	struct kj_job_desc d;
	struct kj_record r;
	struct kj_journal_stats st;
	struct timespec t0, t1;
	double s;

	(void)state;
	for (unsigned i = 0; i < N; i++)
		many[i].index = i;
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-RATE", 0x77);
	d.creds = many;
	d.n_creds = N;
	d.quantity = N;
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < N; i += GROUP) {
		struct kj_record rs[GROUP];
		struct kj_reservation ress[GROUP];

		for (unsigned k = 0; k < GROUP; k++)
			reserve(j, i + k, &rs[k], &ress[k]);
		assert_int_equal(kj_journal_commit(j), 0);
		for (unsigned k = 0; k < GROUP; k++)
			finish(j, &rs[k], KJ_RES_OK);
		assert_int_equal(kj_journal_commit(j), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	kj_journal_stats(j, &st);
	s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("journal: %u devices (reserve + record), groups of %u: "
	       "%.0f devices/s, %llu commits, %llu fsyncs (%.0f fsyncs/s)\n",
	       N, GROUP, N / s, (unsigned long long)st.commits,
	       (unsigned long long)st.fsyncs, (double)st.fsyncs / s);
	hello(&r, 1);
	assert_int_equal(kj_journal_uid_done(j, r.uid, r.uid_len), 1);
	kj_journal_close(j);
}

/* Background WAL checkpoints keep the WAL near 1000 pages (it restarts). */
static void test_wal_bounded(void **state)
{
	enum { N = 12000, GROUP = 200 };
	static struct kj_cred_ref many[N];
	struct kj_journal *j;
	struct kj_job_desc d;
	struct kj_record rs[GROUP];
	struct kj_reservation ress[GROUP];
	char wal[128];
	struct stat sb;
	off_t max = 0;

	(void)state;
	for (unsigned i = 0; i < N; i++)
		many[i].index = i;
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, "WO-WAL", 0x88);
	d.creds = many;
	d.n_creds = N;
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	snprintf(wal, sizeof(wal), "%s/journal.db-wal", dir);
	for (unsigned i = 0; i < N; i += GROUP) {
		for (unsigned k = 0; k < GROUP; k++)
			reserve(j, i + k, &rs[k], &ress[k]);
		for (unsigned k = 0; k < GROUP; k++)
			finish(j, &rs[k], KJ_RES_OK);
		assert_int_equal(kj_journal_commit(j), 0);
		assert_int_equal(stat(wal, &sb), 0);
		if (sb.st_size > max)
			max = sb.st_size;
	}
	printf("journal: %u devices: WAL at most %lld KiB\n", N,
	       (long long)max / 1024);
	/* Never restarted it would pass 15 MiB here. */
	assert_true(max < 8 * 1024 * 1024);
	kj_journal_close(j);
}

/* A full disk: a 192 KiB tmpfs as the state dir. */
static void test_disk_full(void **state)
{
	static struct kj_cred_ref many[4000];
	char mnt[80], opts[] = "size=192k";
	struct kj_job_desc d;
	struct kj_journal *j;
	struct kj_job_state st;
	struct kj_record r;
	struct kj_reservation res;
	uint64_t committed = 1;
	int rc = 0;
	unsigned i;

	(void)state;
	snprintf(mnt, sizeof(mnt), "%s/full", dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, opts) < 0) {
		printf("journal: cannot mount a tmpfs (%s): skipping the "
		       "full-disk case\n", strerror(errno));
		skip();
	}

	for (i = 0; i < 4000; i++)
		many[i].index = i;
	assert_int_equal(kj_journal_open(mnt, 0, &j), 0);
	desc(&d, "WO-FULL", 0x66);
	d.creds = many;
	d.n_creds = 4000;
	d.quantity = 4000;
	assert_int_equal(kj_journal_job_begin(j, &d, &st), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	for (i = 0; i < 4000 && !rc; i++) {
		hello(&r, i);
		rc = kj_journal_reserve(j, &r, &res);
		if (!rc)
			rc = kj_journal_commit(j);
		if (rc)
			break;
		kj_record_set_reservation(&r, &res);
		r.result = KJ_RES_OK;
		r.has_readback = true;
		rc = kj_journal_append_record(j, &r, NULL, NULL);
		if (!rc)
			rc = kj_journal_commit(j);
		if (!rc)
			committed++;
	}
	assert_int_equal(rc, -ENOSPC);
	/* Poisoned: nothing more is accepted. */
	assert_int_equal(kj_journal_commit(j), -ENOSPC);
	hello(&r, 9999);
	assert_int_equal(kj_journal_reserve(j, &r, &res), -ENOSPC);
	kj_journal_close(j);
	/* With room again, the journal resumes from what was committed. */
	assert_int_equal(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT,
			       "size=16m"), 0);
	assert_int_equal(kj_journal_open(mnt, 0, &j), 0);
	assert_int_equal(kj_journal_job_begin(j, &d, &st), 0);
	assert_int_equal(st.ok_count, committed - 1);
	assert_true(kj_journal_record_count(j) >= committed);
	kj_journal_close(j);
	printf("journal: disk full after %llu committed records: -ENOSPC, "
	       "resumed after remount\n", (unsigned long long)committed);
	assert_int_equal(umount(mnt), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_resume, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_three_restarts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_crash_torture, setup,
						teardown),
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
		cmocka_unit_test_setup_teardown(test_group_commit_rate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wal_bounded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
