// SPDX-License-Identifier: Apache-2.0
/*
 * The keeper, the injectors and their io_uring engine end to end, against
 * `kinject sim` (sim.h) over real unix sockets, with a real journal
 * (SQLite in a temp dir), a real arena and a credential batch of real
 * X.509 certificates (engine_fx.h): the job as it should go, its limits of
 * quantity and batch, the IPC framing and --listen.  Accept spreading is
 * in test_engine_accept.c, faults in test_engine_faults.c, the benchmark
 * and idle RSS in test_engine_bench.c.  Exit 77 when the kernel has no
 * io_uring.
 */
#include "engine_fx.h"

/* ---- 1,000 devices through 64 sockets ---------------------------------- */

static void test_thousand(void **state)
{
	struct fx f;
	struct kj_sim_opts o;
	struct kj_keeper_stats st;
	struct simres sr;
	struct scan sc;
	int rfd, rc;

	(void)state;
	fx_init(&f, 1200, 1000, 10);
	sim_opts(&f, &o, 64, 1000, 1);
	sim_start(&f, &o, &rfd);
	rc = kj_keeper_run(&f.job, &st);
	assert_int_equal(rc, KJ_KEEPER_COMPLETED);
	sim_wait(rfd, &sr);
	print_stats("thousand", &st);
	assert_int_equal(sr.rc, 0);
	assert_int_equal(sr.r.committed, 1000);
	assert_int_equal(sr.r.unexpected, 0);
	assert_int_equal(st.ok, 1000);
	scan_journal(&f, &sc, 2000);
	assert_int_equal(sc.ok, 1000);
	assert_int_equal(sc.other, 0);
	fx_free(&f);
}

/* ---- firmware of many DATA frames, several SENDMSGs per device --------- */

static void test_big_firmware(void **state)
{
	struct kj_keeper_stats st;
	struct kj_sim_opts o;
	struct simres sr;
	struct scan sc;
	struct fx f;
	int rfd;

	(void)state;
	/* 24 full frames and a short one: two windows of 16 frames. */
	FW_SIZE = 24 * 65536 + 123;
	fx_init(&f, 150, 100, 10);
	sim_opts(&f, &o, 16, 100, 8);
	o.slow_sockets = 2;	/* and two sites that read slowly */
	o.slow_read_ms = 1;
	sim_start(&f, &o, &rfd);
	assert_int_equal(kj_keeper_run(&f.job, &st), KJ_KEEPER_COMPLETED);
	sim_wait(rfd, &sr);
	FW_SIZE = FW_SIZE_DEFAULT;
	assert_int_equal(sr.r.committed, 100);
	assert_int_equal(sr.r.unexpected, 0);
	scan_journal(&f, &sc, 200);
	assert_int_equal(sc.ok, 100);
	fx_free(&f);
}

/* ---- the credential batch runs out before the quantity ------------------ */

static void test_exhausted(void **state)
{
	struct kj_keeper_stats st;
	struct kj_sim_opts o;
	struct simres sr;
	struct scan sc;
	struct fx f;
	int rfd;

	(void)state;
	fx_init(&f, 20, 30, 0);
	sim_opts(&f, &o, 8, 30, 9);
	o.expect_mask = 1u << KJ_ABORT_INTERNAL;
	sim_start(&f, &o, &rfd);
	assert_int_equal(kj_keeper_run(&f.job, &st), KJ_KEEPER_EXHAUSTED);
	sim_wait(rfd, &sr);
	assert_int_equal(sr.r.committed, 20);
	assert_int_equal(sr.r.unexpected, 0);
	assert_int_equal(sr.r.aborts[KJ_ABORT_INTERNAL], 1);
	/* A refusal, not a failure after OFFER: max_failed 0 still holds. */
	assert_int_equal(st.failed_after_offer, 0);
	scan_journal(&f, &sc, 100);
	assert_int_equal(sc.ok, 20);
	assert_int_equal(sc.by[KJ_RES_INTERNAL], 1);
	fx_free(&f);
}

/* ---- quantity with more sites than devices left ------------------------ */


