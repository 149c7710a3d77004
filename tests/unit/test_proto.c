// SPDX-License-Identifier: Apache-2.0
/*
 * Wire protocol codec (PROTOCOL.md): abort names, framing bounds, every
 * malformed frame and its order, CHALLENGE and PROOF.  The bodies are in
 * test_proto_bodies.c, split feeds in test_proto_stream.c, the readback
 * digest in test_proto_readback.c.
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

/* ---- names ---- */

static void test_abort_names(void **state)
{
	static const char *const want[] = {
		NULL,	     "protocol", "locked_out", "quota",
		"duplicate", "readback", "timeout",    "internal",
		"stopped",   "unauthorized", "counterfeit",
	};

	(void)state;
	assert_null(kj_abort_name(0));
	assert_null(kj_abort_name(11));
	for (unsigned c = 1; c <= 10; c++) {
		assert_string_equal(kj_abort_name(c), want[c]);
		assert_int_equal(kj_abort_code_from_name(want[c]), c);
	}
	assert_int_equal(kj_abort_code_from_name("nope"), -EINVAL);
	assert_int_equal(KJ_ABORT_UNAUTHORIZED, 9);
	assert_string_equal(kj_msg_name(KJ_MSG_READBACK), "READBACK");
	assert_string_equal(kj_msg_name(0), "unknown");
}

/* ---- framing bounds ---- */

static void test_length_bounds(void **state)
{
	uint8_t b[16];

	(void)state;
	/* length 0 and beyond 262144 break the framing rule itself */
	raw_frame(b, 0, KJ_MSG_HELLO, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "out of range 1..262144");
	raw_frame(b, 262145, KJ_MSG_HELLO, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "out of range 1..262144");
	raw_frame(b, 0xffffffffu, KJ_MSG_HELLO, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "out of range 1..262144");
	raw_frame(b, 0xffffffffu, KJ_MSG_DATA, NULL, 0);
	expect_bad(KJ_ROLE_SITE, b, 5, "out of range 1..262144");
	/*
	 * 1 and 262144 pass the framing rule; no message is that short or
	 * that long, so the per-type bound refuses them, still from the
	 * header alone (nothing buffered).
	 */
	raw_frame(b, 1, KJ_MSG_ABORT, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "wrong for its type");
	raw_frame(b, 262144, KJ_MSG_HELLO, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "wrong for its type");
	raw_frame(b, 262144, KJ_MSG_DATA, NULL, 0);
	expect_bad(KJ_ROLE_SITE, b, 5, "wrong for its type");
}

static void test_4gib_consumes_only_header(void **state)
{
	uint8_t b[64] = { 0xff, 0xff, 0xff, 0xff, 0x01 };
	struct kj_frame_parser p;
	struct kj_frame f;
	size_t used;

	(void)state;
	kj_frame_parser_init(&p, KJ_ROLE_APPLIANCE);
	assert_int_equal(kj_frame_feed(&p, b, sizeof(b), &used, &f),
			 -EBADMSG);
	/* judged on the 4 length bytes, before the type byte is taken */
	assert_int_equal(used, 0);
	/* sticky: a broken stream never resynchronises */
	assert_int_equal(kj_frame_feed(&p, b + 5, 1, &used, &f), -EBADMSG);
	assert_int_equal(used, 0);
	assert_false(kj_frame_parser_idle(&p));
}

/*
 * Issue 11 item 7: a bad length is refused once its 4 bytes are in, even
 * when the type byte never comes (no wait for a TIMEOUT), and whether the
 * 4 bytes come at once or in pieces; a good length waits for the rest.
 */
static void test_length_judged_at_4_bytes(void **state)
{
	static const uint8_t bad[][4] = { { 0, 0, 0, 0 },
					  { 0x00, 0x04, 0x00, 0x01 },
					  { 0xff, 0xff, 0xff, 0xff } };
	const uint8_t good[4] = { 0, 0, 0, 0x40 };
	struct kj_frame_parser p;
	struct kj_frame f;
	size_t used;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		kj_frame_parser_init(&p, KJ_ROLE_APPLIANCE);
		assert_int_equal(kj_frame_feed(&p, bad[i], 4, &used, &f),
				 -EBADMSG);
		assert_string_equal(p.why,
				    "frame length out of range 1..262144");
		/* in pieces: 3 bytes wait, the 4th decides */
		kj_frame_parser_init(&p, KJ_ROLE_APPLIANCE);
		assert_int_equal(kj_frame_feed(&p, bad[i], 3, &used, &f),
				 KJ_FEED_MORE);
		assert_int_equal(kj_frame_feed(&p, bad[i] + 3, 1, &used, &f),
				 -EBADMSG);
	}
	kj_frame_parser_init(&p, KJ_ROLE_APPLIANCE);
	assert_int_equal(kj_frame_feed(&p, good, 4, &used, &f), KJ_FEED_MORE);
	assert_int_equal(used, 4);
}

