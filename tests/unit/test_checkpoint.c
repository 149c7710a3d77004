// SPDX-License-Identifier: Apache-2.0
/*
 * checkpoint.c and measure.c against a real swtpm and a real journal: a
 * job with pipelined and synchronous checkpoints whose quotes verify over
 * the replayed event log; the counter discipline (an old journal restored,
 * a second journal on the same TPM, a journal ahead of the TPM); epochs
 * (continue, new after a TPM reset, broken, void recovery); latency of one
 * checkpoint (NV increment + quote + PCR read + store) on swtpm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "attest/attest.h"
#include "attest/checkpoint_int.h"
#include "attest/eventlog.h"
#include "attest/measure.h"
#include "journal/journal.h"
#include "evidence_job.h"
#include "swtpm_helper.h"

static struct test_swtpm sw;
static char dir1[128], dir2[128], dir3[128];

static int setup(void **st)
{
	(void)st;
	if (test_swtpm_start(&sw, 0) < 0) {
		fprintf(stderr, "cannot start swtpm (tests/lib/swtpm.sh)\n");
		return -1;
	}
	snprintf(dir1, sizeof(dir1), "%s/s1", sw.dir);
	snprintf(dir2, sizeof(dir2), "%s/s2", sw.dir);
	snprintf(dir3, sizeof(dir3), "%s/s3", sw.dir);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	test_swtpm_stop(&sw);
	return 0;
}

static void test_due(void **st)
{
	(void)st;
	assert_false(kj_checkpoint_due(1000, 0, 200, false));
	assert_true(kj_checkpoint_due(1000, 0, 200, true));
	assert_false(kj_checkpoint_due(1000, 900, 200, true));
	assert_true(kj_checkpoint_due(1100, 900, 200, true));
	assert_true(kj_checkpoint_due(1100, 950, 0, true) == false);
	assert_true(kj_checkpoint_due(1150, 950, 0, true));
}

struct verify_ctx {
	struct kj_ak ak;
	struct kj_event *ev;
	size_t n_ev;
	uint64_t n, last_nv, last_size;
};

static int verify_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	struct verify_ctx *v = ctx;
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32], qd[32];
	enum kj_quote_check failed;

	assert_true(c->nv_counter > v->last_nv);
	/* a re-quote (test_requote) may cover the same tree again */
	assert_true(c->tree_size >= v->last_size);
	assert_true(c->event_log_length <= v->n_ev);
	assert_int_equal(kj_eventlog_replay(v->ev, c->event_log_length,
					    c->epoch, pcrs), 0);
	for (unsigned i = 0; i < KJ_TPM_PCR_COUNT; i++)
		if (c->pcr_mask & KJ_PCR_BIT(i))
			assert_memory_equal(pcrs[i], c->pcrs[i], 32);
	kj_checkpoint_qd(c->tree_size, c->root, c->nv_counter, qd);
	assert_int_equal(kj_quote_verify(&v->ak, c->quote_attest,
					 c->attest_len, c->quote_sig,
					 c->sig_len, qd, c->pcr_mask, pcrs,
					 NULL, &failed), 0);
	v->last_nv = c->nv_counter;
	v->last_size = c->tree_size;
	v->n++;
	return 0;
}

static void verify_state(const char *dir, uint64_t want_records)
{
	struct verify_ctx v;
	struct kj_journal *j;
	uint8_t *pub;
	size_t len;
	char path[256];

	memset(&v, 0, sizeof(v));
	snprintf(path, sizeof(path), "%s/ak.pub", dir);
	assert_int_equal(kj_read_file(path, 4096, &pub, &len), 0);
	assert_int_equal(kj_ak_parse(pub, len, &v.ak, NULL), 0);
	free(pub);
	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &j), 0);
	assert_int_equal(kj_measure_load_events(j, &v.ev, &v.n_ev), 0);
	assert_int_equal(kj_journal_foreach_checkpoint(j, 0, verify_cb, &v),
			 0);
	assert_int_equal(v.last_size, want_records);
	assert_int_equal(v.n, kj_journal_checkpoint_count(j));
	kj_journal_close(j);
	free(v.ev);
	kj_ak_free(&v.ak);
}

