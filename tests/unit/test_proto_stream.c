// SPDX-License-Identifier: Apache-2.0
/*
 * Wire protocol streams (PROTOCOL.md): the parser fed in every chunking,
 * as the appliance and as a site, zero copy of DATA, and the DATA
 * header's errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/util.h"
#include "wire/proto.h"

#include "proto_feed.h"

/* ---- streaming, split feeds ---- */

static void test_appliance_stream_split(void **state)
{
	static const size_t steps[] = { 0, 1, 2, 5, 7, 64, 653 };
	uint8_t in[2048], body[700], d[32];
	struct kj_hello hh = { .version = 1, .socket = 3, .uid_len = 64,
			       .pubkey_len = 65 };
	size_t n = 0;
	int rc;

	(void)state;
	memset(hh.site_id, 'x', 255);
	memset(hh.hwrev, 'y', 255);
	memset(hh.uid, 0xee, 64);
	memset(hh.pubkey, 0x33, 65);
	hh.pubkey[0] = 0x04;
	rc = kj_hello_build(in, sizeof(in), &hh);
	assert_int_equal(rc, KJ_HELLO_FRAME_MAX);
	n += (size_t)rc;
	memset(d, 0x77, 32);
	rc = kj_readback_build(in + n, sizeof(in) - n, d);
	assert_int_equal(rc, KJ_READBACK_FRAME_LEN);
	n += (size_t)rc;
	rc = kj_abort_build(in + n, sizeof(in) - n, KJ_ABORT_STOPPED, "bye");
	assert_true(rc > 0);
	n += (size_t)rc;
	(void)body;

	for (size_t s = 0; s < KJ_ARRAY_SIZE(steps); s++) {
		struct kj_frame_parser p;
		struct kj_hello h;
		struct kj_abort a;
		struct got g;

		got_init(&g, 16);
		kj_frame_parser_init(&p, KJ_ROLE_APPLIANCE);
		assert_true(kj_frame_parser_idle(&p));
		feed(&p, in, n, steps[s], &g);
		assert_int_equal(g.rc, 0);
		assert_int_equal(g.used_total, n);
		assert_true(kj_frame_parser_idle(&p));
		assert_int_equal(g.frames, 3);
		assert_int_equal(g.types[0], KJ_MSG_HELLO);
		assert_int_equal(kj_hello_parse(g.bodies[0], g.lens[0], &h,
						NULL), 0);
		assert_memory_equal(&h, &hh, sizeof(h));
		assert_int_equal(g.types[1], KJ_MSG_READBACK);
		assert_memory_equal(g.bodies[1], d, 32);
		assert_int_equal(g.types[2], KJ_MSG_ABORT);
		assert_int_equal(kj_abort_parse(g.bodies[2], g.lens[2], &a,
						NULL), 0);
		assert_string_equal(a.message, "bye");
		got_free(&g);
	}
}

static void test_zero_copy(void **state)
{
	uint8_t in[64], d[32] = { 1 };
	struct kj_frame_parser p;
	struct kj_frame f;
	size_t used;
	int n;

	(void)state;
	n = kj_readback_build(in, sizeof(in), d);
	kj_frame_parser_init(&p, KJ_ROLE_APPLIANCE);
	assert_int_equal(kj_frame_feed(&p, in, (size_t)n, &used, &f),
			 KJ_FEED_FRAME);
	assert_ptr_equal(f.body, in + 5); /* no copy when whole */
	assert_int_equal(used, (size_t)n);
	/* split: the body comes from the parser's buffer */
	assert_int_equal(kj_frame_feed(&p, in, 10, &used, &f), KJ_FEED_MORE);
	assert_int_equal(kj_frame_feed(&p, in + 10, (size_t)n - 10, &used,
				       &f), KJ_FEED_FRAME);
	assert_ptr_equal(f.body, p.buf);
	assert_memory_equal(f.body, d, 32);
	/* empty input */
	assert_int_equal(kj_frame_feed(&p, in, 0, &used, &f), KJ_FEED_MORE);
	assert_int_equal(used, 0);
}

