// SPDX-License-Identifier: Apache-2.0
/*
 * Wire protocol codec (PROTOCOL.md): framing bounds, every malformed case,
 * split feeds, builders round-trip, and golden readback digests.
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
#include "wire/readback.h"

/* ---- helpers ---- */

/* A raw frame: length field as given (not computed), type, body. */
static size_t raw_frame(uint8_t *out, uint32_t len, uint8_t type,
			const void *body, size_t body_len)
{
	kj_put_u32be(out, len);
	out[4] = type;
	if (body_len)
		memcpy(out + 5, body, body_len);
	return 5 + body_len;
}

/* What a feed run produced. */
struct got {
	int rc;			/* last result: 0 done, <0 error */
	const char *why;
	unsigned frames;
	uint8_t types[16];
	uint8_t bodies[16][KJ_PARSER_BUF];
	uint32_t lens[16];
	uint8_t *streams[2];	/* reassembled DATA payloads */
	uint32_t stream_len[2];
	unsigned data_frames;
	size_t used_total;
};

static void got_init(struct got *g, size_t stream_cap)
{
	memset(g, 0, sizeof(*g));
	g->streams[0] = calloc(1, stream_cap + 1);
	g->streams[1] = calloc(1, stream_cap + 1);
	assert_non_null(g->streams[0]);
	assert_non_null(g->streams[1]);
}

static void got_free(struct got *g)
{
	free(g->streams[0]);
	free(g->streams[1]);
}

/* Feed in[0..n) in chunks of step bytes (0 = all at once). */
static void feed(struct kj_frame_parser *p, const uint8_t *in, size_t n,
		 size_t step, struct got *g)
{
	size_t off = 0;

	while (off < n) {
		size_t chunk = step && n - off > step ? step : n - off;
		size_t pos = 0;

		while (pos < chunk) {
			struct kj_frame f;
			size_t used;
			int rc = kj_frame_feed(p, in + off + pos, chunk - pos,
					       &used, &f);

			assert_true(used <= chunk - pos);
			pos += used;
			g->used_total += used;
			if (rc < 0) {
				g->rc = rc;
				g->why = p->why;
				return;
			}
			if (rc == KJ_FEED_MORE) {
				assert_int_equal(pos, chunk);
				break;
			}
			if (rc == KJ_FEED_DATA) {
				assert_true(f.len >= 1);
				assert_true(f.stream <= 1);
				assert_int_equal(f.offset,
						 g->stream_len[f.stream]);
				memcpy(g->streams[f.stream] + f.offset, f.body,
				       f.len);
				g->stream_len[f.stream] += f.len;
				g->data_frames += f.last;
				continue;
			}
			assert_int_equal(rc, KJ_FEED_FRAME);
			assert_true(g->frames < 16);
			assert_true(f.len <= KJ_PARSER_BUF);
			g->types[g->frames] = f.type;
			memcpy(g->bodies[g->frames], f.body, f.len);
			g->lens[g->frames] = f.len;
			g->frames++;
		}
		off += chunk;
	}
	g->rc = 0;
}

/* Feed one buffer to a fresh parser of role; expect -EBADMSG with why. */
static void expect_bad(enum kj_proto_role role, const uint8_t *in, size_t n,
		       const char *why_part)
{
	static const size_t steps[] = { 0, 1, 3 };

	for (size_t s = 0; s < KJ_ARRAY_SIZE(steps); s++) {
		struct kj_frame_parser p;
		struct got g;

		got_init(&g, 1 << 17);
		kj_frame_parser_init(&p, role);
		feed(&p, in, n, steps[s], &g);
		assert_int_equal(g.rc, -EBADMSG);
		assert_non_null(g.why);
		if (!strstr(g.why, why_part))
			fail_msg("why `%s' lacks `%s'", g.why, why_part);
		got_free(&g);
	}
}