static void test_types(void **state)
{
	uint8_t b[16];

	(void)state;
	raw_frame(b, 33, 0x00, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "unknown frame type");
	raw_frame(b, 33, 0x09, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "unknown frame type");
	/* CHALLENGE goes to the site, PROOF to the appliance */
	raw_frame(b, 33, KJ_MSG_CHALLENGE, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "direction");
	raw_frame(b, 100, KJ_MSG_PROOF, NULL, 0);
	expect_bad(KJ_ROLE_SITE, b, 5, "direction");
	raw_frame(b, 33, 0xff, NULL, 0);
	expect_bad(KJ_ROLE_SITE, b, 5, "unknown frame type");
	/* direction: a site never sends OFFER/DATA/COMMIT, nor receives HELLO */
	raw_frame(b, 17, KJ_MSG_COMMIT, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "direction");
	raw_frame(b, 70, KJ_MSG_OFFER, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "direction");
	raw_frame(b, 100, KJ_MSG_DATA, NULL, 0);
	expect_bad(KJ_ROLE_APPLIANCE, b, 5, "direction");
	raw_frame(b, 20, KJ_MSG_HELLO, NULL, 0);
	expect_bad(KJ_ROLE_SITE, b, 5, "direction");
	raw_frame(b, 33, KJ_MSG_READBACK, NULL, 0);
	expect_bad(KJ_ROLE_SITE, b, 5, "direction");
}

static void test_order(void **state)
{
	uint8_t b[64] = { 0 };
	struct kj_frame_parser p;
	struct kj_frame f;
	size_t used;

	(void)state;
	raw_frame(b, 33, KJ_MSG_READBACK, NULL, 0);
	kj_frame_parser_init(&p, KJ_ROLE_APPLIANCE);
	kj_frame_parser_expect(&p, KJ_MSG_BIT(KJ_MSG_HELLO) |
				   KJ_MSG_BIT(KJ_MSG_ABORT));
	assert_int_equal(kj_frame_feed(&p, b, 37, &used, &f), -EBADMSG);
	assert_string_equal(p.why, "frame out of order");
	assert_int_equal(used, 5);

	kj_frame_parser_init(&p, KJ_ROLE_APPLIANCE);
	kj_frame_parser_expect(&p, KJ_MSG_BIT(KJ_MSG_READBACK));
	assert_int_equal(kj_frame_feed(&p, b, 37, &used, &f), KJ_FEED_FRAME);
	assert_int_equal(f.type, KJ_MSG_READBACK);
	/* expect() cannot widen beyond the role */
	kj_frame_parser_expect(&p, KJ_MSG_BIT(KJ_MSG_DATA));
	assert_int_equal(p.accept, 0);
}

/* Each type's exact bounds: min-1 and max+1 refused, min and max pass. */
static void test_type_bounds(void **state)
{
	static const struct {
		enum kj_proto_role role;
		uint8_t type;
		uint32_t min, max;
	} t[] = {
		{ KJ_ROLE_APPLIANCE, KJ_MSG_HELLO, 11, 649 },
		{ KJ_ROLE_APPLIANCE, KJ_MSG_READBACK, 33, 33 },
		{ KJ_ROLE_APPLIANCE, KJ_MSG_ABORT, 4, 259 },
		{ KJ_ROLE_SITE, KJ_MSG_OFFER, 51, 561 },
		{ KJ_ROLE_SITE, KJ_MSG_DATA, 7, 65542 },
		{ KJ_ROLE_SITE, KJ_MSG_COMMIT, 17, 17 },
		{ KJ_ROLE_SITE, KJ_MSG_ABORT, 4, 259 },
		{ KJ_ROLE_SITE, KJ_MSG_CHALLENGE, 33, 33 },
		{ KJ_ROLE_APPLIANCE, KJ_MSG_PROOF, 68, 2115 },
	};
	uint8_t h[5];

	(void)state;
	for (size_t i = 0; i < KJ_ARRAY_SIZE(t); i++) {
		uint32_t ok[2] = { t[i].min, t[i].max };
		uint32_t bad[2] = { t[i].min - 1, t[i].max + 1 };

		for (int k = 0; k < 2; k++) {
			struct kj_frame_parser p;
			struct kj_frame f;
			size_t used;

			raw_frame(h, bad[k], t[i].type, NULL, 0);
			expect_bad(t[i].role, h, 5, "wrong for its type");
			/* a good header alone needs more */
			raw_frame(h, ok[k], t[i].type, NULL, 0);
			kj_frame_parser_init(&p, t[i].role);
			assert_int_equal(kj_frame_feed(&p, h, 5, &used, &f),
					 KJ_FEED_MORE);
			assert_int_equal(used, 5);
		}
	}
	/* the per-frame buffer covers the largest buffered message */
	assert_int_equal(KJ_HELLO_FRAME_MAX, 653);
	assert_true(KJ_OFFER_FRAME_MAX <= KJ_PARSER_BUF);
	assert_true(KJ_HELLO_FRAME_MAX <= KJ_PARSER_BUF);
	assert_int_equal(KJ_PARSER_BUF, KJ_PROOF_FRAME_MAX);
	assert_true(sizeof(struct kj_frame_parser) < 2048 + 256);
}