/* A whole device as a site receives it, fed in many chunkings. */
static void test_site_stream_split(void **state)
{
	static const size_t steps[] = { 0, 1, 3, 4096, 65536 + 10, 100000 };
	enum { FW = 70000, CRED = 1500 };
	uint8_t *fw = malloc(FW), *cred = malloc(CRED);
	uint8_t *in = malloc(FW + CRED + 4096);
	struct kj_offer o = { .attempt = 9, .fw_size = FW,
			      .cred_size = CRED };
	size_t n = 0;
	int rc;

	(void)state;
	assert_non_null(in);
	for (size_t i = 0; i < FW; i++)
		fw[i] = (uint8_t)(i * 7);
	memset(cred, 'c', CRED);
	strcpy(o.serial, "AS10000");
	strcpy(o.fw_version, "3.1.5");
	rc = kj_offer_build(in, 1024, &o);
	assert_true(rc > 0);
	n += (size_t)rc;
	for (uint32_t off = 0; off < FW; off += KJ_DATA_PAYLOAD_MAX) {
		uint32_t len = FW - off < KJ_DATA_PAYLOAD_MAX ?
				       FW - off : KJ_DATA_PAYLOAD_MAX;

		assert_int_equal(kj_data_hdr_build(in + n, 0, off, len),
				 KJ_DATA_HDR_LEN);
		n += KJ_DATA_HDR_LEN;
		memcpy(in + n, fw + off, len);
		n += len;
	}
	assert_int_equal(kj_data_frames(FW), 2);
	assert_int_equal(kj_data_frames(0), 0);
	assert_int_equal(kj_data_frames(65536), 1);
	assert_int_equal(kj_data_hdr_build(in + n, 1, 0, CRED),
			 KJ_DATA_HDR_LEN);
	n += KJ_DATA_HDR_LEN;
	memcpy(in + n, cred, CRED);
	n += CRED;
	rc = kj_commit_build(in + n, 64, 9, 1234);
	assert_int_equal(rc, KJ_COMMIT_FRAME_LEN);
	n += (size_t)rc;

	for (size_t s = 0; s < KJ_ARRAY_SIZE(steps); s++) {
		struct kj_frame_parser p;
		struct kj_offer o2;
		struct kj_commit c;
		struct got g;

		got_init(&g, FW);
		kj_frame_parser_init(&p, KJ_ROLE_SITE);
		feed(&p, in, n, steps[s], &g);
		assert_int_equal(g.rc, 0);
		assert_true(kj_frame_parser_idle(&p));
		assert_int_equal(g.frames, 2);
		assert_int_equal(g.types[0], KJ_MSG_OFFER);
		assert_int_equal(kj_offer_parse(g.bodies[0], g.lens[0], &o2,
						NULL), 0);
		assert_memory_equal(&o, &o2, sizeof(o));
		assert_int_equal(g.data_frames, 3);
		assert_int_equal(g.stream_len[0], FW);
		assert_memory_equal(g.streams[0], fw, FW);
		assert_int_equal(g.stream_len[1], CRED);
		assert_memory_equal(g.streams[1], cred, CRED);
		assert_int_equal(g.types[1], KJ_MSG_COMMIT);
		assert_int_equal(kj_commit_parse(g.bodies[1], g.lens[1], &c,
						 NULL), 0);
		assert_int_equal(c.leaf_index, 1234);
		got_free(&g);
	}
	free(fw);
	free(cred);
	free(in);
}

static void test_data_header_errors(void **state)
{
	uint8_t b[32], h[KJ_DATA_HDR_LEN];

	(void)state;
	raw_frame(b, 7, KJ_MSG_DATA, "\x02\x00\x00\x00\x00" "x", 6);
	expect_bad(KJ_ROLE_SITE, b, 11, "stream is neither");
	raw_frame(b, 7, KJ_MSG_DATA, "\x00\xff\xff\xff\xff" "x", 6);
	expect_bad(KJ_ROLE_SITE, b, 11, "beyond 4 GiB");
	assert_int_equal(kj_data_hdr_build(h, 0, 0, 0), -EINVAL);
	assert_int_equal(kj_data_hdr_build(h, 0, 0, 65537), -EINVAL);
	assert_int_equal(kj_data_hdr_build(h, 2, 0, 1), -EINVAL);
	assert_int_equal(kj_data_hdr_build(h, 1, 0xffffffffu, 1), -EINVAL);
	assert_int_equal(kj_data_hdr_build(h, 1, 0xfffffffeu, 1),
			 KJ_DATA_HDR_LEN);
	assert_memory_equal(h, "\x00\x00\x00\x07\x03\x01\xff\xff\xff\xfe", 10);
	assert_int_equal(kj_data_hdr_build(h, 0, 0, 65536), KJ_DATA_HDR_LEN);
	assert_memory_equal(h, "\x00\x01\x00\x06\x03\x00\x00\x00\x00\x00", 10);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_appliance_stream_split),
		cmocka_unit_test(test_zero_copy),
		cmocka_unit_test(test_site_stream_split),
		cmocka_unit_test(test_data_header_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
