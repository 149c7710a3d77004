// SPDX-License-Identifier: Apache-2.0
/*
 * Records and their JCS bytes (EVIDENCE.md §2, RFC 8785).  The golden
 * vectors were written by hand from the RFC 8785 rules (keys sorted by
 * UTF-16 code units, no whitespace, decimal integers, \" \\ \b \f \n \r \t
 * and \u00xx for other controls, "/" and non-ASCII verbatim) and
 * cross-checked with an independent serialiser (Python json.dumps with
 * sort_keys, compact separators, ensure_ascii=False).  They are the leaf
 * bytes of the transparency log: a change here breaks every old evidence
 * bundle, so it must be deliberate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/record.h"

/* 606 bytes */
static const char GOLDEN_START[] =
	"{\"attempt\":null,\"batch\":\"LOT-2027-0315\",\"cert_sha256"
	"\":null,\"cred_index\":null,\"customer\":\"acme\",\"failed_c"
	"ount\":null,\"fw_sha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"fw_version\":\"3.1.5\","
	"\"hwrev\":null,\"job\":\"WO-2027-0315\",\"job_seq\":0,\"kind"
	"\":\"job_start\",\"ok_count\":null,\"operator\":\"Zo\xc3"
	"\xab"
	" \\\"op\\\"\\t\\u0001/\\\\\",\"product\":\"acme-sensor\",\"q"
	"uantity\":10000,\"readback\":null,\"result\":null,\"seq\":0,"
	"\"serial\":null,\"site\":null,\"site_code\":null,\"socket\":"
	"null,\"time\":\"2026-11-24T10:00:00.123Z\",\"uid\":null,\"v"
	"\":1,\"work_order_sha256\":\"000102030405060708090a0b0c0d0e0"
	"f101112131415161718191a1b1c1d1e1f\"}";
/* 672 bytes */
static const char GOLDEN_DEVICE_OK[] =
	"{\"attempt\":77,\"batch\":\"LOT-2027-0315\",\"cert_sha256\":"
	"\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	"cccccc\",\"cred_index\":39,\"customer\":\"acme\",\"failed_co"
	"unt\":null,\"fw_sha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"fw_version\":\"3.1.5\","
	"\"hwrev\":\"B\",\"job\":\"WO-2027-0315\",\"job_seq\":40,\"ki"
	"nd\":\"device\",\"ok_count\":null,\"operator\":\"Zo\xc3"
	"\xab"
	" \\\"op\\\"\\t\\u0001/\\\\\",\"product\":\"acme-sensor\",\"q"
	"uantity\":null,\"readback\":\"dddddddddddddddddddddddddddddd"
	"dddddddddddddddddddddddddddddddddd\",\"result\":\"ok\",\"seq"
	"\":41,\"serial\":\"AS10039\",\"site\":\"line1-a\",\"site_cod"
	"e\":null,\"socket\":3,\"time\":\"2026-11-24T10:00:01.007Z\","
	"\"uid\":\"00ff10\",\"v\":1,\"work_order_sha256\":null}";
/* 625 bytes */
static const char GOLDEN_DEVICE_ABORT[] =
	"{\"attempt\":78,\"batch\":\"LOT-2027-0315\",\"cert_sha256\":"
	"\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	"cccccc\",\"cred_index\":40,\"customer\":\"acme\",\"failed_co"
	"unt\":null,\"fw_sha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"fw_version\":\"3.1.5\","
	"\"hwrev\":\"C\xe2"
	"\x82"
	"\xac"
	"\xf0"
	"\x9f"
	"\x98"
	"\x80"
	"\",\"job\":\"WO-2027-0315\",\"job_seq\":41,\"kind\":\"device"
	"\",\"ok_count\":null,\"operator\":\"Zo\xc3"
	"\xab"
	" \\\"op\\\"\\t\\u0001/\\\\\",\"product\":\"acme-sensor\",\"q"
	"uantity\":null,\"readback\":null,\"result\":\"site_abort\","
	"\"seq\":42,\"serial\":\"AS10040\",\"site\":\"line1-b\",\"sit"
	"e_code\":1234,\"socket\":65535,\"time\":\"2026-11-24T10:00:0"
	"1.999Z\",\"uid\":\"ab\",\"v\":1,\"work_order_sha256\":null}";
