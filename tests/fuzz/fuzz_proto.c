// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the wire protocol parser (PROTOCOL.md).  The first
 * input byte picks the role and how the rest is split into feeds (a
 * provided-buffer receive path sees arbitrary splits); every frame found
 * goes through its body parser.  Invariants checked (abort on violation):
 *  - the parser never consumes more than it was given, never returns a
 *    frame larger than its buffer, DATA chunks are contiguous;
 *  - whatever a body parser accepts re-encodes to the same bytes
 *    (one canonical encoding: no ambiguity between appliance and site).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

/* Re-encode an accepted body and compare with the frame it came from. */
static void roundtrip(const struct kj_frame *f)
{
	uint8_t out[KJ_PARSER_BUF + 16], d[KJ_DIGEST_LEN];
	struct kj_hello h;
	struct kj_offer o;
	struct kj_commit c;
	struct kj_abort a;
	struct kj_proof p;
	int n = -1;

	switch (f->type) {
	case KJ_MSG_HELLO:
		if (kj_hello_parse(f->body, f->len, &h, NULL) == 0)
			n = kj_hello_build(out, sizeof(out), &h);
		break;
	case KJ_MSG_OFFER:
		if (kj_offer_parse(f->body, f->len, &o, NULL) == 0)
			n = kj_offer_build(out, sizeof(out), &o);
		break;
	case KJ_MSG_READBACK:
		if (kj_readback_parse(f->body, f->len, d, NULL) == 0)
			n = kj_readback_build(out, sizeof(out), d);
		break;
	case KJ_MSG_COMMIT:
		if (kj_commit_parse(f->body, f->len, &c, NULL) == 0)
			n = kj_commit_build(out, sizeof(out), c.attempt,
					    c.leaf_index);
		break;
	case KJ_MSG_ABORT:
		if (kj_abort_parse(f->body, f->len, &a, NULL) == 0)
			n = kj_abort_build(out, sizeof(out), a.code,
					   a.message);
		break;
	case KJ_MSG_CHALLENGE:
		if (kj_challenge_parse(f->body, f->len, d, NULL) == 0)
			n = kj_challenge_build(out, sizeof(out), d);
		break;
	case KJ_MSG_PROOF:
		if (kj_proof_parse(f->body, f->len, &p, NULL) == 0)
			n = kj_proof_build(out, sizeof(out), p.cert,
					   p.cert_len, p.sig);
		break;
	default:
		abort(); /* DATA is streamed, never a whole frame */
	}
	if (n < 0)
		return;
	check((size_t)n == f->len + 5);
	check(out[4] == f->type);
	check(memcmp(out + 5, f->body, f->len) == 0);
}

static void run(enum kj_proto_role role, const uint8_t *in, size_t size,
		size_t step)
{
	struct kj_frame_parser p;
	uint64_t next_off[2] = { 0, 0 };
	bool mid_data = false;
	size_t off = 0;

	kj_frame_parser_init(&p, role);
	while (off < size) {
		size_t chunk = size - off > step ? step : size - off;
		size_t pos = 0;

		while (pos < chunk) {
			struct kj_frame f;
			size_t used;
			int rc = kj_frame_feed(&p, in + off + pos, chunk - pos,
					       &used, &f);

			check(used <= chunk - pos);
			pos += used;
			if (rc < 0) {
				check(rc == -EBADMSG && p.why);
				return;
			}
			if (rc == KJ_FEED_MORE) {
				check(pos == chunk);
				break;
			}
			check(used > 0);
			if (rc == KJ_FEED_DATA) {
				check(role == KJ_ROLE_SITE && f.len >= 1);
				check(f.stream <= 1);
				if (!f.first) {
					check(mid_data);
					check(f.offset == next_off[f.stream]);
				}
				next_off[f.stream] = (uint64_t)f.offset + f.len;
				check(next_off[f.stream] <= UINT32_MAX);
				mid_data = !f.last;
				continue;
			}
			check(rc == KJ_FEED_FRAME && f.len <= KJ_PARSER_BUF);
			check(!mid_data);
			roundtrip(&f);
		}
		off += chunk;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum kj_proto_role role;
	size_t step;

	if (size < 1)
		return 0;
	role = data[0] & 1 ? KJ_ROLE_SITE : KJ_ROLE_APPLIANCE;
	step = data[0] >> 1; /* 0: all at once, else 1..127-byte feeds */
	data++;
	size--;
	run(role, data, size, step ? step : size ? size : 1);
	return 0;
}