/* A valid HELLO body with every field at a chosen size. */
static size_t hello_body(uint8_t *b, size_t site_len, size_t uid_len,
			 size_t hw_len, size_t pk_len)
{
	size_t n = 0;

	b[n++] = 1;
	b[n++] = (uint8_t)site_len;
	memset(b + n, 's', site_len);
	n += site_len;
	kj_put_u16be(b + n, 7);
	n += 2;
	kj_put_u16be(b + n, (uint16_t)uid_len);
	n += 2;
	memset(b + n, 0xa5, uid_len);
	n += uid_len;
	b[n++] = (uint8_t)hw_len;
	memset(b + n, 'B', hw_len);
	n += hw_len;
	kj_put_u16be(b + n, (uint16_t)pk_len);
	n += 2;
	memset(b + n, 0x11, pk_len);
	if (pk_len)
		b[n] = 0x04;
	n += pk_len;
	return n;
}

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

/* ---- HELLO body ---- */

static int hello(const uint8_t *b, size_t n, struct kj_hello *h,
		 const char **why)
{
	return kj_hello_parse(b, n, h, why);
}

static void expect_hello_bad(const uint8_t *b, size_t n, const char *part)
{
	struct kj_hello h;
	const char *why = NULL;

	assert_int_equal(hello(b, n, &h, &why), -EBADMSG);
	assert_non_null(why);
	if (!strstr(why, part))
		fail_msg("why `%s' lacks `%s'", why, part);
}

static void test_hello_fields(void **state)
{
	uint8_t b[700];
	struct kj_hello h;
	const char *why;
	size_t n;

	(void)state;
	/* largest legal HELLO: 255 + 64 + 255 + 65 */
	n = hello_body(b, 255, 64, 255, 65);
	assert_int_equal(n + 5, KJ_HELLO_FRAME_MAX);
	assert_int_equal(hello(b, n, &h, &why), 0);
	assert_int_equal(h.uid_len, 64);
	assert_int_equal(h.pubkey_len, 65);
	assert_int_equal(h.socket, 7);
	assert_int_equal(strlen(h.site_id), 255);
	/* smallest: empty strings, 1-byte uid, no key */
	n = hello_body(b, 0, 1, 0, 0);
	assert_int_equal(n, 10);
	assert_int_equal(hello(b, n, &h, &why), 0);
	assert_string_equal(h.hwrev, "");
	/* every truncation point of a full HELLO */
	n = hello_body(b, 5, 8, 1, 65);
	for (size_t k = 0; k < n; k++)
		expect_hello_bad(b, k, "truncated");
	/* trailing byte */
	b[n] = 0;
	expect_hello_bad(b, n + 1, "trailing");

	n = hello_body(b, 5, 0, 1, 0);
	expect_hello_bad(b, n, "uid length");
	n = hello_body(b, 5, 65, 1, 0);
	expect_hello_bad(b, n, "uid length");
	n = hello_body(b, 5, 8, 1, 64);
	expect_hello_bad(b, n, "device_pubkey length");
	n = hello_body(b, 5, 8, 1, 66);
	expect_hello_bad(b, n, "device_pubkey length");
	n = hello_body(b, 5, 8, 1, 1);
	expect_hello_bad(b, n, "device_pubkey length");
	n = hello_body(b, 5, 8, 1, 65);
	b[n - 65] = 0x02; /* compressed point prefix */
	expect_hello_bad(b, n, "SEC1");
	n = hello_body(b, 5, 8, 1, 0);
	b[0] = 2;
	expect_hello_bad(b, n, "version");
	b[0] = 0;
	expect_hello_bad(b, n, "version");
}