/* ---- CHALLENGE and PROOF (device authenticity) ---- */

static void test_challenge_proof(void **state)
{
	uint8_t nonce[KJ_NONCE_LEN], back[KJ_NONCE_LEN], sig[64], cert[2049];
	uint8_t b[KJ_PROOF_FRAME_MAX + 8];
	struct kj_frame_parser p;
	struct kj_proof pr;
	struct kj_frame f;
	const char *why;
	size_t used;
	int n;

	(void)state;
	memset(nonce, 0x5a, sizeof(nonce));
	memset(sig, 0x33, sizeof(sig));
	memset(cert, 0x30, sizeof(cert));
	n = kj_challenge_build(b, sizeof(b), nonce);
	assert_int_equal(n, KJ_CHALLENGE_FRAME_LEN);
	assert_memory_equal(b, "\x00\x00\x00\x21\x07", 5);
	kj_frame_parser_init(&p, KJ_ROLE_SITE);
	assert_int_equal(kj_frame_feed(&p, b, (size_t)n, &used, &f),
			 KJ_FEED_FRAME);
	assert_int_equal(kj_challenge_parse(f.body, f.len, back, &why), 0);
	assert_memory_equal(back, nonce, sizeof(nonce));
	assert_int_equal(kj_challenge_parse(f.body, f.len - 1, back, &why),
			 -EBADMSG);
	/* the largest PROOF passes the parser whole, one more byte does not */
	n = kj_proof_build(b, sizeof(b), cert, KJ_PROOF_CERT_MAX, sig);
	assert_int_equal(n, KJ_PROOF_FRAME_MAX);
	kj_frame_parser_init(&p, KJ_ROLE_APPLIANCE);
	for (int i = 0; i < n; i += 700) {
		int r = kj_frame_feed(&p, b + i, (size_t)(n - i < 700 ? n - i :
					700), &used, &f);

		assert_int_equal(r, i + 700 >= n ? KJ_FEED_FRAME
						  : KJ_FEED_MORE);
	}
	assert_int_equal(kj_proof_parse(f.body, f.len, &pr, &why), 0);
	assert_int_equal(pr.cert_len, KJ_PROOF_CERT_MAX);
	assert_memory_equal(pr.sig, sig, 64);
	assert_ptr_equal(pr.cert, f.body + 2);
	assert_int_equal(kj_proof_build(b, sizeof(b), cert, 2049, sig),
			 -EINVAL);
	assert_int_equal(kj_proof_build(b, sizeof(b), cert, 0, sig), -EINVAL);
	/* bodies: empty certificate, length beyond the body, trailing */
	memset(b, 0, 2);
	assert_int_equal(kj_proof_parse(b, 66, &pr, &why), -EBADMSG);
	assert_string_equal(why, "PROOF: certificate length not 1..2048");
	kj_put_u16be(b, 10);
	assert_int_equal(kj_proof_parse(b, 70, &pr, &why), -EBADMSG);
	assert_string_equal(why, "PROOF: truncated signature");
	kj_put_u16be(b, 4);
	assert_int_equal(kj_proof_parse(b, 71, &pr, &why), -EBADMSG);
	assert_string_equal(why, "PROOF: trailing bytes");
	assert_int_equal(kj_proof_parse(b, 70, &pr, &why), 0);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abort_names),
		cmocka_unit_test(test_length_bounds),
		cmocka_unit_test(test_4gib_consumes_only_header),
		cmocka_unit_test(test_length_judged_at_4_bytes),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_type_bounds),
		cmocka_unit_test(test_challenge_proof),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
