// SPDX-License-Identifier: Apache-2.0
/*
 * Wire protocol codec, spec/PROTOCOL.md: names, the frame parser and the
 * body readers.  See proto.h for the contract; nothing here logs peer
 * input (hostile sites would flood the log).  The builders, which encode
 * our own data, are in proto_build.c.
 */
#include <string.h>

#include "proto.h"
#include "base/util.h"

enum parser_piece {
	PIECE_HDR = 0,	/* collecting length:u32be type:u8 */
	PIECE_BODY,	/* collecting a whole non-DATA body */
	PIECE_DATA_HDR, /* collecting stream:u8 offset:u32be */
	PIECE_PAYLOAD,	/* streaming DATA payload to the caller */
};

#define ROLE_APPLIANCE_TYPES                                    \
	(KJ_MSG_BIT(KJ_MSG_HELLO) | KJ_MSG_BIT(KJ_MSG_READBACK) | \
	 KJ_MSG_BIT(KJ_MSG_ABORT) | KJ_MSG_BIT(KJ_MSG_PROOF))
#define ROLE_SITE_TYPES                                                   \
	(KJ_MSG_BIT(KJ_MSG_OFFER) | KJ_MSG_BIT(KJ_MSG_DATA) |             \
	 KJ_MSG_BIT(KJ_MSG_COMMIT) | KJ_MSG_BIT(KJ_MSG_ABORT) |          \
	 KJ_MSG_BIT(KJ_MSG_CHALLENGE))

/*
 * Bounds of the length field per type (type byte + body), from the body
 * layouts of PROTOCOL.md "Messages".  A frame outside them cannot parse
 * exactly, so it is refused from its header alone, before any buffering.
 */
static const struct {
	uint32_t min, max;
} type_len[] = {
	[KJ_MSG_HELLO] = { 1 + 1 + 1 + 2 + 2 + 1 + 1 + 2,
			   KJ_HELLO_FRAME_MAX - 4 },
	[KJ_MSG_OFFER] = { 1 + 8 + 1 + 1 + 32 + 4 + 4,
			   KJ_OFFER_FRAME_MAX - 4 },
	[KJ_MSG_DATA] = { 1 + 5 + 1, 1 + 5 + KJ_DATA_PAYLOAD_MAX },
	[KJ_MSG_READBACK] = { 1 + 32, 1 + 32 },
	[KJ_MSG_COMMIT] = { 1 + 16, 1 + 16 },
	[KJ_MSG_ABORT] = { 1 + 2 + 1, KJ_ABORT_FRAME_MAX - 4 },
	[KJ_MSG_CHALLENGE] = { 1 + KJ_NONCE_LEN, 1 + KJ_NONCE_LEN },
	[KJ_MSG_PROOF] = { 1 + 2 + 1 + KJ_PROOF_SIG_LEN,
			   KJ_PROOF_FRAME_MAX - 4 },
};

const char *kj_msg_name(unsigned type)
{
	switch (type) {
	case KJ_MSG_HELLO:
		return "HELLO";
	case KJ_MSG_OFFER:
		return "OFFER";
	case KJ_MSG_DATA:
		return "DATA";
	case KJ_MSG_READBACK:
		return "READBACK";
	case KJ_MSG_COMMIT:
		return "COMMIT";
	case KJ_MSG_ABORT:
		return "ABORT";
	case KJ_MSG_CHALLENGE:
		return "CHALLENGE";
	case KJ_MSG_PROOF:
		return "PROOF";
	default:
		return "unknown";
	}
}

static const char *const abort_names[] = {
	[KJ_ABORT_PROTOCOL] = "protocol",
	[KJ_ABORT_LOCKED_OUT] = "locked_out",
	[KJ_ABORT_QUOTA] = "quota",
	[KJ_ABORT_DUPLICATE] = "duplicate",
	[KJ_ABORT_READBACK] = "readback",
	[KJ_ABORT_TIMEOUT] = "timeout",
	[KJ_ABORT_INTERNAL] = "internal",
	[KJ_ABORT_STOPPED] = "stopped",
	[KJ_ABORT_UNAUTHORIZED] = "unauthorized",
	[KJ_ABORT_COUNTERFEIT] = "counterfeit",
};