static void test_str8_utf8(void **state)
{
	static const struct {
		const char *s;
		size_t n;
		bool ok;
	} t[] = {
		{ "", 0, true },
		{ "line1-a", 7, true },
		{ "\xc3\xa9", 2, true },	     /* é */
		{ "\xe2\x82\xac", 3, true },	     /* € */
		{ "\xf0\x9f\x98\x80", 4, true },     /* U+1F600 */
		{ "\xf4\x8f\xbf\xbf", 4, true },     /* U+10FFFF */
		{ "\xed\x9f\xbf", 3, true },	     /* U+D7FF */
		{ "a\0b", 3, false },		     /* NUL */
		{ "\x80", 1, false },		     /* lone continuation */
		{ "\xc0\x80", 2, false },	     /* overlong NUL */
		{ "\xc1\xbf", 2, false },	     /* overlong */
		{ "\xe0\x9f\xbf", 3, false },	     /* overlong 3-byte */
		{ "\xf0\x8f\xbf\xbf", 4, false },    /* overlong 4-byte */
		{ "\xed\xa0\x80", 3, false },	     /* surrogate D800 */
		{ "\xf4\x90\x80\x80", 4, false },    /* > U+10FFFF */
		{ "\xf5\x80\x80\x80", 4, false },
		{ "\xff", 1, false },
		{ "\xe2\x82", 2, false },	     /* truncated */
		{ "\xc3", 1, false },
		{ "\xc3\x28", 2, false },	     /* bad continuation */
		{ "\xe2\x28\xa1", 3, false },
		{ "\xf0\x9f\x98\x28", 4, false },
	};
	uint8_t b[64];
	struct kj_hello h;
	const char *why;

	(void)state;
	for (size_t i = 0; i < KJ_ARRAY_SIZE(t); i++) {
		size_t n = 0;

		assert_int_equal(kj_str8_valid((const uint8_t *)t[i].s,
					       t[i].n), t[i].ok);
		/* and in a HELLO's site_id */
		b[n++] = 1;
		b[n++] = (uint8_t)t[i].n;
		memcpy(b + n, t[i].s, t[i].n);
		n += t[i].n;
		memcpy(b + n, "\x00\x01\x00\x01\x42\x01\x42\x00\x00", 9);
		n += 9;
		if (t[i].ok) {
			assert_int_equal(hello(b, n, &h, &why), 0);
			assert_memory_equal(h.site_id, t[i].s, t[i].n);
		} else {
			expect_hello_bad(b, n, "site_id is not UTF-8");
		}
	}
	/* hwrev is checked too */
	memcpy(b, "\x01\x00\x00\x01\x00\x01\x42\x01\xff\x00\x00", 11);
	expect_hello_bad(b, 11, "hwrev is not UTF-8");
}

/* ---- other bodies ---- */

static void test_readback_commit_abort(void **state)
{
	uint8_t b[300], d[32];
	struct kj_commit c;
	struct kj_abort a;
	const char *why;

	(void)state;
	memset(b, 0x5a, sizeof(b));
	assert_int_equal(kj_readback_parse(b, 32, d, &why), 0);
	assert_int_equal(kj_readback_parse(b, 31, d, &why), -EBADMSG);
	assert_int_equal(kj_readback_parse(b, 33, d, &why), -EBADMSG);
	assert_string_equal(why, "READBACK: trailing bytes");

	kj_put_u64be(b, 42);
	kj_put_u64be(b + 8, 7);
	assert_int_equal(kj_commit_parse(b, 16, &c, &why), 0);
	assert_int_equal(c.attempt, 42);
	assert_int_equal(c.leaf_index, 7);
	for (size_t k = 0; k < 16; k++)
		assert_int_equal(kj_commit_parse(b, k, &c, &why), -EBADMSG);
	assert_int_equal(kj_commit_parse(b, 17, &c, &why), -EBADMSG);

	memcpy(b, "\x00\x05\x03" "bad", 6);
	assert_int_equal(kj_abort_parse(b, 6, &a, &why), 0);
	assert_int_equal(a.code, KJ_ABORT_READBACK);
	assert_string_equal(a.message, "bad");
	for (size_t k = 0; k < 6; k++)
		assert_int_equal(kj_abort_parse(b, k, &a, &why), -EBADMSG);
	assert_int_equal(kj_abort_parse(b, 7, &a, &why), -EBADMSG);
	assert_string_equal(why, "ABORT: trailing bytes");
	memcpy(b, "\x00\x00\x00", 3);
	assert_int_equal(kj_abort_parse(b, 3, &a, &why), -EBADMSG);
	assert_string_equal(why, "ABORT: code not 1..10");
	memcpy(b, "\x00\x0b\x00", 3);
	assert_int_equal(kj_abort_parse(b, 3, &a, &why), -EBADMSG);
	memcpy(b, "\x00\x09\x00", 3);
	assert_int_equal(kj_abort_parse(b, 3, &a, &why), 0);
	memcpy(b, "\x00\x01\x01\x00", 4);
	assert_int_equal(kj_abort_parse(b, 4, &a, &why), -EBADMSG);
	assert_string_equal(why, "ABORT: message is not UTF-8 without NUL");
}

