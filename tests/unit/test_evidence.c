// SPDX-License-Identifier: Apache-2.0
/*
 * evidence.c, evidence_parse.c, verify*.c: a real job (swtpm, journal,
 * pipelined checkpoints) exported, parsed and verified in process; strict
 * parsing (duplicates, unknown keys, non-canonical base64/hex, bounds).
 *
 * Also the state maker for tests/integration/evidence_*.sh (a real job's
 * state until `kinject run` makes them):
 *   test_evidence make-state DIR TCTI N EVERY [PCR_MASK [QUANTITY [JOB]]]
 * writes DIR/ (the state) and DIR/WO.json, prints "records checkpoints".
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
#include "evidence/evidence.h"
#include "evidence/evidence_int.h"
#include "evidence/verify.h"
#include "evidence_job.h"
#include "swtpm_helper.h"

static struct test_swtpm sw;
static char state[128], bundle[160], wo_path[160];

static int setup(void **st)
{
	struct ej_opts o = { .n_devices = 500, .every = 100 };
	struct ej_result r;

	(void)st;
	/* With EK certificates: the bundle carries the EK's. */
	if (test_swtpm_start(&sw, 1) < 0) {
		fprintf(stderr, "cannot start swtpm (tests/lib/swtpm.sh)\n");
		return -1;
	}
	snprintf(state, sizeof(state), "%s/state", sw.dir);
	snprintf(bundle, sizeof(bundle), "%s/evidence.json", sw.dir);
	snprintf(wo_path, sizeof(wo_path), "%s/WO.json", sw.dir);
	o.dir = state;
	o.tcti = sw.tcti;
	o.wo_path = wo_path;
	return ej_make_job(&o, &r) < 0 ? -1 : 0;
}

static int teardown(void **st)
{
	(void)st;
	test_swtpm_stop(&sw);
	return 0;
}

static void test_base64(void **st)
{
	uint8_t *out;
	size_t len;

	(void)st;
	assert_int_equal(kj_base64_decode("AAEC", 4, &out, &len), 0);
	assert_int_equal(len, 3);
	free(out);
	assert_int_equal(kj_base64_decode("AAE=", 4, &out, &len), 0);
	assert_int_equal(len, 2);
	free(out);
	/* non-canonical: stray bits in the last symbol, whitespace, length */
	assert_int_equal(kj_base64_decode("AAF=", 4, &out, &len), -EINVAL);
	assert_int_equal(kj_base64_decode("AA E", 4, &out, &len), -EINVAL);
	assert_int_equal(kj_base64_decode("AAE", 3, &out, &len), -EINVAL);
}

static int load_bundle(struct kj_evidence *ev, const char *path)
{
	uint8_t *buf;
	size_t len;
	int rc;

	assert_int_equal(kj_read_file(path, KJ_EVIDENCE_FILE_MAX, &buf, &len),
			 0);
	rc = kj_evidence_parse(buf, len, path, ev);
	free(buf);
	return rc;
}

static void test_export_verify(void **st)
{
	struct kj_verify_report rep;
	struct kj_verify_opts o = { 0 };
	struct kj_work_order wo;
	struct kj_evidence ev;
	char path[200];

	(void)st;
	assert_int_equal(kj_evidence_export(state, "WO-2027-0315", bundle), 0);
	assert_int_equal(load_bundle(&ev, bundle), 0);
	assert_int_equal(ev.n_records, 502);
	assert_true(ev.n_checkpoints >= 2);
	assert_int_equal(ev.n_consistency, ev.n_checkpoints - 1);
	assert_string_equal(ev.secret_memory, "mlock");
	/* No image init measured the code: the job did, and says so. */
	assert_string_equal(ev.code_measured_by, "self");
	assert_null(ev.transport_cert_pem);
	assert_non_null(ev.ek_cert_pem);
	assert_non_null(strstr(ev.ek_cert_pem, "-----BEGIN CERTIFICATE-----"));
	snprintf(path, sizeof(path), "%s/ak.pem", state);
	o.ak = kj_pubkey_read_pem(path);
	assert_non_null(o.ak);
	assert_int_equal(kj_work_order_load(wo_path, &wo), 0);
	o.wo = &wo;
	assert_int_equal(kj_verify(&ev, &o, &rep), 0);
	for (int c = 0; c < KJ_VC_GOLDEN; c++)
		assert_int_equal(rep.check[c].status, KJ_VS_PASS);
	assert_int_equal(rep.check[KJ_VC_GOLDEN].status, KJ_VS_SKIPPED);
	assert_int_equal(rep.n_ok, 490);
	assert_true(rep.ended);
	kj_verify_report_free(&rep);
	/* One flipped bit of one record: inclusion names it, and --json
	 * lists it. */
	ev.records[7].jcs[20] ^= 1;
	assert_int_equal(kj_verify(&ev, &o, &rep), -EBADMSG);
	assert_int_equal(rep.check[KJ_VC_INCLUSION].status, KJ_VS_FAIL);
	assert_non_null(strstr(rep.check[KJ_VC_INCLUSION].detail,
			       "record 7 "));
	assert_int_equal(json_integer_value(json_array_get(json_object_get(
		rep.check[KJ_VC_INCLUSION].json, "failing_records"), 0)), 7);
	kj_verify_report_free(&rep);
	kj_work_order_free(&wo);
	EVP_PKEY_free(o.ak);
	kj_evidence_free(&ev);
	/* A job with no record; a state without its ak.pem. */
	assert_int_equal(kj_evidence_export(state, "WO-none", bundle), -ENOENT);
	assert_int_equal(test_sh("mv %s/ak.pem %s/ak.pem.x", state, state), 0);
	assert_true(kj_evidence_export(state, "WO-2027-0315", bundle) < 0);
	assert_int_equal(test_sh("mv %s/ak.pem.x %s/ak.pem", state, state), 0);
	assert_int_equal(kj_evidence_export(state, "WO-2027-0315", bundle), 0);
}