/* 496 bytes */
static const char GOLDEN_END[] =
	"{\"attempt\":null,\"batch\":\"LOT-2027-0315\",\"cert_sha256"
	"\":null,\"cred_index\":null,\"customer\":\"acme\",\"failed_c"
	"ount\":7,\"fw_sha256\":null,\"fw_version\":null,\"hwrev\":nu"
	"ll,\"job\":\"WO-2027-0315\",\"job_seq\":2,\"kind\":\"job_end"
	"\",\"ok_count\":10000,\"operator\":\"Zo\xc3"
	"\xab"
	" \\\"op\\\"\\t\\u0001/\\\\\",\"product\":\"acme-sensor\",\"q"
	"uantity\":null,\"readback\":null,\"result\":\"completed\",\""
	"seq\":9007199254740991,\"serial\":null,\"site\":null,\"site_"
	"code\":null,\"socket\":null,\"time\":\"2026-11-24T10:00:02.0"
	"00Z\",\"uid\":null,\"v\":1,\"work_order_sha256\":null}";

#define OPERATOR "Zo\xc3\xab \"op\"\t\x01/\\"

static void common(struct kj_record *r)
{
	memset(r, 0, sizeof(*r));
	r->job = "WO-2027-0315";
	r->customer = "acme";
	r->product = "acme-sensor";
	r->batch = "LOT-2027-0315";
	r->operator_id = OPERATOR;
	r->fw_version = "3.1.5";
	memset(r->fw_sha256, 0xaa, 32);
}

static void make_start(struct kj_record *r)
{
	common(r);
	r->kind = KJ_REC_JOB_START;
	r->seq = 0;
	r->job_seq = 0;
	r->time_ms = 1795514400123ull;
	for (int i = 0; i < 32; i++)
		r->work_order_sha256[i] = (uint8_t)i;
	r->quantity = 10000;
	/* Fields of other kinds: must come out null whatever they hold. */
	r->site = "ignored";
	r->uid_len = 3;
	r->ok_count = 5;
	r->has_attempt = true;
	r->attempt = 9;
}

static void make_device_ok(struct kj_record *r)
{
	common(r);
	r->kind = KJ_REC_DEVICE;
	r->seq = 41;
	r->job_seq = 40;
	r->time_ms = 1795514401007ull;
	r->site = "line1-a";
	r->socket = 3;
	r->uid[0] = 0x00;
	r->uid[1] = 0xff;
	r->uid[2] = 0x10;
	r->uid_len = 3;
	r->hwrev = "B";
	r->has_attempt = true;
	r->attempt = 77;
	r->serial = "AS10039";
	r->has_cred = true;
	r->cred_index = 39;
	memset(r->cert_sha256, 0xcc, 32);
	r->has_readback = true;
	memset(r->readback, 0xdd, 32);
	r->result = KJ_RES_OK;
	r->site_code = 99; /* not site_abort: null */
	r->quantity = 3;   /* not job_start: null */
}

static void make_device_abort(struct kj_record *r)
{
	common(r);
	r->kind = KJ_REC_DEVICE;
	r->seq = 42;
	r->job_seq = 41;
	r->time_ms = 1795514401999ull;
	r->site = "line1-b";
	r->socket = 65535;
	r->uid[0] = 0xab;
	r->uid_len = 1;
	r->hwrev = "C\xe2\x82\xac\xf0\x9f\x98\x80";
	r->has_attempt = true;
	r->attempt = 78;
	r->serial = "AS10040";
	r->has_cred = true;
	r->cred_index = 40;
	memset(r->cert_sha256, 0xcc, 32);
	r->result = KJ_RES_SITE_ABORT;
	r->site_code = 1234;
}

static void make_end(struct kj_record *r)
{
	common(r);
	r->kind = KJ_REC_JOB_END;
	r->seq = KJ_RECORD_INT_MAX;
	r->job_seq = 2;
	r->time_ms = 1795514402000ull;
	r->result = KJ_RES_COMPLETED;
	r->ok_count = 10000;
	r->failed_count = 7;
}

static char buf[KJ_RECORD_MAX];