static void test_offer_data_bodies(void **state)
{
	struct kj_offer o = { .attempt = 0x0102030405060708ull,
			      .fw_size = 70000, .cred_size = 1500 };
	uint8_t b[KJ_OFFER_FRAME_MAX + 1], stream;
	const uint8_t *payload;
	uint32_t off, plen;
	struct kj_offer o2;
	const char *why;
	int n;

	(void)state;
	memset(o.serial, 'S', 255);
	strcpy(o.fw_version, "3.1.5");
	memset(o.fw_sha256, 0xab, 32);
	n = kj_offer_build(b, sizeof(b), &o);
	assert_true(n > 0);
	assert_int_equal(kj_get_u32be(b), (uint32_t)n - 4);
	assert_int_equal(kj_offer_parse(b + 5, (size_t)n - 5, &o2, &why), 0);
	assert_memory_equal(&o, &o2, sizeof(o));
	for (int k = 0; k < n - 5; k++)
		assert_int_equal(kj_offer_parse(b + 5, (size_t)k, &o2, &why),
				 -EBADMSG);
	b[n] = 0;
	assert_int_equal(kj_offer_parse(b + 5, (size_t)n - 4, &o2, &why),
			 -EBADMSG);
	assert_string_equal(why, "OFFER: trailing bytes");
	b[5 + 8 + 1] = 0xc0; /* serial's first byte: invalid UTF-8 */
	assert_int_equal(kj_offer_parse(b + 5, (size_t)n - 5, &o2, &why),
			 -EBADMSG);

	memcpy(b, "\x01\x00\x00\x00\x10xyz", 8);
	assert_int_equal(kj_data_parse(b, 8, &stream, &off, &payload, &plen,
				       &why), 0);
	assert_int_equal(stream, 1);
	assert_int_equal(off, 16);
	assert_int_equal(plen, 3);
	assert_int_equal(kj_data_parse(b, 5, &stream, &off, &payload, &plen,
				       &why), -EBADMSG);
	b[0] = 2;
	assert_int_equal(kj_data_parse(b, 8, &stream, &off, &payload, &plen,
				       &why), -EBADMSG);
	memcpy(b, "\x00\xff\xff\xff\xff" "x", 6);
	assert_int_equal(kj_data_parse(b, 6, &stream, &off, &payload, &plen,
				       &why), -EBADMSG);
	assert_string_equal(why, "DATA: offset + length beyond 4 GiB");
}

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

/* ---- builders ---- */