static int parse_str(const char *s)
{
	struct kj_evidence ev;
	int rc = kj_evidence_parse((const uint8_t *)s, strlen(s), "t.json",
				   &ev);

	if (!rc)
		kj_evidence_free(&ev);
	return rc;
}

static void test_parse_strict(void **st)
{
	static const char app_f[] =
		"\"appliance\":{\"ak_public_pem\":\"x\",\"ak_public\":\"AAEC\","
		"\"ak_name\":\"000b0000000000000000000000000000000000000000000000000000000000000000\","
		"\"ek_certificate_pem\":null,\"transport_cert_pem\":null,"
		"\"secret_memory\":\"kmod\",\"code_measured_by\":\"%s\","
		"\"ceremony_transcript\":null,\"tpm_orderly_count\":255}";
	static const char ck[] =
		"\"checkpoints\":[{\"tree_size\":1,\"root\":\"%s\",\"nv_counter\":1,"
		"\"epoch\":0,\"event_log_length\":0,\"quote_attest\":\"AAEC\","
		"\"quote_signature\":\"AAEC\",\"pcrs\":{\"%s\":\"%s\"}}]";
	const char *z = "0000000000000000000000000000000000000000000000000000000000000000";
	char doc[4096], cks[1024], app[512];

	(void)st;
	snprintf(app, sizeof(app), app_f, "kernel");
	snprintf(cks, sizeof(cks), ck, z, "13", z);
	snprintf(doc, sizeof(doc),
		 "{\"kinject_evidence\":1,%s,\"event_log\":[],%s,"
		 "\"records\":[{\"leaf_index\":0,\"checkpoint\":0,\"record\":\"{}\",\"inclusion\":[]}],"
		 "\"consistency\":[]}", app, cks);
	assert_int_equal(parse_str(doc), -EBADMSG); /* neither boot nor self */
	snprintf(app, sizeof(app), app_f, "boot");
	snprintf(doc, sizeof(doc),
		 "{\"kinject_evidence\":1,%s,\"event_log\":[],%s,"
		 "\"records\":[{\"leaf_index\":0,\"checkpoint\":0,\"record\":\"{}\",\"inclusion\":[]}],"
		 "\"consistency\":[]}", app, cks);
	assert_int_equal(parse_str(doc), 0);
	/* a duplicate key */
	snprintf(doc, sizeof(doc),
		 "{\"kinject_evidence\":1,\"kinject_evidence\":1,%s,\"event_log\":[],%s,"
		 "\"records\":[],\"consistency\":[]}", app, cks);
	assert_int_equal(parse_str(doc), -EBADMSG);
	/* an unknown key */
	snprintf(doc, sizeof(doc),
		 "{\"kinject_evidence\":1,\"x\":1,%s,\"event_log\":[],%s,"
		 "\"records\":[],\"consistency\":[]}", app, cks);
	assert_int_equal(parse_str(doc), -EBADMSG);
	/* uppercase hex, PCR key "013", checkpoint index out of range */
	snprintf(cks, sizeof(cks), ck, "AA00000000000000000000000000000000000000000000000000000000000000", "13", z);
	snprintf(doc, sizeof(doc),
		 "{\"kinject_evidence\":1,%s,\"event_log\":[],%s,"
		 "\"records\":[{\"leaf_index\":0,\"checkpoint\":0,\"record\":\"{}\",\"inclusion\":[]}],"
		 "\"consistency\":[]}", app, cks);
	assert_int_equal(parse_str(doc), -EBADMSG);
	snprintf(cks, sizeof(cks), ck, z, "013", z);
	snprintf(doc, sizeof(doc),
		 "{\"kinject_evidence\":1,%s,\"event_log\":[],%s,"
		 "\"records\":[{\"leaf_index\":0,\"checkpoint\":0,\"record\":\"{}\",\"inclusion\":[]}],"
		 "\"consistency\":[]}", app, cks);
	assert_int_equal(parse_str(doc), -EBADMSG);
	snprintf(cks, sizeof(cks), ck, z, "13", z);
	snprintf(doc, sizeof(doc),
		 "{\"kinject_evidence\":1,%s,\"event_log\":[],%s,"
		 "\"records\":[{\"leaf_index\":0,\"checkpoint\":1,\"record\":\"{}\",\"inclusion\":[]}],"
		 "\"consistency\":[]}", app, cks);
	assert_int_equal(parse_str(doc), -EBADMSG);
	/* trailing data */
	assert_int_equal(parse_str("{} {}"), -EBADMSG);
}

