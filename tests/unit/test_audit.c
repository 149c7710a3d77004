// SPDX-License-Identifier: Apache-2.0
/*
 * kinject audit over a real journal: verify passes on an honest one and
 * names the check that fails after tampering with a record, a checkpoint
 * root or the nv_counter order; export (JSON = the exact leaves, CSV with
 * quoting and formula guards) and recall through the real binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest/mtree.h"
#include "evidence/audit.h"
#include "journal/journal.h"
#include "journal/record.h"
#include "evidence_job.h"
#include "kj_testutil.h"
#include "swtpm_helper.h"

static char dir[96];
static char kinject[PATH_MAX];
static struct kj_cred_ref creds[16];
static uint8_t leaves_root[32];

struct leaves {
	struct kj_mtree *t;
};

static int leaf_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct leaves *l = ctx;

	(void)seq;
	return kj_mtree_append(l->t, jcs, len);
}

static void add_checkpoint(struct kj_journal *j, uint64_t nv)
{
	struct kj_journal_checkpoint c = { 0 };
	struct leaves l = { kj_mtree_new() };

	assert_non_null(l.t);
	assert_int_equal(kj_journal_foreach_record(j, 0, NULL, leaf_cb, &l),
			 0);
	c.tree_size = kj_mtree_size(l.t);
	assert_int_equal(kj_mtree_root(l.t, c.tree_size, c.root), 0);
	memcpy(leaves_root, c.root, 32);
	c.nv_counter = nv;
	c.quote_attest = (const uint8_t *)"A";
	c.attest_len = 1;
	c.quote_sig = (const uint8_t *)"S";
	c.sig_len = 1;
	c.pcr_mask = 1u << 13;
	assert_int_equal(kj_journal_add_checkpoint(j, &c), 0);
	kj_mtree_free(l.t);
}

/* One device record; returns its attempt (0 for a refusal). */
static uint64_t device(struct kj_journal *j, unsigned n, enum kj_result res)
{
	struct kj_record r = { .kind = KJ_REC_DEVICE };
	struct kj_reservation rv = { 0 };

	r.site = n == 2 ? "=HYPERLINK(\"x\")" : "line1";
	r.socket = (uint16_t)n;
	r.uid[0] = 0xa0;
	r.uid[1] = (uint8_t)n;
	r.uid_len = 2;
	r.hwrev = "B";
	if (res != KJ_RES_LOCKED_OUT) {
		assert_int_equal(kj_journal_reserve(j, &r, &rv), 0);
		kj_record_set_reservation(&r, &rv);
		assert_int_equal(kj_journal_commit(j), 0);
	}
	r.result = res;
	r.has_readback = res == KJ_RES_OK;
	assert_int_equal(kj_journal_append_record(j, &r, NULL, NULL), 0);
	return rv.attempt;
}