static void test_job(void **st)
{
	struct ej_opts o = { .dir = dir1, .tcti = sw.tcti, .n_devices = 2000,
			     .every = 250 };
	struct ej_result r;

	(void)st;
	assert_int_equal(ej_make_job(&o, &r), 0);
	/* job_start + 2000 device records + job_end */
	assert_int_equal(r.records, 2002);
	/* pipelined ones while the loop ran, plus the final one */
	assert_true(r.checkpoints >= 3);
	fprintf(stderr,
		"checkpoint latency on swtpm (NV increment + quote + PCR read): mean %.1f ms, max %llu ms over %llu; synchronous take incl. 2 commits: %llu ms\n",
		(double)r.quote_ms_total / (double)r.checkpoints,
		(unsigned long long)r.quote_ms_max,
		(unsigned long long)r.checkpoints,
		(unsigned long long)r.sync_ms);
	verify_state(dir1, 2002);
}

/* Open dir's journal and run the counter check. */
static int check_dir(const char *dir)
{
	struct kj_journal *j;
	struct kj_tpm *tpm;
	int rc;

	assert_int_equal(kj_tpm_open(sw.tcti, &tpm), 0);
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	rc = kj_checkpoint_check(tpm, j);
	kj_journal_close(j);
	kj_tpm_close(tpm);
	return rc;
}

static void tpm_reset(void);

/* Another journal's checkpoint on this TPM, in the same clock run. */
static void nv_increment_outside(void)
{
	assert_int_equal(test_sh("tpm2_nvincrement -T '%s' 0x%x >/dev/null",
				 sw.tcti, KJ_TPM_NV_COUNTER), 0);
}

static void test_second_journal(void **st)
{
	struct ej_opts o = { .dir = dir2, .tcti = sw.tcti, .n_devices = 20,
			     .every = 0, .job = "WO-B" };
	struct ej_result r;

	(void)st;
	assert_int_equal(check_dir(dir1), 0);
	/* A second state on the same TPM (after a reset: its PCRs are the
	 * first state's otherwise) is refused: the counter is in use... */
	tpm_reset();
	assert_true(ej_make_job(&o, &r) < 0);
	/* ...unless the officers approved a fresh journal. */
	o.officers_fresh = true;
	assert_int_equal(ej_make_job(&o, &r), 0);
	assert_int_equal(check_dir(dir2), 0);
	/* A checkpoint it does not hold, in the same clock run: refused. */
	nv_increment_outside();
	assert_int_equal(check_dir(dir2), -EPERM);
}

/* The journal's checkpoint nv_counters, in order, into v (n of them). */
static int nv_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	uint64_t *v = ctx;

	v[++v[0]] = c->nv_counter;
	return 0;
}

/* The last checkpoint's nv_counter; *after (may be NULL): the one that
 * followed nv in the journal (0 if none). */
static uint64_t last_nv(const char *dir, uint64_t nv, uint64_t *after)
{
	uint64_t v[4096] = { 0 };
	struct kj_journal *j;

	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &j), 0);
	assert_true(kj_journal_checkpoint_count(j) < 4095);
	assert_int_equal(kj_journal_foreach_checkpoint(j, 0, nv_cb, v), 0);
	kj_journal_close(j);
	if (after) {
		*after = 0;
		for (uint64_t i = 1; i < v[0]; i++)
			if (v[i] == nv)
				*after = v[i + 1];
	}
	return v[v[0]];
}