static void check_golden(void (*make)(struct kj_record *), const char *want)
{
	struct kj_record r, p;
	int n;

	make(&r);
	n = kj_record_serialize(&r, buf, sizeof(buf));
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, strlen(want));
	/* Parse back and serialise again: the same bytes. */
	assert_int_equal(kj_record_parse(want, strlen(want), &p), 0);
	n = kj_record_serialize(&p, buf, sizeof(buf));
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, strlen(want));
	assert_int_equal(p.kind, r.kind);
	assert_int_equal(p.seq, r.seq);
	assert_int_equal(p.time_ms, r.time_ms);
	assert_string_equal(p.operator_id, OPERATOR);
	kj_record_release(&p);
}

static void test_golden_job_start(void **state)
{
	(void)state;
	check_golden(make_start, GOLDEN_START);
}

static void test_golden_device_ok(void **state)
{
	(void)state;
	check_golden(make_device_ok, GOLDEN_DEVICE_OK);
}

static void test_golden_device_abort(void **state)
{
	struct kj_record p;

	(void)state;
	check_golden(make_device_abort, GOLDEN_DEVICE_ABORT);
	assert_int_equal(kj_record_parse(GOLDEN_DEVICE_ABORT,
					 strlen(GOLDEN_DEVICE_ABORT), &p), 0);
	assert_int_equal(p.result, KJ_RES_SITE_ABORT);
	assert_int_equal(p.site_code, 1234);
	assert_int_equal(p.socket, 65535);
	assert_int_equal(p.uid_len, 1);
	assert_int_equal(p.uid[0], 0xab);
	assert_string_equal(p.hwrev, "C\xe2\x82\xac\xf0\x9f\x98\x80");
	assert_false(p.has_readback);
	assert_true(p.has_cred);
	assert_int_equal(p.cred_index, 40);
	kj_record_release(&p);
}

static void test_golden_job_end(void **state)
{
	(void)state;
	check_golden(make_end, GOLDEN_END);
}

/* Replace the first `from` in src by `to` and expect the parser to refuse. */
static void refuse_edit(const char *src, const char *from, const char *to)
{
	const char *at = strstr(src, from);
	struct kj_record p;
	char *m;
	size_t n;

	assert_non_null(at);
	n = strlen(src) - strlen(from) + strlen(to);
	m = malloc(n + 1);
	assert_non_null(m);
	memcpy(m, src, (size_t)(at - src));
	memcpy(m + (at - src), to, strlen(to));
	strcpy(m + (at - src) + strlen(to), at + strlen(from));
	if (kj_record_parse(m, n, &p) == 0)
		fail_msg("accepted: %s", m);
	assert_null(p.owned_);
	free(m);
}

