/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Feeding the wire codec (PROTOCOL.md) in the test_proto*.c programs: raw
 * frames with any length field, a feed in chunks of any size that
 * collects what the parser gave, and the check that a malformed stream is
 * refused the same way however it is split.  Shared so that the codec's
 * tests can stand in one program per theme.
 */
#ifndef KJ_TEST_PROTO_FEED_H
#define KJ_TEST_PROTO_FEED_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/util.h"
#include "wire/proto.h"

/* A raw frame: length field as given (not computed), type, body. */
static inline size_t raw_frame(uint8_t *out, uint32_t len, uint8_t type,
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

static inline void got_init(struct got *g, size_t stream_cap)
{
	memset(g, 0, sizeof(*g));
	g->streams[0] = calloc(1, stream_cap + 1);
	g->streams[1] = calloc(1, stream_cap + 1);
	assert_non_null(g->streams[0]);
	assert_non_null(g->streams[1]);
}

static inline void got_free(struct got *g)
{
	free(g->streams[0]);
	free(g->streams[1]);
}

/* Feed in[0..n) in chunks of step bytes (0 = all at once). */
static inline void feed(struct kj_frame_parser *p, const uint8_t *in, size_t n,
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
static inline void
expect_bad(enum kj_proto_role role, const uint8_t *in, size_t n,
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

#endif