/* The streamed loader gives the records the in-memory parser gives, and
 * the same verdict (issue 12: kinject verify streams). */
static void test_stream(void **st)
{
	struct kj_verify_opts o = { 0 };
	struct kj_evidence mem, ev;
	struct kj_verify_report rep;
	struct kj_ev_record r;
	char path[200];
	size_t i = 0;
	int rc;

	(void)st;
	assert_int_equal(kj_evidence_export(state, "WO-2027-0315", bundle), 0);
	assert_int_equal(load_bundle(&mem, bundle), 0);
	assert_int_equal(kj_evidence_load(bundle, &ev), 0);
	assert_int_equal(ev.n_checkpoints, mem.n_checkpoints);
	assert_int_equal(ev.n_records, 0);
	while ((rc = kj_evidence_next_record(&ev, &r)) > 0) {
		const struct kj_ev_record *m = &mem.records[i++];

		assert_true(i <= mem.n_records);
		assert_int_equal(r.leaf_index, m->leaf_index);
		assert_int_equal(r.checkpoint, m->checkpoint);
		assert_int_equal(r.jcs_len, m->jcs_len);
		assert_string_equal(r.jcs, m->jcs);
		assert_int_equal(r.proof_len, m->proof_len);
		assert_memory_equal(r.proof, m->proof, 32 * r.proof_len);
		kj_ev_record_release(&r);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(i, mem.n_records);
	/* "consistency" follows the records: parsed at their end. */
	assert_int_equal(ev.n_consistency, mem.n_consistency);
	kj_evidence_free(&ev);
	snprintf(path, sizeof(path), "%s/ak.pem", state);
	o.ak = kj_pubkey_read_pem(path);
	assert_non_null(o.ak);
	assert_int_equal(kj_evidence_load(bundle, &ev), 0);
	assert_int_equal(kj_verify(&ev, &o, &rep), 0);
	assert_int_equal(rep.n_records, mem.n_records);
	assert_int_equal(rep.n_ok, 490);
	kj_verify_report_free(&rep);
	kj_evidence_free(&ev);
	kj_evidence_free(&mem);
	EVP_PKEY_free(o.ak);
}

/* evidence_fast.c takes a record element only when jansson and
 * kj_ev_parse_record would give exactly the same. */
static void check_fast(const char *doc, int want)
{
	struct kj_ev_record a, b;
	json_t *o;
	int rc;

	rc = kj_ev_fast_record((const uint8_t *)doc, strlen(doc), 2, &a);
	assert_int_equal(rc, want);
	if (rc)
		return;
	o = json_loads(doc, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(o);
	assert_int_equal(kj_ev_parse_record(o, "t.json", 0, 2, &b), 0);
	json_decref(o);
	assert_int_equal(a.leaf_index, b.leaf_index);
	assert_int_equal(a.checkpoint, b.checkpoint);
	assert_string_equal(a.jcs, b.jcs);
	assert_int_equal(a.jcs_len, b.jcs_len);
	assert_int_equal(a.proof_len, b.proof_len);
	if (a.proof_len)
		assert_memory_equal(a.proof, b.proof, 32 * a.proof_len);
	else
		assert_null(a.proof);
	kj_ev_record_release(&a);
	kj_ev_record_release(&b);
}

static void test_fast_record(void **st)
{
	/* 1: not the plain form (jansson decides) */
	static const struct { const char *doc; int fast; } cases[] = {
		{ "{\"leaf_index\":3,\"checkpoint\":0,\"record\":\"{\\\"a\\\":1}\",\"inclusion\":[]}", 0 },
		{ "{\"leaf_index\":3,\"checkpoint\":0,\"record\":\"a\\nb\",\"inclusion\":[]}", 1 },
		{ "{\"leaf_index\":3,\"checkpoint\":0,\"record\":\"\\u0041\",\"inclusion\":[]}", 1 },
		{ "{\"leaf_index\":03,\"checkpoint\":0,\"record\":\"a\",\"inclusion\":[]}", 1 },
		{ "{\"leaf_index\":3.0,\"checkpoint\":0,\"record\":\"a\",\"inclusion\":[]}", 1 },
		{ "{\"leaf_index\":3,\"leaf_index\":3,\"checkpoint\":0,\"record\":\"a\",\"inclusion\":[]}", 1 },
		{ "{\"leaf_index\":3,\"checkpoint\":2,\"record\":\"a\",\"inclusion\":[]}", 1 },
		{ "{\"leaf_index\":3,\"checkpoint\":0,\"record\":\"a\",\"x\":1,\"inclusion\":[]}", 1 },
		{ "{\"leaf_index\":3,\"checkpoint\":0,\"record\":\"a\"}", 1 },
		{ "{\"leaf_index\":3,\"checkpoint\":0,\"record\":\"\xc3\xa9\",\"inclusion\":[]}", 1 },
	};
	const char *h = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	char doc[512];

	(void)st;
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++)
		check_fast(cases[c].doc, cases[c].fast);
	snprintf(doc, sizeof(doc), "{ \"inclusion\" : [\"%s\", \"%s\"] , \"record\":\"x\\\\y\",\"checkpoint\":1,\"leaf_index\":0 }",
		 h, h);
	check_fast(doc, 0);
	snprintf(doc, sizeof(doc), "{\"leaf_index\":3,\"checkpoint\":0,\"record\":\"a\",\"inclusion\":[\"%.62sAA\"]}",
		 h);
	check_fast(doc, 1);
}

static int make_state(int argc, char **argv)
{
	struct ej_opts o = { 0 };
	struct ej_result r;
	uint64_t n, every, mask = 0, qty = 0;
	char wo[512];

	if (argc < 6 || kj_parse_u64(argv[4], 1, 10000000, "N", &n) < 0 ||
	    kj_parse_u64(argv[5], 0, 10000000, "EVERY", &every) < 0 ||
	    (argc > 6 && kj_parse_u64(argv[6], 0, 0xffffff, "PCR_MASK",
				      &mask) < 0) ||
	    (argc > 7 && kj_parse_u64(argv[7], 0, 10000000, "QUANTITY",
				      &qty) < 0)) {
		fprintf(stderr, "usage: %s make-state DIR TCTI N EVERY [PCR_MASK [QUANTITY [JOB]]]\n",
			argv[0]);
		return 2;
	}
	snprintf(wo, sizeof(wo), "%s/WO.json", argv[2]);
	o.dir = argv[2];
	o.tcti = argv[3];
	o.wo_path = wo;
	o.n_devices = (unsigned)n;
	o.every = (unsigned)every;
	o.pcr_mask = (uint32_t)mask;
	o.quantity = qty;
	o.job = argc > 8 ? argv[8] : NULL;
	/* Integration tests make several states on one TPM. */
	o.officers_fresh = true;
	if (ej_make_job(&o, &r) < 0)
		return 1;
	printf("%llu %llu %llu %llu\n", (unsigned long long)r.records,
	       (unsigned long long)r.checkpoints,
	       (unsigned long long)r.quote_ms_total,
	       (unsigned long long)r.quote_ms_max);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_export_verify),
		cmocka_unit_test(test_parse_strict),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_fast_record),
	};

	if (argc > 1 && !strcmp(argv[1], "make-state"))
		return make_state(argc, argv);
	return cmocka_run_group_tests(tests, setup, teardown);
}