static void test_quota(void **state)
{
	static const char sites[] =
		"{\"kinject_sites\": 1, \"sites\": {\"line1\": [0, 1, 2, 3, 4, "
		"5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, "
		"22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, "
		"38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, "
		"54, 55, 56, 57, 58, 59, 60, 61, 62, 63]}}";
	struct kj_sim_opts o, rogue;
	struct kj_keeper_stats st;
	struct kj_sites ks;
	struct simres sr, rr;
	struct scan sc;
	struct fx f;
	int rfd, rogue_fd;

	(void)state;
	fx_init(&f, 200, 37, 10);
	assert_int_equal(kj_sites_parse((const uint8_t *)sites, strlen(sites),
					"sites.json", &ks), 0);
	f.job.sites = &ks;
	f.job.hooks.progress = on_progress;
	f.job.limits.progress_interval_ms = 10;
	/* A site that is not in --sites: UNAUTHORIZED, recorded; the line
	 * starts once both are refused. */
	sim_opts(&f, &rogue, 2, 2, 22);
	rogue.site = "rogue";
	rogue.expect_mask = 1u << KJ_ABORT_UNAUTHORIZED;
	sim_start(&f, &rogue, &rogue_fd);
	sim_opts(&f, &o, 64, 1000, 2);
	f.later = o;
	f.later_on_unauth = true;
	assert_int_equal(kj_keeper_run(&f.job, &st), KJ_KEEPER_COMPLETED);
	assert_true(f.later_started);
	rfd = f.later_fd;
	sim_wait(rfd, &sr);
	sim_wait(rogue_fd, &rr);
	assert_int_equal(sr.r.committed, 37);
	assert_int_equal(sr.r.unexpected, 0);
	assert_true(sr.r.aborts[KJ_ABORT_QUOTA] > 0);
	assert_int_equal(rr.r.aborts[KJ_ABORT_UNAUTHORIZED], 2);
	assert_int_equal(rr.r.committed, 0);
	scan_journal(&f, &sc, 400);
	assert_int_equal(sc.ok, 37);
	assert_int_equal(sc.by[KJ_RES_UNAUTHORIZED], 2);
	/* Every refusal was recorded; the rest came with the job's end. */
	assert_true(sc.by[KJ_RES_QUOTA] > 0);
	assert_true(sc.by[KJ_RES_QUOTA] <= sr.r.aborts[KJ_ABORT_QUOTA]);
	kj_sites_free(&ks);
	fx_free(&f);
}

/* ---- the IPC framing: what the keeper refuses ------------------------------ */

static void test_ipc(void **state)
{
	uint8_t pkt[KJ_IPC_MSG_MAX];
	struct kj_ipc_buf b = { .p = pkt };
	struct kj_ipc_admit a = { .tag = 3, .uid_len = 2, .site_len = 1,
				  .hwrev_len = 1 };
	struct kj_ipc_outcome out = { .tag = 1, .kind = KJ_OUT_READBACK };
	struct kj_ipc_iter it;
	const uint8_t *body;
	const char *why = NULL;
	unsigned type;
	size_t len;

	(void)state;
	assert_int_equal(kj_ipc_put(&b, KJ_IPC_ADMIT, &a, sizeof(a), "sUUB",
				    4), 0);
	assert_int_equal(kj_ipc_put(&b, KJ_IPC_OUTCOME, &out, sizeof(out),
				    NULL, 0), 0);
	kj_ipc_iter_init(&it, pkt, b.len);
	assert_int_equal(kj_ipc_next(&it, &type, &body, &len, &why), 1);
	assert_int_equal(type, KJ_IPC_ADMIT);
	assert_int_equal(len, sizeof(a) + 4);
	assert_int_equal(kj_ipc_next(&it, &type, &body, &len, &why), 1);
	assert_int_equal(type, KJ_IPC_OUTCOME);
	assert_int_equal(kj_ipc_next(&it, &type, &body, &len, &why), 0);

	/* Declared lengths that do not add up. */
	b.len = b.n = 0;
	assert_int_equal(kj_ipc_put(&b, KJ_IPC_ADMIT, &a, sizeof(a), "sUU", 3),
			 0);
	kj_ipc_iter_init(&it, pkt, b.len);
	assert_int_equal(kj_ipc_next(&it, &type, &body, &len, &why), -EBADMSG);
	/* uid length 0 */
	a.uid_len = 0;
	b.len = b.n = 0;
	assert_int_equal(kj_ipc_put(&b, KJ_IPC_ADMIT, &a, sizeof(a), "sB", 2),
			 0);
	kj_ipc_iter_init(&it, pkt, b.len);
	assert_int_equal(kj_ipc_next(&it, &type, &body, &len, &why), -EBADMSG);
	/* A fixed-size type with a byte too many, an unknown type. */
	b.len = b.n = 0;
	assert_int_equal(kj_ipc_put(&b, KJ_IPC_OUTCOME, &out, sizeof(out), "x",
				    1), 0);
	kj_ipc_iter_init(&it, pkt, b.len);
	assert_int_equal(kj_ipc_next(&it, &type, &body, &len, &why), -EBADMSG);
	b.len = b.n = 0;
	assert_int_equal(kj_ipc_put(&b, 99, &out, sizeof(out), NULL, 0), 0);
	kj_ipc_iter_init(&it, pkt, b.len);
	assert_int_equal(kj_ipc_next(&it, &type, &body, &len, &why), -EBADMSG);
	/* Truncated header, entry longer than the packet, reserved bits. */
	kj_ipc_iter_init(&it, pkt, 5);
	assert_int_equal(kj_ipc_next(&it, &type, &body, &len, &why), -EBADMSG);
	b.len = b.n = 0;
	assert_int_equal(kj_ipc_put(&b, KJ_IPC_OUTCOME, &out, sizeof(out),
				    NULL, 0), 0);
	kj_ipc_iter_init(&it, pkt, b.len - 8);
	assert_int_equal(kj_ipc_next(&it, &type, &body, &len, &why), -EBADMSG);
	pkt[4] = 1;
	kj_ipc_iter_init(&it, pkt, b.len);
	assert_int_equal(kj_ipc_next(&it, &type, &body, &len, &why), -EBADMSG);
	/* The cap. */
	b.len = b.n = 0;
	while (kj_ipc_put(&b, KJ_IPC_OUTCOME, &out, sizeof(out), NULL, 0) == 0)
		;
	assert_true(b.len <= KJ_IPC_MSG_MAX);
	assert_true(b.len + kj_ipc_ent_size(sizeof(out)) > KJ_IPC_MSG_MAX);
}