static void test_restored_journal(void **st)
{
	struct ej_opts o = { .dir = dir3, .tcti = sw.tcti, .n_devices = 10,
			     .every = 0, .job = "WO-C",
			     .officers_fresh = true };
	struct ej_result r;
	uint64_t nv, next;

	(void)st;
	tpm_reset();
	assert_int_equal(ej_make_job(&o, &r), 0);
	nv = last_nv(dir3, 0, NULL);
	/* An orderly restart: the next checkpoint is exactly + 1. */
	tpm_reset();
	o.job = "WO-C2";
	assert_int_equal(ej_make_job(&o, &r), 0);
	assert_true(last_nv(dir3, nv, &next) > nv);
	assert_int_equal(next, nv + 1);
	assert_int_equal(check_dir(dir3), 0);
	/* Keep a copy of dir3's journal (closed: WAL checkpointed). */
	assert_int_equal(test_sh("cp %s/journal.db %s/journal.old", dir3,
				 dir3), 0);
	o.job = "WO-C3";
	assert_int_equal(ej_make_job(&o, &r), 0);
	assert_true(last_nv(dir3, 0, NULL) > nv + 1);
	/* The old copy back, same clock run: refused. */
	assert_int_equal(test_sh("cp %s/journal.db %s/journal.new && cp %s/journal.old %s/journal.db && rm -f %s/journal.db-wal %s/journal.db-shm",
				 dir3, dir3, dir3, dir3, dir3, dir3), 0);
	assert_int_equal(check_dir(dir3), -EPERM);
	/* After an orderly restart the counter may have moved by up to
	 * tpm_orderly_count + 1 (§4): an old copy further behind is
	 * refused too. */
	assert_int_equal(test_sh("cp %s/journal.new %s/journal.db && rm -f %s/journal.db-wal %s/journal.db-shm",
				 dir3, dir3, dir3, dir3), 0);
	assert_int_equal(check_dir(dir3), 0);
	/* the live journal's next 300 checkpoints, as the TPM sees them */
	assert_int_equal(test_sh("for i in $(seq 300); do tpm2_nvincrement -T '%s' 0x%x >/dev/null || exit 1; done",
				 sw.tcti, KJ_TPM_NV_COUNTER), 0);
	tpm_reset();
	assert_int_equal(check_dir(dir3), -EPERM);
}

/*
 * A quote taken but not stored (the keeper died between the increment and
 * the store): the TPM is at last + 1 in the same clock run.  The next start
 * re-quotes that value without an increment, so the journal's sequence
 * stays +1 (§4) and its quote verifies.
 */