static void test_builders(void **state)
{
	uint8_t b[1024];
	struct kj_hello h = { .version = 1, .uid_len = 1 };
	char longmsg[400];
	struct kj_abort a;
	int n;

	(void)state;
	n = kj_commit_build(b, sizeof(b), 0x1122334455667788ull, 5);
	assert_int_equal(n, 21);
	assert_memory_equal(b, "\x00\x00\x00\x11\x05\x11\x22\x33\x44\x55\x66"
			       "\x77\x88\x00\x00\x00\x00\x00\x00\x00\x05", 21);
	assert_int_equal(kj_commit_build(b, 20, 1, 1), -ENOSPC);
	n = kj_abort_build(b, sizeof(b), KJ_ABORT_QUOTA, NULL);
	assert_int_equal(n, 8);
	assert_memory_equal(b, "\x00\x00\x00\x04\x06\x00\x03\x00", 8);
	assert_int_equal(kj_abort_build(b, sizeof(b), 0, "x"), -EINVAL);
	assert_int_equal(kj_abort_build(b, sizeof(b), 11, "x"), -EINVAL);
	assert_int_equal(kj_abort_build(b, sizeof(b), 1, "\xff"), -EINVAL);
	/* 200 x "é": cut to 254 bytes, never inside a character */
	for (int i = 0; i < 200; i++)
		memcpy(longmsg + 2 * i, "\xc3\xa9", 2);
	longmsg[400 - 1] = '\0';
	longmsg[398] = '\0';
	n = kj_abort_build(b, sizeof(b), KJ_ABORT_INTERNAL, longmsg);
	assert_int_equal(n, 5 + 2 + 1 + 254);
	assert_int_equal(kj_abort_parse(b + 5, (size_t)n - 5, &a, NULL), 0);
	assert_int_equal(strlen(a.message), 254);

	assert_true(kj_hello_build(b, sizeof(b), &h) > 0);
	h.uid_len = 0;
	assert_int_equal(kj_hello_build(b, sizeof(b), &h), -EINVAL);
	h.uid_len = 65;
	assert_int_equal(kj_hello_build(b, sizeof(b), &h), -EINVAL);
	h.uid_len = 4;
	h.pubkey_len = 64;
	assert_int_equal(kj_hello_build(b, sizeof(b), &h), -EINVAL);
	h.pubkey_len = 65; /* pubkey[0] is 0, not 0x04 */
	assert_int_equal(kj_hello_build(b, sizeof(b), &h), -EINVAL);
	h.pubkey_len = 0;
	strcpy(h.hwrev, "\xc3");
	assert_int_equal(kj_hello_build(b, sizeof(b), &h), -EINVAL);
	strcpy(h.hwrev, "B");
	assert_int_equal(kj_hello_build(b, 12, &h), -ENOSPC);
	n = kj_hello_build(b, sizeof(b), &h);
	/* HELLO v1 site "" socket 0 uid 00000000 hwrev "B" no key */
	assert_int_equal(n, 5 + 1 + 1 + 2 + 2 + 4 + 2 + 2);
	assert_memory_equal(b, "\x00\x00\x00\x0f\x01\x01\x00\x00\x00\x00\x04"
			       "\x00\x00\x00\x00\x01" "B\x00\x00", 19);
}

/* ---- readback digest: golden vectors ---- */

/*
 * Derived independently of this code with coreutils (run once, pasted):
 *  v1: printf 'KINJECT-READBACK-1\x00\x01\x01' | sha256sum
 *      (empty firmware, uid = 01, empty cred_blob)
 *  v2: printf 'KINJECT-READBACK-1firmware-image-v1\x00\x08\x01\x02\x03'\
 *             '\x04\x05\x06\x07\x08\x00\x00\x00\x03CRT\x00\x00\x00\x00' |
 *      sha256sum
 *      (fw "firmware-image-v1", uid 01..08, cred_blob = u32be(3) "CRT"
 *       u32be(0): a 3-byte cert and no key)
 *  v3: { printf 'KINJECT-READBACK-1'; head -c 70000 /dev/zero | tr '\0' A;
 *        printf '\x00\x40'; head -c 64 /dev/zero | tr '\0' '\377';
 *        head -c 1500 /dev/zero | tr '\0' c; } | sha256sum
 *      (70000 x 'A' firmware, 64 x 0xff uid, 1500 x 'c' cred_blob)
 */