static void test_parse_rejects(void **state)
{
	const char *s = GOLDEN_DEVICE_OK, *a = GOLDEN_DEVICE_ABORT;

	(void)state;
	refuse_edit(s, "{", "{ ");                       /* whitespace */
	refuse_edit(s, ",\"batch\"", ", \"batch\"");
	refuse_edit(s, "}", "}\n");                      /* trailing */
	refuse_edit(s, "\"attempt\":77,", "");           /* missing key */
	refuse_edit(s, "\"attempt\":77,\"batch\":\"LOT-2027-0315\"",
		    "\"batch\":\"LOT-2027-0315\",\"attempt\":77"); /* order */
	refuse_edit(s, "\"attempt\":77", "\"attempt\":077");  /* leading 0 */
	refuse_edit(s, "\"attempt\":77", "\"attempt\":77.0");
	refuse_edit(s, "\"attempt\":77", "\"attempt\":7.7e1");
	refuse_edit(s, "\"attempt\":77", "\"attempt\":-77");
	refuse_edit(s, "\"attempt\":77", "\"attempt\":\"77\"");
	refuse_edit(s, "\"attempt\":77", "\"attempt\":9007199254740992");
	refuse_edit(s, "\"attempt\":77", "\"attempt\":null"); /* ok needs it */
	refuse_edit(s, "\"cccc", "\"CCCC");              /* uppercase hex */
	refuse_edit(s, "\"uid\":\"00ff10\"", "\"uid\":\"00FF10\"");
	refuse_edit(s, "\"uid\":\"00ff10\"", "\"uid\":\"00ff1\"");
	refuse_edit(s, "\"uid\":\"00ff10\"", "\"uid\":\"\"");
	refuse_edit(s, "\"uid\":\"00ff10\"", "\"uid\":\"00ff1g\"");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":\"\\u0042\"");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":\"\\/\"");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":\"\\u0008\"");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":\"\\u0000\"");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":\"\\u001F\"");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":\"\x01\"");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":\"\xc0\x80\"");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":\"\xed\xa0\x80\"");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":\"\xf4\x90\x80\x80\"");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":null");
	refuse_edit(s, "\"hwrev\":\"B\"", "\"hwrev\":\"B");
	refuse_edit(s, "\\u0001", "\\U0001");
	refuse_edit(s, "\"v\":1", "\"v\":2");
	refuse_edit(s, "\"kind\":\"device\"", "\"kind\":\"devices\"");
	refuse_edit(s, "\"result\":\"ok\"", "\"result\":\"completed\"");
	refuse_edit(s, "\"result\":\"ok\"", "\"result\":\"OK\"");
	refuse_edit(s, "\"readback\":\"dd", "\"readback\":null,\"x\":\"dd");
	refuse_edit(s, "\"job_seq\":40", "\"job_seq\":0");
	/* A value where the kind has null, and null where it has a value. */
	refuse_edit(s, "\"quantity\":null", "\"quantity\":1");
	refuse_edit(s, "\"site_code\":null", "\"site_code\":5");
	refuse_edit(s, "\"readback\":\"dddddddddddddddddddddddddddddddd"
		       "dddddddddddddddddddddddddddddddd\"",
		    "\"readback\":null"); /* ok without readback */
	refuse_edit(s, "\"cred_index\":39", "\"cred_index\":null");
	refuse_edit(a, "\"site_code\":1234", "\"site_code\":null");
	refuse_edit(a, "\"site_code\":1234", "\"site_code\":65536");
	refuse_edit(a, "\"socket\":65535", "\"socket\":65536");
	refuse_edit(GOLDEN_START, "\"uid\":null", "\"uid\":\"ab\"");
	refuse_edit(GOLDEN_START, "\"job_seq\":0", "\"job_seq\":1");
	refuse_edit(GOLDEN_START, "\"result\":null", "\"result\":\"ok\"");
	refuse_edit(GOLDEN_START, "\"quantity\":10000", "\"quantity\":null");
	refuse_edit(GOLDEN_END, "\"fw_version\":null", "\"fw_version\":\"1\"");
	refuse_edit(GOLDEN_END, "\"result\":\"completed\"",
		    "\"result\":\"ok\"");
	/* Times: only the exact RFC 3339 UTC millisecond form. */
	refuse_edit(s, "01.007Z", "01.007+00:00");
	refuse_edit(s, "01.007Z", "01.07Z");
	refuse_edit(s, "01.007Z", "01.007z");
	refuse_edit(s, "2026-11-24", "2026-02-30");
	refuse_edit(s, "T10:00:01", "T24:00:01");
	refuse_edit(s, "T10:00:01", "t10:00:01");
}

static void test_parse_truncated(void **state)
{
	struct kj_record p;
	size_t n = strlen(GOLDEN_DEVICE_OK);

	(void)state;
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(kj_record_parse(GOLDEN_DEVICE_OK, i, &p),
				     0);
}

static void test_serialize_rejects(void **state)
{
	struct kj_record r;

	(void)state;
	make_device_ok(&r);
	r.attempt = KJ_RECORD_INT_MAX + 1;
	assert_int_equal(kj_record_serialize(&r, buf, sizeof(buf)), -EINVAL);
	make_device_ok(&r);
	r.site = "bad \xff utf-8";
	assert_int_equal(kj_record_serialize(&r, buf, sizeof(buf)), -EINVAL);
	make_device_ok(&r);
	r.hwrev = NULL;
	assert_int_equal(kj_record_serialize(&r, buf, sizeof(buf)), -EINVAL);
	make_device_ok(&r);
	r.uid_len = 0;
	assert_int_equal(kj_record_serialize(&r, buf, sizeof(buf)), -EINVAL);
	make_device_ok(&r);
	r.uid_len = 65;
	assert_int_equal(kj_record_serialize(&r, buf, sizeof(buf)), -EINVAL);
	make_device_ok(&r);
	r.result = KJ_RES_COMPLETED;
	assert_int_equal(kj_record_serialize(&r, buf, sizeof(buf)), -EINVAL);
	make_device_ok(&r);
	r.has_readback = false;
	assert_int_equal(kj_record_serialize(&r, buf, sizeof(buf)), -EINVAL);
	make_end(&r);
	r.job_seq = 0;
	assert_int_equal(kj_record_serialize(&r, buf, sizeof(buf)), -EINVAL);
	make_device_ok(&r);
	assert_int_equal(kj_record_serialize(&r, buf, 100), -EMSGSIZE);
	make_device_ok(&r);
	assert_int_equal(kj_record_serialize(&r, buf,
					     strlen(GOLDEN_DEVICE_OK)),
			 (int)strlen(GOLDEN_DEVICE_OK));
}