static void test_requote(void **st)
{
	char dir[160];
	struct ej_opts o = { .dir = dir, .tcti = sw.tcti, .n_devices = 10,
			     .every = 0, .job = "WO-RQ",
			     .officers_fresh = true };
	struct kj_checkpointer k;
	struct kj_journal *j;
	struct kj_tpm *tpm;
	struct ej_result r;
	uint64_t nv, n;

	(void)st;
	snprintf(dir, sizeof(dir), "%s/requote", sw.dir);
	tpm_reset();
	assert_int_equal(ej_make_job(&o, &r), 0);
	nv = last_nv(dir, 0, NULL);
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	assert_int_equal(kj_checkpoint_announce(j), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	n = kj_journal_checkpoint_count(j);
	kj_journal_close(j);
	nv_increment_outside(); /* the lost quote's increment */
	assert_int_equal(check_dir(dir), 1);
	assert_int_equal(kj_tpm_open(sw.tcti, &tpm), 0);
	assert_int_equal(kj_tpm_ak_setup(tpm, dir), 0);
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	assert_int_equal(kj_checkpointer_attach(&k, tpm, j, NULL, true), 0);
	assert_int_equal(kj_journal_checkpoint_count(j), n + 1);
	kj_checkpointer_close(&k);
	kj_journal_close(j);
	kj_tpm_close(tpm);
	assert_int_equal(last_nv(dir, 0, NULL), nv + 1);
	verify_state(dir, r.records);
	assert_int_equal(check_dir(dir), 0);
}

/* SPEC §4: --tpm none on a state dir with attested history is refused. */
static void test_tpm_none_refused(void **st)
{
	struct kj_checkpointer_args a = { .tcti = "none", .state_dir = dir1 };
	struct kj_checkpointer c;
	struct kj_journal *j;

	(void)st;
	assert_int_equal(kj_journal_open(dir1, 0, &j), 0);
	assert_int_equal(kj_checkpointer_open(&c, &a, j), -EPERM);
	kj_journal_close(j);
}

static void test_journal_ahead(void **st)
{
	(void)st;
	/* The counter redefined (it restarts below the journal's). */
	assert_int_equal(test_sh("tpm2_nvundefine -T '%s' 0x%x >/dev/null",
				 sw.tcti, KJ_TPM_NV_COUNTER), 0);
	assert_int_equal(check_dir(dir1), -EPERM);
}

/* ---- measurements ----------------------------------------------------------- */

static int measure_dir(const char *dir, struct kj_measure_out *out)
{
	struct kj_measure_in in = { .kmod_path = "",
				    .work_order = (const uint8_t *)"wo",
				    .work_order_len = 2, .state_dir = dir };
	struct kj_journal *j;
	struct kj_tpm *tpm;
	int rc;

	assert_int_equal(kj_tpm_open(sw.tcti, &tpm), 0);
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	rc = kj_measure_job_start(tpm, j, &in, out);
	kj_journal_close(j);
	kj_tpm_close(tpm);
	return rc;
}

static void tpm_reset(void)
{
	const char *p = strstr(sw.tcti, "port=");
	unsigned port = p ? (unsigned)atoi(p + 5) : 0;

	assert_true(port > 0);
	/* Orderly: a TPM reset after a disorderly shutdown counts as a
	 * dictionary-attack failure, and the AK (no noDA) would lock out. */
	assert_int_equal(test_sh("tpm2_shutdown -c -T '%s' && swtpm_ioctl --tcp 127.0.0.1:%u -i && tpm2_startup -c -T '%s'",
				 sw.tcti, port + 1, sw.tcti), 0);
}

static void test_epochs(void **st)
{
	char mdir[160], path[200];
	struct kj_measure_out m;
	struct kj_journal *j;
	uint8_t d[32] = { 1 };

	(void)st;
	tpm_reset();
	snprintf(mdir, sizeof(mdir), "%s/m", sw.dir);
	assert_int_equal(kj_mkdir_p(mdir, 0700), 0);
	/* Fresh journal, PCRs zero after the reset: epoch 0. */
	assert_int_equal(measure_dir(mdir, &m), 0);
	assert_int_equal(m.decision, KJ_EPOCH_NEW);
	assert_int_equal(m.epoch, 0);
	assert_int_equal(m.added, 2); /* kinject, work_order */
	/* Same TPM lifetime, officer set present now: continue. */
	snprintf(path, sizeof(path), "%s/ceremony", mdir);
	assert_int_equal(kj_mkdir_p(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s", mdir, KJ_MEASURE_OFFICERS);
	assert_int_equal(kj_write_file_atomic(path, "pem", 3, 0644), 0);
	assert_int_equal(measure_dir(mdir, &m), 0);
	assert_int_equal(m.decision, KJ_EPOCH_CONTINUE);
	assert_int_equal(m.epoch, 0);
	assert_int_equal(m.added, 3);
	/* A durable entry whose extend never happened (crash): voided. */
	assert_int_equal(kj_journal_open(mdir, 0, &j), 0);
	assert_int_equal(kj_journal_add_event(j, 0, 14, "work_order", d, NULL),
			 0);
	assert_int_equal(kj_journal_commit(j), 0);
	kj_journal_close(j);
	assert_int_equal(measure_dir(mdir, &m), 0);
	assert_int_equal(m.decision, KJ_EPOCH_CONTINUE_VOID);
	assert_int_equal(m.voided, 1);
	/* TPM reset: the next epoch. */
	tpm_reset();
	assert_int_equal(measure_dir(mdir, &m), 0);
	assert_int_equal(m.decision, KJ_EPOCH_NEW);
	assert_int_equal(m.epoch, 1);
	/* Someone else extended PCR 13: refuse to start. */
	assert_int_equal(test_sh("tpm2_pcrextend -T '%s' 13:sha256=%064d",
				 sw.tcti, 5), 0);
	assert_int_equal(measure_dir(mdir, &m), -EPERM);
}

/* A loaded module is measured into PCR 13 as "kinject.ko". */
static void test_kmod(void **st)
{
	struct kj_measure_in in = { .kmod_path = "tests/unit/test_checkpoint.c",
				    .product = (const uint8_t *)"p",
				    .product_len = 1 };
	struct kj_measure_out m;
	struct kj_event *ev;
	struct kj_journal *j;
	struct kj_tpm *tpm;
	uint8_t want[32];
	char dir[160];
	size_t n;

	(void)st;
	tpm_reset();
	snprintf(dir, sizeof(dir), "%s/kmod", sw.dir);
	assert_int_equal(kj_mkdir_p(dir, 0700), 0);
	assert_int_equal(kj_tpm_open(sw.tcti, &tpm), 0);
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	assert_int_equal(kj_measure_job_start(tpm, j, &in, &m), 0);
	assert_int_equal(m.added, 3); /* kinject, kinject.ko, product */
	assert_int_equal(kj_measure_load_events(j, &ev, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ev[1].name, KJ_EV_KMOD);
	assert_int_equal(ev[1].pcr, KJ_PCR_CODE);
	assert_int_equal(kj_measure_file(in.kmod_path, want), 0);
	assert_memory_equal(ev[1].digest, want, 32);
	assert_string_equal(ev[2].name, KJ_EV_PRODUCT);
	assert_int_equal(ev[2].pcr, KJ_PCR_POLICY);
	free(ev);
	/* A module path that cannot be read: no entry is made for it. */
	in.kmod_path = "/nonexistent/kinject.ko";
	assert_true(kj_measure_job_start(tpm, j, &in, &m) < 0);
	assert_int_equal(kj_journal_event_count(j), 4); /* + kinject */
	kj_journal_close(j);
	kj_tpm_close(tpm);
}

/* One record appended (not committed) and handed to the checkpointer. */
static uint64_t append_locked_out(struct kj_checkpointer *k,
				  struct kj_journal *j)
{
	struct kj_record r;
	const uint8_t *jcs;
	size_t len;

	memset(&r, 0, sizeof(r));
	r.kind = KJ_REC_DEVICE;
	r.site = "s";
	r.uid_len = 1;
	r.hwrev = "Z";
	r.result = KJ_RES_LOCKED_OUT;
	assert_int_equal(kj_journal_append_record(j, &r, &jcs, &len), 0);
	assert_int_equal(kj_checkpointer_record(k, r.seq, jcs, len), 0);
	return r.seq;
}

struct clocks {
	uint64_t prev, last;
};

static int clock_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	struct clocks *cl = ctx;
	struct kj_quote_info qi;

	assert_int_equal(kj_quote_parse(c->quote_attest, c->attest_len, &qi,
					NULL), 0);
	cl->prev = cl->last;
	cl->last = qi.clock;
	return 0;
}

/* The TPM clock between the last two quotes of the journal, in ms. */
static uint64_t last_quote_gap_ms(struct kj_journal *j)
{
	struct clocks cl = { 0, 0 };

	assert_int_equal(kj_journal_foreach_checkpoint(j, 0, clock_cb, &cl),
			 0);
	fprintf(stderr, "cadence: the last two quotes %llu ms apart\n",
		(unsigned long long)(cl.last - cl.prev));
	return cl.last - cl.prev;
}

/*
 * The keeper's loop with the pipelined worker: records at ~5,000/s for 2 s,
 * a commit every 2 ms, a checkpoint due every 200 ms.  Quotes/s stay at
 * about 1/interval whatever the record rate, the loop never waits for the
 * TPM, and a record is covered within interval + one quote.
 */
static void test_cadence(void **st)
{
	struct kj_checkpoint_policy pol = { .interval_ms = 200 };
	uint64_t t0, now, cov = 0, covered = 0, stall = 0, lat_max = 0;
	uint64_t lat_sum = 0, n_lat = 0, *t_app;
	struct kj_checkpointer k;
	struct kj_ckpt_stats cs;
	struct kj_journal *j;
	struct kj_job_desc d;
	struct kj_tpm *tpm;
	char dir[160];
	unsigned n = 0;

	(void)st;
	t_app = calloc(20000, sizeof(*t_app));
	assert_non_null(t_app);
	/* No measurements here: start from zero PCRs so they replay. */
	tpm_reset();
	snprintf(dir, sizeof(dir), "%s/cadence", sw.dir);
	assert_int_equal(kj_mkdir_p(dir, 0700), 0);
	assert_int_equal(kj_tpm_open(sw.tcti, &tpm), 0);
	assert_int_equal(kj_tpm_ak_setup(tpm, dir), 1);
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	/* A third journal on this TPM, as the officers approved. */
	assert_int_equal(kj_checkpoint_allow_fresh(j, "test"), 0);
	/* The glue before job_begin: job_start reaches the tree read back. */
	assert_int_equal(kj_checkpointer_attach(&k, tpm, j, &pol, true), 0);
	memset(&d, 0, sizeof(d));
	d.job = "WO-CAD";
	d.customer = d.product = d.batch = d.operator_id = "x";
	d.quantity = 1;
	d.fw_version = "1.0.0";
	d.serial_prefix = "S";
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	t0 = kj_now_ms();
	t_app[0] = t0; /* job_start */
	while ((now = kj_now_ms()) - t0 < 2000 && n < 19000) {
		uint64_t a, c;

		for (int i = 0; i < 10; i++) {
			t_app[append_locked_out(&k, j)] = now;
			n++;
		}
		assert_int_equal(kj_journal_commit(j), 0);
		a = kj_now_ms();
		assert_int_equal(kj_checkpointer_committed(
				 &k, kj_journal_record_count(j), &cov), 0);
		c = kj_now_ms() - a;
		stall = c > stall ? c : stall;
		for (; covered < cov; covered++) {
			uint64_t l = kj_now_ms() - t_app[covered];

			lat_sum += l;
			n_lat++;
			lat_max = l > lat_max ? l : lat_max;
		}
		usleep(2000);
	}
	now = kj_now_ms() - t0;
	kj_ckpt_worker_stats(k.w, &cs);
	/* A checkpoint due and taken now, then one more record: the job's
	 * last quote still waits for the cadence (it came a few ms after
	 * the previous one before). */
	usleep(250 * 1000);
	append_locked_out(&k, j);
	assert_int_equal(kj_journal_commit(j), 0);
	assert_int_equal(kj_checkpointer_committed(
			 &k, kj_journal_record_count(j), &cov), 0);
	append_locked_out(&k, j);
	assert_int_equal(kj_journal_commit(j), 0);
	n += 2;
	assert_int_equal(kj_checkpointer_finish(&k), 0);
	assert_int_equal(kj_ckpt_worker_covered(k.w), n + 1);
	assert_true(last_quote_gap_ms(j) >= 150);
	fprintf(stderr,
		"cadence: %u records in %llu ms, %llu checkpoints = %.1f quotes/s (interval 200 ms: 5/s); keeper-side max %llu ms per committed hook; record -> covered: mean %llu ms, max %llu ms\n",
		n, (unsigned long long)now, (unsigned long long)cs.taken,
		1000.0 * (double)cs.taken / (double)now,
		(unsigned long long)stall,
		(unsigned long long)(n_lat ? lat_sum / n_lat : 0),
		(unsigned long long)lat_max);
	assert_true(cs.taken >= now / 200 / 2);
	assert_true(cs.taken <= now / 200 + 2);
	kj_checkpointer_close(&k);
	kj_journal_close(j);
	kj_tpm_close(tpm);
	free(t_app);
	verify_state(dir, n + 1);
}

/* A state with one committed record and the glue on it. */
static void glue_state(const char *name, struct kj_tpm **tpm,
		       struct kj_journal **j, struct kj_checkpointer *k)
{
	struct kj_checkpoint_policy pol = { .interval_ms = 1,
					    .stuck_ms = 500 };
	struct kj_job_desc d;
	char dir[160];

	snprintf(dir, sizeof(dir), "%s/%s", sw.dir, name);
	assert_int_equal(kj_mkdir_p(dir, 0700), 0);
	assert_int_equal(kj_tpm_open(sw.tcti, tpm), 0);
	assert_int_equal(kj_tpm_ak_setup(*tpm, dir), 1);
	assert_int_equal(kj_journal_open(dir, 0, j), 0);
	assert_int_equal(kj_checkpoint_allow_fresh(*j, "test"), 0);
	assert_int_equal(kj_checkpointer_attach(k, *tpm, *j, &pol, true), 0);
	memset(&d, 0, sizeof(d));
	d.job = name;
	d.customer = d.product = d.batch = d.operator_id = "x";
	d.quantity = 1;
	d.fw_version = "1.0.0";
	d.serial_prefix = "S";
	assert_int_equal(kj_journal_job_begin(*j, &d, NULL), 0);
	assert_int_equal(kj_journal_commit(*j), 0);
}

/* Call the committed hook every 20 ms until it fails; its error. */
static int committed_until_error(struct kj_checkpointer *k, uint64_t max_ms)
{
	uint64_t t0 = kj_now_ms(), cov;
	int rc;

	while ((rc = kj_checkpointer_committed(k, 1, &cov)) == 0 &&
	       kj_now_ms() - t0 < max_ms)
		usleep(20000);
	return rc;
}

/* A TPM that stops answering (SIGSTOP): the keeper is told within
 * stuck_ms and can exit without waiting for it. */
/* Stays with the detached thread: reachable, never closed. */
static struct kj_tpm *stuck_tpm;

static void test_tpm_stuck(void **st)
{
	struct kj_checkpointer k;
	struct kj_journal *j;
	uint64_t t0;

	(void)st;
	tpm_reset();
	glue_state("stuck", &stuck_tpm, &j, &k);
	assert_int_equal(test_sh("kill -STOP $(cat %s/swtpm.pid)", sw.dir), 0);
	t0 = kj_now_ms();
	assert_int_equal(committed_until_error(&k, 5000), KJ_CHECKPOINT_LOST);
	assert_true(kj_now_ms() - t0 < 2000);
	t0 = kj_now_ms();
	kj_checkpointer_close(&k); /* detaches the blocked thread */
	assert_true(kj_now_ms() - t0 < 100);
	kj_journal_close(j);
	/* tpm stays with the detached thread (the process would exit). */
	assert_int_equal(test_sh("kill -CONT $(cat %s/swtpm.pid)", sw.dir), 0);
	usleep(200000);
}

/* The TPM vanishes (swtpm killed): the next committed hook fails. */
static void test_tpm_gone(void **st)
{
	struct kj_checkpointer k;
	struct kj_journal *j;
	struct kj_tpm *tpm;
	int rc;

	(void)st;
	glue_state("gone", &tpm, &j, &k);
	assert_int_equal(test_sh("kill -KILL $(cat %s/swtpm.pid)", sw.dir), 0);
	rc = committed_until_error(&k, 5000);
	assert_int_equal(rc, KJ_CHECKPOINT_LOST);
	kj_checkpointer_close(&k);
	kj_journal_close(j);
	kj_tpm_close(tpm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due),
		cmocka_unit_test(test_job),
		cmocka_unit_test(test_second_journal),
		cmocka_unit_test(test_restored_journal),
		cmocka_unit_test(test_requote),
		cmocka_unit_test(test_tpm_none_refused),
		cmocka_unit_test(test_journal_ahead),
		cmocka_unit_test(test_epochs),
		cmocka_unit_test(test_kmod),
		/* last: a third journal on this TPM */
		cmocka_unit_test(test_cadence),
		cmocka_unit_test(test_tpm_stuck),
		/* last: kills the swtpm */
		cmocka_unit_test(test_tpm_gone),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