const char *kj_abort_name(unsigned code)
{
	if (code < KJ_ABORT_MIN || code > KJ_ABORT_MAX)
		return NULL;
	return abort_names[code];
}

int kj_abort_code_from_name(const char *name)
{
	for (unsigned c = KJ_ABORT_MIN; c <= KJ_ABORT_MAX; c++)
		if (name && !strcmp(name, abort_names[c]))
			return (int)c;
	return -EINVAL;
}

/* ---- Frame parser ---- */

static uint32_t role_types(enum kj_proto_role role)
{
	return role == KJ_ROLE_APPLIANCE ? ROLE_APPLIANCE_TYPES
					 : ROLE_SITE_TYPES;
}

void kj_frame_parser_init(struct kj_frame_parser *p, enum kj_proto_role role)
{
	memset(p, 0, sizeof(*p));
	p->role = role;
	p->accept = role_types(role);
}

void kj_frame_parser_expect(struct kj_frame_parser *p, uint32_t mask)
{
	p->accept = mask & role_types(p->role);
}

bool kj_frame_parser_idle(const struct kj_frame_parser *p)
{
	return !p->failed && p->in_data == false && p->need == 0 &&
	       p->have == 0;
}

static int parser_fail(struct kj_frame_parser *p, const char *why)
{
	p->failed = true;
	p->why = why;
	return -EBADMSG;
}

/*
 * Make `want` bytes of the current piece contiguous.  Zero-copy when the
 * piece lies wholly in the input, else accumulated in p->buf.  NULL when
 * the input ran out first (then all of it was consumed).
 */
static const uint8_t *gather(struct kj_frame_parser *p, const uint8_t *in,
			     size_t n, size_t *pos, uint32_t want)
{
	size_t avail = n - *pos, take;

	if (p->have == 0 && avail >= want) {
		const uint8_t *r = in + *pos;

		*pos += want;
		return r;
	}
	take = want - p->have;
	if (take > avail)
		take = avail;
	memcpy(p->buf + p->have, in + *pos, take);
	p->have += (uint32_t)take;
	*pos += take;
	if (p->have < want)
		return NULL;
	p->have = 0;
	return p->buf;
}

/*
 * PROTOCOL.md "Framing": the length is judged as soon as its 4 bytes are
 * in, before the type byte: a peer that sends a bad length and then
 * nothing gets ABORT PROTOCOL at once, not a TIMEOUT much later.
 */
static int check_len_early(struct kj_frame_parser *p, const uint8_t *in,
			   size_t n, size_t pos)
{
	uint8_t l[4];
	uint32_t len;

	if (p->have >= 4 || p->have + (n - pos) < 4)
		return 0; /* already judged, or not yet in */
	for (uint32_t i = 0; i < 4; i++)
		l[i] = i < p->have ? p->buf[i] : in[pos + i - p->have];
	len = kj_get_u32be(l);
	if (len < 1 || len > KJ_FRAME_LEN_MAX)
		return parser_fail(p, "frame length out of range 1..262144");
	return 0;
}

/* PROTOCOL.md "Framing": range, type, direction, order, per-type size. */
static int check_header(struct kj_frame_parser *p, const uint8_t *h)
{
	uint32_t len = kj_get_u32be(h);
	uint8_t type = h[4];

	if (len < 1 || len > KJ_FRAME_LEN_MAX)
		return parser_fail(p, "frame length out of range 1..262144");
	if (type < KJ_MSG_HELLO || type > KJ_MSG_PROOF)
		return parser_fail(p, "unknown frame type");
	if (!(role_types(p->role) & KJ_MSG_BIT(type)))
		return parser_fail(p, "frame type not sent in this direction");
	if (!(p->accept & KJ_MSG_BIT(type)))
		return parser_fail(p, "frame out of order");
	if (len < type_len[type].min || len > type_len[type].max)
		return parser_fail(p, "frame length wrong for its type");
	p->type = type;
	p->need = len - 1;
	return 0;
}