static int setup(void **state)
{
	struct kj_journal *j;
	struct kj_job_desc d = {
		.job = "WO-A", .customer = "acme", .product = "acme-sensor",
		.batch = "LOT, \"7\"", .operator_id = "op1", .quantity = 2,
		.fw_version = "3.1.5", .serial_prefix = "AS",
		.serial_start = 100, .creds = creds, .n_creds = 16,
	};
	char self[PATH_MAX];
	ssize_t n;

	(void)state;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	/* build/tests/test_audit -> build/kinject (also under build/asan). */
	snprintf(kinject, sizeof(kinject), "%s/../kinject", dirname(self));
	snprintf(dir, sizeof(dir), "/tmp/kj-audit.XXXXXX");
	assert_non_null(mkdtemp(dir));
	for (unsigned i = 0; i < 16; i++) {
		creds[i].index = i;
		memset(creds[i].cert_sha256, (int)i, 32);
	}
	memset(d.fw_sha256, 0xf1, 32);
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	device(j, 1, KJ_RES_OK);
	device(j, 2, KJ_RES_READBACK);
	device(j, 3, KJ_RES_LOCKED_OUT);
	assert_int_equal(kj_journal_commit(j), 0);
	add_checkpoint(j, 7);
	device(j, 4, KJ_RES_OK);
	assert_int_equal(kj_journal_job_end(j, NULL, NULL, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	add_checkpoint(j, 9);
	assert_int_equal(kj_journal_commit(j), 0);
	kj_journal_close(j);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Run kj_audit_verify on the dir; its report in buf. */
static int verify(char *buf, size_t cap)
{
	struct kj_journal *j;
	FILE *f = fmemopen(buf, cap, "w");
	int rc;

	assert_non_null(f);
	assert_int_equal(kj_journal_open(dir, KJ_JOURNAL_RDONLY, &j), 0);
	rc = kj_audit_verify(j, NULL, 0, f);
	fclose(f);
	kj_journal_close(j);
	return rc;
}

static void sql(const char *stmt)
{
	char path[128];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/journal.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, stmt, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", stmt, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_close(db);
}

static void test_verify_honest(void **state)
{
	char buf[4096] = "";

	(void)state;
	assert_int_equal(verify(buf, sizeof(buf)), 0);
	assert_non_null(strstr(buf, "ok   records are canonical JCS: 6"));
	assert_non_null(strstr(buf, "ok   checkpoint roots: 2 checkpoints"));
	assert_non_null(strstr(buf, "skip quotes"));
	assert_null(strstr(buf, "FAIL"));
}

static void test_verify_tampered_record(void **state)
{
	char buf[4096] = "";

	(void)state;
	/* One byte of a leaf (uid a001 -> a0ff): still canonical JCS, but
	 * the tree no longer matches the checkpoints. */
	sql("UPDATE records SET jcs = CAST(replace(CAST(jcs AS TEXT),"
	    " '\"uid\":\"a001\"', '\"uid\":\"a0ff\"') AS BLOB) WHERE seq = 1");
	assert_int_equal(verify(buf, sizeof(buf)), -EBADMSG);
	assert_non_null(strstr(buf, "FAIL checkpoint roots"));
	assert_non_null(strstr(buf, "ok   records are canonical"));
}

static void test_verify_noncanonical(void **state)
{
	char buf[4096] = "";

	(void)state;
	sql("UPDATE records SET jcs = CAST(replace(CAST(jcs AS TEXT),"
	    " '{\"attempt\"', '{ \"attempt\"') AS BLOB) WHERE seq = 2");
	assert_int_equal(verify(buf, sizeof(buf)), -EBADMSG);
	assert_non_null(strstr(buf, "FAIL records are canonical"));
}

static void test_verify_job_counts(void **state)
{
	char buf[4096] = "";

	(void)state;
	/* A job_end whose counts lie (the roots then fail too). */
	sql("UPDATE records SET jcs = CAST(replace(CAST(jcs AS TEXT),"
	    " '\"ok_count\":2', '\"ok_count\":3') AS BLOB) WHERE seq = 5");
	assert_int_equal(verify(buf, sizeof(buf)), -EBADMSG);
	assert_non_null(strstr(buf, "FAIL jobs"));
	assert_non_null(strstr(buf, "job_end says 3 ok"));
}

static void test_verify_duplicates(void **state)
{
	char buf[4096] = "";

	(void)state;
	/* Record 4 (ok, credential 2, serial AS102) claims record 1's
	 * credential, serial and uid. */
	sql("UPDATE records SET jcs = CAST(replace(replace(replace("
	    "CAST(jcs AS TEXT), '\"cred_index\":2,', '\"cred_index\":0,'),"
	    " 'AS102', 'AS100'), '\"uid\":\"a004\"', '\"uid\":\"a001\"')"
	    " AS BLOB) WHERE seq = 4");
	assert_int_equal(verify(buf, sizeof(buf)), -EBADMSG);
	assert_non_null(strstr(buf, "FAIL no credential index, serial"));
	assert_non_null(strstr(buf, "records 1 and 4 of job `WO-A' share a "
				    "credential index"));
	assert_non_null(strstr(buf, "share a serial"));
	assert_non_null(strstr(buf, "share a uid of an ok record"));
}

static void test_verify_checkpoint(void **state)
{
	char buf[4096] = "";

	(void)state;
	sql("UPDATE checkpoints SET nv_counter = 5 WHERE id = 1");
	assert_int_equal(verify(buf, sizeof(buf)), -EBADMSG);
	assert_non_null(strstr(buf, "FAIL nv_counter"));
	sql("UPDATE checkpoints SET root = zeroblob(32) WHERE id = 0");
	assert_int_equal(verify(buf, sizeof(buf)), -EBADMSG);
	assert_non_null(strstr(buf, "checkpoint 0: tree_size 4"));
}

/* stdout of `kinject audit ARGS --state dir` into buf; returns exit code. */
static int cli(const char *args, char *buf, size_t cap)
{
	char cmd[PATH_MAX + 256];
	size_t n;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s' audit %s --state '%s' 2>/dev/null",
		 kinject, args, dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(buf, 1, cap - 1, p);
	buf[n] = '\0';
	return WEXITSTATUS(pclose(p));
}

static void test_cli_export(void **state)
{
	static char buf[65536];
	json_error_t e;
	json_t *a;

	(void)state;
	if (access(kinject, X_OK)) {
		printf("no %s: skipping the CLI checks\n", kinject);
		skip();
	}
	assert_int_equal(cli("export --format json --kinds "
			     "job_start,device,job_end", buf, sizeof(buf)), 0);
	a = json_loads(buf, 0, &e);
	assert_non_null(a);
	assert_int_equal(json_array_size(a), 6);
	json_decref(a);
	/* The leaves verbatim, one per line, after the appliance's name. */
	assert_non_null(strstr(buf, "\n{\"ak_name\":\"\",\"record\":"
				    "{\"attempt\":null,\"batch\":"
				    "\"LOT, \\\"7\\\"\""));
	/* Device rows by default. */
	assert_int_equal(cli("export --format json", buf, sizeof(buf)), 0);
	a = json_loads(buf, 0, &e);
	assert_non_null(a);
	assert_int_equal(json_array_size(a), 4);
	json_decref(a);
	assert_int_equal(cli("export", buf, sizeof(buf)), 0);
	assert_int_equal(strncmp(buf, "ak_name,seq,time,kind,job,job_seq,",
				 34), 0);
	assert_non_null(strstr(buf, ",\"LOT, \"\"7\"\"\",op1,"));
	assert_non_null(strstr(buf, ",\"'=HYPERLINK(\"\"x\"\")\",2,a002,"));
	/* An unknown job is an error, not an empty file. */
	assert_int_equal(cli("export --job nope", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "");
	assert_int_equal(cli("verify", buf, sizeof(buf)), 0);
	assert_non_null(strstr(buf, "all checks passed"));
}

static unsigned rows(const char *csv)
{
	unsigned n = 0;

	for (; *csv; csv++)
		n += *csv == '\n';
	return n - 1; /* header */
}

static void test_cli_recall(void **state)
{
	static char buf[16384];

	(void)state;
	if (access(kinject, X_OK))
		skip();
	assert_int_equal(cli("recall --serial AS100", buf, sizeof(buf)), 0);
	assert_int_equal(rows(buf), 1);
	assert_non_null(strstr(buf, ",AS100,0,"));
	assert_int_equal(cli("recall --serial as100 --batch 'lot, \"7\"'", buf,
			     sizeof(buf)), 0);
	assert_int_equal(rows(buf), 1);
	assert_int_equal(cli("recall --firmware-sha256 "
			     "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1"
			     "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1",
			     buf, sizeof(buf)), 0);
	assert_int_equal(rows(buf), 2);
	assert_int_equal(cli("recall --all --firmware-version 3.1.5", buf,
			     sizeof(buf)), 0);
	assert_int_equal(rows(buf), 4);
	assert_int_equal(cli("recall --uid a002", buf, sizeof(buf)), 0);
	assert_int_equal(rows(buf), 0);
	assert_int_equal(cli("recall --all --uid a002", buf, sizeof(buf)), 0);
	assert_int_equal(rows(buf), 1);
	assert_int_equal(cli("recall --batch x --serial AS100", buf,
			     sizeof(buf)), 0);
	assert_int_equal(rows(buf), 0);
	assert_int_equal(cli("recall --serial x --serial y", buf, sizeof(buf)),
			 2);
	assert_int_equal(cli("recall", buf, sizeof(buf)), 2);
	assert_int_equal(cli("recall --firmware-sha256 F1", buf, sizeof(buf)),
			 2);
	assert_int_equal(cli("export --all", buf, sizeof(buf)), 2);
}

/* The report of a long job lists the ends of its checkpoints, and how
 * many there are; the page stays small however long the job ran. */
static void test_cli_report_long(void **state)
{
	static char buf[65536];
	struct kj_journal *j;
	char path[160];
	size_t n;

	struct kj_job_desc d = {
		.job = "WO-L", .customer = "acme", .product = "acme-sensor",
		.batch = "L", .operator_id = "op1", .quantity = 1,
		.fw_version = "3.1.5", .serial_prefix = "AS",
		.serial_start = 100, .creds = creds, .n_creds = 16,
	};

	(void)state;
	if (access(kinject, X_OK))
		skip();
	/* A second job quoted after each of its 30 records. */
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	for (unsigned i = 0; i < 30; i++) {
		device(j, 10 + i, KJ_RES_LOCKED_OUT);
		assert_int_equal(kj_journal_commit(j), 0);
		add_checkpoint(j, 100 + i);
		assert_int_equal(kj_journal_commit(j), 0);
	}
	kj_journal_close(j);
	snprintf(path, sizeof(path), "report --job WO-L --out %s/r.html", dir);
	assert_int_equal(cli(path, buf, sizeof(buf)), 0);
	snprintf(path, sizeof(path), "%s/r.html", dir);
	assert_true(kj_test_slurp(path, buf, sizeof(buf)) > 0);
	/* 30 checkpoints cover the job: 10 rows, "10 more", 10 rows. */
	assert_non_null(strstr(buf, "<p>30 checkpoints."));
	assert_non_null(strstr(buf, "&#8230; 10 more, every one in the "
				    "evidence bundle"));
	n = 0;
	for (char *p = buf; (p = strstr(p, "<td class=\"mono\">")); p++)
		n++;
	assert_int_equal(n, 20);
}

/*
 * A real job with real quotes (swtpm, the keeper's checkpoint code): audit
 * verify checks every quote against DIR/ak.pub and the replayed event log;
 * a flipped byte of a quote or an edited event log entry is caught.
 */
static void test_cli_verify_quotes(void **state)
{
	static char buf[16384];
	struct test_swtpm sw;
	struct ej_opts o = { .dir = dir, .n_devices = 120, .every = 40 };
	struct ej_result res;
	char sub[sizeof(dir)];

	(void)state;
	if (access(kinject, X_OK) || test_swtpm_start(&sw, 0)) {
		printf("no swtpm or no binary: skipping the quote checks\n");
		skip();
	}
	assert_true(strlen(dir) + 3 <= sizeof(sub));
	strcpy(sub, dir);
	strcat(sub, "/q");
	o.dir = sub;
	o.tcti = sw.tcti;
	assert_int_equal(ej_make_job(&o, &res), 0);
	test_swtpm_stop(&sw);
	strcpy(dir, sub); /* cli() and sql() use dir */
	assert_int_equal(cli("verify", buf, sizeof(buf)), 0);
	assert_non_null(strstr(buf, "ok   quotes"));
	assert_null(strstr(buf, "skip quotes"));
	sql("UPDATE event_log SET digest = zeroblob(32) WHERE id = 0");
	assert_int_equal(cli("verify", buf, sizeof(buf)), 1);
	assert_non_null(strstr(buf, "FAIL quotes"));
	*strrchr(dir, '/') = '\0'; /* teardown removes the parent */
}

/* SPEC §4: records no quote covers fail audit verify, saying how many and
 * from which seq. */
static void test_verify_uncovered(void **state)
{
	char buf[4096] = "";

	(void)state;
	sql("DELETE FROM checkpoints WHERE id = 1");
	assert_int_equal(verify(buf, sizeof(buf)), -EBADMSG);
	assert_non_null(strstr(buf, "FAIL records covered by a checkpoint: "
				    "2 record(s) from seq 4 are not covered"));
	sql("DELETE FROM checkpoints WHERE id = 0");
	assert_int_equal(verify(buf, sizeof(buf)), -EBADMSG);
	assert_non_null(strstr(buf, "no checkpoint at all"));
}

/* EVIDENCE.md §2: an ok withdrawn, the device done again: the uid is not a
 * duplicate, the attempt counts once (as failed), job_end agrees. */
static void test_verify_withdrawn(void **state)
{
	struct kj_job_desc d = {
		.job = "WO-W", .customer = "acme", .product = "acme-sensor",
		.batch = "LOT-8", .operator_id = "op1", .quantity = 2,
		.fw_version = "3.1.5", .serial_prefix = "AS",
		.serial_start = 500, .creds = creds, .n_creds = 16,
	};
	struct kj_job_state js;
	struct kj_journal *j;
	char buf[4096] = "";
	uint64_t a;

	(void)state;
	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	assert_int_equal(kj_journal_job_begin(j, &d, NULL), 0);
	a = device(j, 1, KJ_RES_OK);
	assert_int_equal(kj_journal_uid_done(j, (const uint8_t *)"\xa0\x01",
					     2), 1);
	assert_int_equal(kj_journal_withdraw(j, a, NULL, NULL, NULL), 0);
	assert_int_equal(kj_journal_withdraw(j, a, NULL, NULL, NULL),
			 -EALREADY);
	/* The uid may come again; the unit of quantity is free. */
	assert_int_equal(kj_journal_uid_done(j, (const uint8_t *)"\xa0\x01",
					     2), 0);
	kj_journal_job_state(j, &js);
	assert_int_equal(js.ok_count, 0);
	assert_int_equal(js.failed_after_offer, 1);
	device(j, 1, KJ_RES_OK);
	device(j, 2, KJ_RES_OK);
	assert_int_equal(kj_journal_job_end(j, NULL, NULL, NULL), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	add_checkpoint(j, 11);
	assert_int_equal(kj_journal_commit(j), 0);
	kj_journal_close(j);
	assert_int_equal(verify(buf, sizeof(buf)), 0);
	assert_null(strstr(buf, "FAIL"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_verify_honest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_verify_tampered_record,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_noncanonical,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_job_counts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_verify_duplicates, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_verify_checkpoint, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_export, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_report_long, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_recall, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_verify_quotes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_verify_uncovered, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_verify_withdrawn, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