/*
 * Issue 11 item 1: the keeper decides from its private copies.  Midway the
 * credential table in the shared arena is overwritten (every blob pointing
 * into the firmware); the keeper's OFFERs and readback checks go on with
 * the places it copied at the start, so every device still commits.
 */
static void test_keeper_private_copies(void **state)
{
	struct kj_keeper_stats st;
	struct kj_sim_opts o;
	struct simres sr;
	struct scan sc;
	struct fx f;
	int rfd;

	(void)state;
	uint32_t min_blob = UINT32_MAX;

	fx_init(&f, 400, 300, 10);
	for (size_t i = 0; i < f.creds.count; i++)
		if (f.creds.table->cred[i].blob_len < min_blob)
			min_blob = f.creds.table->cred[i].blob_len;
	assert_true(min_blob > 64);
	f.job.hooks.progress = on_progress;
	f.job.limits.progress_interval_ms = 10;
	f.scribble_at_ok = 50;
	sim_opts(&f, &o, 16, 300, 1);
	sim_start(&f, &o, &rfd);
	assert_int_equal(kj_keeper_run(&f.job, &st), KJ_KEEPER_COMPLETED);
	sim_wait(rfd, &sr);
	assert_true(f.scribbled);
	assert_int_equal(sr.r.unexpected, 0);
	/* Every device got a whole credential, not 8 bytes of firmware. */
	assert_true(sr.r.bytes_received >=
		    300ull * ((uint64_t)FW_SIZE + min_blob));
	scan_journal(&f, &sc, 1000);
	assert_int_equal(sc.ok, 300);
	assert_int_equal(sc.other, 0);
	fx_free(&f);
}

/* ---- --listen ------------------------------------------------------------ */

static void test_listen_parse(void **state)
{
	struct kj_listen l;

	(void)state;
	assert_int_equal(kj_listen_parse("unix:/tmp/x.sock", &l), 0);
	assert_true(l.is_unix);
	assert_int_equal(kj_listen_parse("tcp:127.0.0.1:7000", &l), 0);
	assert_int_equal(kj_listen_parse("tcp:[::1]:7000", &l), 0);
	assert_int_equal(kj_listen_parse("tcp:localhost:1", &l), 0);
	assert_int_equal(kj_listen_parse("tcp:10.0.0.1:7000", &l), -EPERM);
	assert_int_equal(kj_listen_parse("tcp:0.0.0.0:7000", &l), -EPERM);
	assert_int_equal(kj_listen_parse("tcp:127.0.0.1:0", &l), -EINVAL);
	assert_int_equal(kj_listen_parse("tcp:127.0.0.1", &l), -EINVAL);
	assert_int_equal(kj_listen_parse("udp:1", &l), -EINVAL);
	/* docs/TLS.md: TLS on any address, plain TCP on loopback only */
	assert_int_equal(kj_listen_parse("tls:10.0.0.1:7000", &l), 0);
	assert_true(l.is_tls && !l.is_unix);
	assert_int_equal(kj_listen_parse("tls:[::]:7000", &l), 0);
	assert_int_equal(kj_listen_parse("tls:10.0.0.1", &l), -EINVAL);
	assert_int_equal(kj_listen_parse("tcp:127.0.0.1:7000", &l), 0);
	assert_false(l.is_tls);
	assert_int_equal(kj_listen_parse("unix:", &l), -EINVAL);
}


int main(int argc, char **argv)
{
	engine_exec_injector(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_parse),
		cmocka_unit_test(test_ipc),
		cmocka_unit_test(test_thousand),
		cmocka_unit_test(test_keeper_private_copies),
		cmocka_unit_test(test_big_firmware),
		cmocka_unit_test(test_quota),
		cmocka_unit_test(test_exhausted),
	};

	engine_test_env();
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