static int data_header(struct kj_frame_parser *p, const uint8_t *d)
{
	uint32_t payload = p->need - 5;

	p->data_stream = d[0];
	p->data_offset = kj_get_u32be(d + 1);
	if (p->data_stream > 1)
		return parser_fail(p, "DATA stream is neither 0 nor 1");
	if ((uint64_t)p->data_offset + payload > UINT32_MAX)
		return parser_fail(p, "DATA offset + length beyond 4 GiB");
	p->data_left = payload;
	p->data_first = true;
	p->in_data = true;
	return 0;
}

static int data_chunk(struct kj_frame_parser *p, const uint8_t *in, size_t n,
		      size_t *pos, struct kj_frame *f)
{
	uint32_t take = p->data_left;

	if (n - *pos < take)
		take = (uint32_t)(n - *pos);
	f->type = KJ_MSG_DATA;
	f->body = in + *pos;
	f->len = take;
	f->stream = p->data_stream;
	f->offset = p->data_offset;
	f->first = p->data_first;
	f->last = take == p->data_left;
	*pos += take;
	p->data_offset += take;
	p->data_left -= take;
	p->data_first = false;
	if (!p->data_left) {
		p->in_data = false;
		p->need = 0;
	}
	return KJ_FEED_DATA;
}

int kj_frame_feed(struct kj_frame_parser *p, const uint8_t *in, size_t n,
		  size_t *used, struct kj_frame *f)
{
	const uint8_t *b;
	size_t pos = 0;
	int rc;

	*used = 0;
	if (p->failed)
		return -EBADMSG;
	for (;;) {
		if (p->in_data) {
			if (pos == n)
				break;
			rc = data_chunk(p, in, n, &pos, f);
			*used = pos;
			return rc;
		}
		if (p->need == 0) {
			rc = check_len_early(p, in, n, pos);
			if (rc < 0) {
				*used = pos;
				return rc;
			}
			b = gather(p, in, n, &pos, KJ_FRAME_HDR_LEN);
			if (!b)
				break;
			rc = check_header(p, b);
			if (rc < 0) {
				*used = pos;
				return rc;
			}
			continue;
		}
		if (p->type == KJ_MSG_DATA) {
			b = gather(p, in, n, &pos, 5);
			if (!b)
				break;
			rc = data_header(p, b);
			if (rc < 0) {
				*used = pos;
				return rc;
			}
			continue;
		}
		b = gather(p, in, n, &pos, p->need);
		if (!b)
			break;
		f->type = p->type;
		f->body = b;
		f->len = p->need;
		p->need = 0;
		*used = pos;
		return KJ_FEED_FRAME;
	}
	*used = pos;
	return KJ_FEED_MORE;
}

/* ---- Body readers ---- */

bool kj_str8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i], lo = 0x80, hi = 0xbf;
		size_t more;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c < 0xc2 || c > 0xf4)
			return false; /* continuation, overlong, > U+10FFFF */
		more = c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong 3-byte */
		else if (c == 0xed)
			hi = 0x9f; /* UTF-16 surrogates */
		else if (c == 0xf0)
			lo = 0x90; /* overlong 4-byte */
		else if (c == 0xf4)
			hi = 0x8f; /* > U+10FFFF */
		if (len - i - 1 < more)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= more; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += more + 1;
	}
	return true;
}

struct rd {
	const uint8_t *p;
	size_t left;
	const char *why;
};

static bool rd_fail(struct rd *r, const char *why)
{
	if (!r->why)
		r->why = why;
	return false;
}