/* Every ASCII character takes its RFC 8785 §3.2.2.2 form and parses back. */
static void test_escapes(void **state)
{
	static const char *const want[32] = {
		"\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004",
		"\\u0005", "\\u0006", "\\u0007", "\\b", "\\t", "\\n",
		"\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010",
		"\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015",
		"\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a",
		"\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
	};
	struct kj_record r, p;
	char s[8], pat[32];
	int n;

	(void)state;
	for (int c = 1; c < 0x80; c++) {
		make_device_ok(&r);
		s[0] = 'x';
		s[1] = (char)c;
		s[2] = 'y';
		s[3] = '\0';
		r.hwrev = s;
		n = kj_record_serialize(&r, buf, sizeof(buf) - 1);
		assert_true(n > 0);
		buf[n] = '\0';
		if (c < 0x20)
			snprintf(pat, sizeof(pat), "\"hwrev\":\"x%sy\"", want[c]);
		else if (c == '"')
			snprintf(pat, sizeof(pat), "\"hwrev\":\"x\\\"y\"");
		else if (c == '\\')
			snprintf(pat, sizeof(pat), "\"hwrev\":\"x\\\\y\"");
		else
			snprintf(pat, sizeof(pat), "\"hwrev\":\"x%cy\"", c);
		if (!strstr(buf, pat))
			fail_msg("char 0x%02x: want %s in %s", c, pat, buf);
		assert_int_equal(kj_record_parse(buf, (size_t)n, &p), 0);
		assert_string_equal(p.hwrev, s);
		kj_record_release(&p);
	}
}

static void test_time(void **state)
{
	char t[KJ_RECORD_TIME_LEN + 1];
	uint64_t ms;

	(void)state;
	assert_int_equal(kj_record_format_time(1795514400123ull, t), 0);
	assert_string_equal(t, "2026-11-24T10:00:00.123Z");
	assert_int_equal(kj_record_format_time(0, t), 0);
	assert_string_equal(t, "1970-01-01T00:00:00.000Z");
	assert_int_equal(kj_record_parse_time(t, strlen(t), &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(kj_record_parse_time("2028-02-29T23:59:59.999Z", 24,
					      &ms), 0);
	assert_int_equal(kj_record_format_time(ms, t), 0);
	assert_string_equal(t, "2028-02-29T23:59:59.999Z");
	assert_int_not_equal(kj_record_parse_time("2027-02-29T00:00:00.000Z",
						  24, &ms), 0);
	assert_int_not_equal(kj_record_format_time(253402300800000ull, t), 0);
}

static void test_names(void **state)
{
	enum kj_result r;

	(void)state;
	assert_string_equal(kj_record_kind_name(KJ_REC_JOB_END), "job_end");
	assert_null(kj_record_kind_name((enum kj_record_kind)7));
	assert_int_equal(kj_result_from_name("site_abort", &r), 0);
	assert_int_equal(r, KJ_RES_SITE_ABORT);
	assert_int_equal(kj_result_from_name("nope", &r), -EINVAL);
	assert_true(kj_result_after_offer(KJ_RES_INTERRUPTED));
	assert_true(kj_result_after_offer(KJ_RES_READBACK));
	assert_false(kj_result_after_offer(KJ_RES_QUOTA));
	assert_false(kj_result_after_offer(KJ_RES_OK));
	for (int i = 1; i < KJ_RES_COUNT_; i++)
		assert_non_null(kj_result_name((enum kj_result)i));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_job_start),
		cmocka_unit_test(test_golden_device_ok),
		cmocka_unit_test(test_golden_device_abort),
		cmocka_unit_test(test_golden_job_end),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_serialize_rejects),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