static const char *const golden[] = {
	"e9cc7a71c8c30fb4b925bd39b7e5d87f0cc9a8a79f4036c2d3b952e55f78e2a0",
	"798ededdef414b608ea0de8929246e191ce5154bdbc61b05df0e913b43901c02",
	"c4fa2e13ff5841ed174c247ba8e24d647d1379fffabdc40ba0923f82af6372d5",
};

struct vec {
	uint8_t *fw, *uid, *cred;
	size_t fw_len, uid_len, cred_len;
};

static void make_vec(int i, struct vec *v)
{
	static const uint8_t cred2[] = "\x00\x00\x00\x03" "CRT\x00\x00\x00\x00";

	memset(v, 0, sizeof(*v));
	switch (i) {
	case 0:
		v->uid_len = 1;
		v->uid = calloc(1, 1);
		v->uid[0] = 1;
		break;
	case 1:
		v->fw_len = 17;
		v->fw = (uint8_t *)strdup("firmware-image-v1");
		v->uid_len = 8;
		v->uid = malloc(8);
		for (int k = 0; k < 8; k++)
			v->uid[k] = (uint8_t)(k + 1);
		v->cred_len = sizeof(cred2) - 1;
		v->cred = malloc(v->cred_len);
		memcpy(v->cred, cred2, v->cred_len);
		break;
	default:
		v->fw_len = 70000;
		v->fw = malloc(v->fw_len);
		memset(v->fw, 'A', v->fw_len);
		v->uid_len = 64;
		v->uid = malloc(64);
		memset(v->uid, 0xff, 64);
		v->cred_len = 1500;
		v->cred = malloc(1500);
		memset(v->cred, 'c', 1500);
		break;
	}
}

static void test_readback_golden(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++) {
		struct kj_readback fw, s;
		uint8_t want[32], got[32], again[32];
		struct vec v;

		make_vec(i, &v);
		assert_int_equal(kj_hex_decode(golden[i], want, 32), 0);
		/* precomputed firmware part, per-device copy */
		kj_readback_begin(&fw);
		kj_readback_update(&fw, v.fw, v.fw_len);
		kj_readback_device(&fw, v.uid, v.uid_len, v.cred, v.cred_len,
				   got);
		assert_memory_equal(got, want, 32);
		/* the precomputed state is reusable: same again */
		kj_readback_device(&fw, v.uid, v.uid_len, v.cred, v.cred_len,
				   again);
		assert_memory_equal(again, want, 32);
		assert_true(kj_readback_equal(again, want));
		again[31] ^= 1;
		assert_false(kj_readback_equal(again, want));
		kj_readback_wipe(&fw);
		/* streaming, odd chunks, as a site computes it */
		kj_readback_begin(&s);
		for (size_t off = 0; off < v.fw_len; off += 777)
			kj_readback_update(&s, v.fw + off,
					   v.fw_len - off < 777 ?
						   v.fw_len - off : 777);
		kj_readback_add_uid(&s, v.uid, v.uid_len);
		for (size_t off = 0; off < v.cred_len; off += 5)
			kj_readback_update(&s, v.cred + off,
					   v.cred_len - off < 5 ?
						   v.cred_len - off : 5);
		kj_readback_final(&s, got);
		assert_memory_equal(got, want, 32);
		free(v.fw);
		free(v.uid);
		free(v.cred);
	}
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
		cmocka_unit_test(test_hello_fields),
		cmocka_unit_test(test_str8_utf8),
		cmocka_unit_test(test_readback_commit_abort),
		cmocka_unit_test(test_offer_data_bodies),
		cmocka_unit_test(test_appliance_stream_split),
		cmocka_unit_test(test_zero_copy),
		cmocka_unit_test(test_site_stream_split),
		cmocka_unit_test(test_data_header_errors),
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_challenge_proof),
		cmocka_unit_test(test_readback_golden),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