static bool rd_bytes(struct rd *r, size_t n, const uint8_t **out,
		     const char *why)
{
	if (r->why)
		return false;
	if (r->left < n)
		return rd_fail(r, why);
	*out = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

static bool rd_u8(struct rd *r, uint8_t *v, const char *why)
{
	const uint8_t *b;

	if (!rd_bytes(r, 1, &b, why))
		return false;
	*v = b[0];
	return true;
}

static bool rd_u16(struct rd *r, uint16_t *v, const char *why)
{
	const uint8_t *b;

	if (!rd_bytes(r, 2, &b, why))
		return false;
	*v = kj_get_u16be(b);
	return true;
}

static bool rd_u32(struct rd *r, uint32_t *v, const char *why)
{
	const uint8_t *b;

	if (!rd_bytes(r, 4, &b, why))
		return false;
	*v = kj_get_u32be(b);
	return true;
}

static bool rd_u64(struct rd *r, uint64_t *v, const char *why)
{
	const uint8_t *b;

	if (!rd_bytes(r, 8, &b, why))
		return false;
	*v = kj_get_u64be(b);
	return true;
}

/* str8 into a NUL-terminated char[256]. */
static bool rd_str8(struct rd *r, char *out, const char *trunc,
		    const char *bad)
{
	const uint8_t *s;
	uint8_t n;

	if (!rd_u8(r, &n, trunc) || !rd_bytes(r, n, &s, trunc))
		return false;
	if (!kj_str8_valid(s, n))
		return rd_fail(r, bad);
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* bytes16 of min..max bytes into out. */
static bool rd_bytes16(struct rd *r, uint8_t *out, uint8_t *out_len,
		       size_t min, size_t max, const char *trunc,
		       const char *bad_len)
{
	const uint8_t *s;
	uint16_t n;

	if (!rd_u16(r, &n, trunc))
		return false;
	if (n < min || n > max)
		return rd_fail(r, bad_len);
	if (!rd_bytes(r, n, &s, trunc))
		return false;
	memcpy(out, s, n);
	*out_len = (uint8_t)n;
	return true;
}

/* Common tail of every body parser: no trailing bytes, report why. */
static int rd_end(struct rd *r, const char **why, const char *trailing)
{
	if (!r->why && r->left)
		r->why = trailing;
	if (why)
		*why = r->why;
	return r->why ? -EBADMSG : 0;
}

int kj_hello_parse(const uint8_t *body, size_t len, struct kj_hello *h,
		   const char **why)
{
	struct rd r = { body, len, NULL };

	memset(h, 0, sizeof(*h));
	if (rd_u8(&r, &h->version, "HELLO: truncated version") &&
	    h->version != KJ_PROTO_VERSION)
		rd_fail(&r, "HELLO: version is not 1");
	rd_str8(&r, h->site_id, "HELLO: truncated site_id",
		"HELLO: site_id is not UTF-8 without NUL");
	rd_u16(&r, &h->socket, "HELLO: truncated socket");
	rd_bytes16(&r, h->uid, &h->uid_len, 1, KJ_UID_MAX,
		   "HELLO: truncated uid", "HELLO: uid length not 1..64");
	rd_str8(&r, h->hwrev, "HELLO: truncated hwrev",
		"HELLO: hwrev is not UTF-8 without NUL");
	if (rd_bytes16(&r, h->pubkey, &h->pubkey_len, 0, KJ_PUBKEY_LEN,
		       "HELLO: truncated device_pubkey",
		       "HELLO: device_pubkey length not 0 or 65")) {
		if (h->pubkey_len != 0 && h->pubkey_len != KJ_PUBKEY_LEN)
			rd_fail(&r, "HELLO: device_pubkey length not 0 or 65");
		else if (h->pubkey_len && h->pubkey[0] != 0x04)
			rd_fail(&r, "HELLO: device_pubkey is not SEC1 "
				    "uncompressed (0x04)");
	}
	return rd_end(&r, why, "HELLO: trailing bytes");
}

int kj_offer_parse(const uint8_t *body, size_t len, struct kj_offer *o,
		   const char **why)
{
	struct rd r = { body, len, NULL };
	const uint8_t *d;

	memset(o, 0, sizeof(*o));
	rd_u64(&r, &o->attempt, "OFFER: truncated attempt");
	rd_str8(&r, o->serial, "OFFER: truncated serial",
		"OFFER: serial is not UTF-8 without NUL");
	rd_str8(&r, o->fw_version, "OFFER: truncated fw_version",
		"OFFER: fw_version is not UTF-8 without NUL");
	if (rd_bytes(&r, 32, &d, "OFFER: truncated fw_sha256"))
		memcpy(o->fw_sha256, d, 32);
	rd_u32(&r, &o->fw_size, "OFFER: truncated fw_size");
	rd_u32(&r, &o->cred_size, "OFFER: truncated cred_size");
	return rd_end(&r, why, "OFFER: trailing bytes");
}

int kj_readback_parse(const uint8_t *body, size_t len,
		      uint8_t digest[KJ_DIGEST_LEN], const char **why)
{
	struct rd r = { body, len, NULL };
	const uint8_t *d;

	if (rd_bytes(&r, KJ_DIGEST_LEN, &d, "READBACK: truncated digest"))
		memcpy(digest, d, KJ_DIGEST_LEN);
	return rd_end(&r, why, "READBACK: trailing bytes");
}

int kj_commit_parse(const uint8_t *body, size_t len, struct kj_commit *c,
		    const char **why)
{
	struct rd r = { body, len, NULL };

	rd_u64(&r, &c->attempt, "COMMIT: truncated attempt");
	rd_u64(&r, &c->leaf_index, "COMMIT: truncated leaf_index");
	return rd_end(&r, why, "COMMIT: trailing bytes");
}

int kj_abort_parse(const uint8_t *body, size_t len, struct kj_abort *a,
		   const char **why)
{
	struct rd r = { body, len, NULL };

	memset(a, 0, sizeof(*a));
	if (rd_u16(&r, &a->code, "ABORT: truncated code") &&
	    (a->code < KJ_ABORT_MIN || a->code > KJ_ABORT_MAX))
		rd_fail(&r, "ABORT: code not 1..10");
	rd_str8(&r, a->message, "ABORT: truncated message",
		"ABORT: message is not UTF-8 without NUL");
	return rd_end(&r, why, "ABORT: trailing bytes");
}

int kj_challenge_parse(const uint8_t *body, size_t len,
		       uint8_t nonce[KJ_NONCE_LEN], const char **why)
{
	struct rd r = { body, len, NULL };
	const uint8_t *d;

	if (rd_bytes(&r, KJ_NONCE_LEN, &d, "CHALLENGE: truncated nonce"))
		memcpy(nonce, d, KJ_NONCE_LEN);
	return rd_end(&r, why, "CHALLENGE: trailing bytes");
}

int kj_proof_parse(const uint8_t *body, size_t len, struct kj_proof *p,
		   const char **why)
{
	struct rd r = { body, len, NULL };
	const uint8_t *d;

	memset(p, 0, sizeof(*p));
	if (rd_u16(&r, &p->cert_len, "PROOF: truncated certificate") &&
	    (p->cert_len < 1 || p->cert_len > KJ_PROOF_CERT_MAX))
		rd_fail(&r, "PROOF: certificate length not 1..2048");
	rd_bytes(&r, p->cert_len, &p->cert, "PROOF: truncated certificate");
	if (rd_bytes(&r, KJ_PROOF_SIG_LEN, &d, "PROOF: truncated signature"))
		memcpy(p->sig, d, KJ_PROOF_SIG_LEN);
	return rd_end(&r, why, "PROOF: trailing bytes");
}

int kj_data_parse(const uint8_t *body, size_t len, uint8_t *stream,
		  uint32_t *offset, const uint8_t **payload,
		  uint32_t *payload_len, const char **why)
{
	struct rd r = { body, len, NULL };

	rd_u8(&r, stream, "DATA: truncated stream");
	if (!r.why && *stream > 1)
		rd_fail(&r, "DATA: stream is neither 0 nor 1");
	rd_u32(&r, offset, "DATA: truncated offset");
	if (!r.why && (r.left < 1 || r.left > KJ_DATA_PAYLOAD_MAX))
		rd_fail(&r, "DATA: payload not 1..65536 bytes");
	if (!r.why && (uint64_t)*offset + r.left > UINT32_MAX)
		rd_fail(&r, "DATA: offset + length beyond 4 GiB");
	if (!r.why) {
		*payload = r.p;
		*payload_len = (uint32_t)r.left;
		r.left = 0;
	}
	return rd_end(&r, why, "DATA: trailing bytes");
}
