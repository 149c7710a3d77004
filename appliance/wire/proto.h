/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Programming-socket wire protocol, version 1 (spec/PROTOCOL.md): frame
 * parsing with exact bounds, message bodies, builders.
 *
 *   frame := length:u32be type:u8 body[length-1],  1 <= length <= 262144
 *
 * The incremental parser is made for an io_uring receive path: feed it the
 * bytes of each provided buffer as they arrive; it hands back complete
 * frames (pointing into the caller's bytes when a frame lies wholly inside
 * them, else into the parser's own small buffer), or says "need more", or
 * says "malformed" (the caller answers ABORT PROTOCOL and closes).
 *
 * Memory is bounded per connection: a frame whose length is out of range
 * for its type is refused as soon as its 5-byte header is seen, so the
 * parser never buffers more than the largest message its role may receive
 * (KJ_PARSER_BUF bytes, embedded).  DATA frames (site role) are never
 * buffered: their payload is streamed to the caller chunk by chunk.
 *
 * Nothing in this file logs what a peer sent: a hostile site controls that
 * input, and PROTOCOL.md wants pre-HELLO noise counted and logged
 * rate-limited.  Parsers return -EBADMSG and a static reason in *why for
 * the caller's (rate-limited) log line.  Builders take our own data; they
 * log and return -EINVAL when it does not fit the format (a bug or a bad
 * work order field).
 */
#ifndef KINJECT_PROTO_H
#define KINJECT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"

#define KJ_PROTO_VERSION 1

enum kj_msg_type {
	KJ_MSG_HELLO = 0x01,	/* site -> appliance */
	KJ_MSG_OFFER = 0x02,	/* appliance -> site */
	KJ_MSG_DATA = 0x03,	/* appliance -> site */
	KJ_MSG_READBACK = 0x04, /* site -> appliance */
	KJ_MSG_COMMIT = 0x05,	/* appliance -> site */
	KJ_MSG_ABORT = 0x06,	/* either */
	KJ_MSG_CHALLENGE = 0x07, /* appliance -> site (device authenticity) */
	KJ_MSG_PROOF = 0x08,	/* site -> appliance */
};

/* Bit for a type in an accept mask (kj_frame_parser_expect). */
#define KJ_MSG_BIT(t) (1u << (t))

/* "HELLO", "OFFER", ...; "unknown" otherwise. */
const char *kj_msg_name(unsigned type);

/* ABORT codes, PROTOCOL.md "ABORT codes". */
enum kj_abort_code {
	KJ_ABORT_PROTOCOL = 1,
	KJ_ABORT_LOCKED_OUT = 2,
	KJ_ABORT_QUOTA = 3,
	KJ_ABORT_DUPLICATE = 4,
	KJ_ABORT_READBACK = 5,
	KJ_ABORT_TIMEOUT = 6,
	KJ_ABORT_INTERNAL = 7,
	KJ_ABORT_STOPPED = 8,
	KJ_ABORT_UNAUTHORIZED = 9,
	KJ_ABORT_COUNTERFEIT = 10,
};
#define KJ_ABORT_MIN KJ_ABORT_PROTOCOL
#define KJ_ABORT_MAX KJ_ABORT_COUNTERFEIT

/*
 * Lower-case name for logs and journal records: "protocol", "locked_out",
 * "quota", "duplicate", "readback", "timeout", "internal", "stopped",
 * "unauthorized", "counterfeit"; NULL for a code outside 1..10.
 */
const char *kj_abort_name(unsigned code);
/* Inverse of kj_abort_name; -EINVAL for an unknown name. */
int kj_abort_code_from_name(const char *name);

/* Sizes, all from PROTOCOL.md. */
#define KJ_FRAME_LEN_MAX 262144u   /* max of the length field */
#define KJ_FRAME_HDR_LEN 5	   /* length:u32be type:u8 */
#define KJ_DATA_HDR_LEN 10	   /* frame header + stream:u8 offset:u32be */
#define KJ_DATA_PAYLOAD_MAX 65536u /* bytes per DATA frame, at least 1 */
#define KJ_UID_MAX 64
#define KJ_PUBKEY_LEN 65	   /* SEC1 uncompressed P-256: 0x04 X Y */
#define KJ_STR8_MAX 255
#define KJ_DIGEST_LEN 32
#define KJ_NONCE_LEN 32		   /* CHALLENGE */
#define KJ_PROOF_SIG_LEN 64	   /* PROOF: P-256 ECDSA r || s */
/*
 * PROOF's certificate is a bytes16, but every connection buffers the
 * largest frame it may receive (PROTOCOL.md: per-connection memory
 * bounded), so the appliance takes device certificates up to 2 KiB (a
 * factory P-256 certificate is 400-700 bytes); a longer PROOF is refused
 * from its header as a malformed frame.
 */
#define KJ_PROOF_CERT_MAX 2048

/* Whole frames on the wire (header included). */
#define KJ_HELLO_FRAME_MAX \
	(KJ_FRAME_HDR_LEN + 1 + (1 + 255) + 2 + (2 + 64) + (1 + 255) + (2 + 65))
#define KJ_OFFER_FRAME_MAX \
	(KJ_FRAME_HDR_LEN + 8 + (1 + 255) + (1 + 255) + 32 + 4 + 4)
#define KJ_READBACK_FRAME_LEN (KJ_FRAME_HDR_LEN + 32)
#define KJ_COMMIT_FRAME_LEN (KJ_FRAME_HDR_LEN + 8 + 8)
#define KJ_ABORT_FRAME_MAX (KJ_FRAME_HDR_LEN + 2 + (1 + 255))
#define KJ_CHALLENGE_FRAME_LEN (KJ_FRAME_HDR_LEN + KJ_NONCE_LEN)
#define KJ_PROOF_FRAME_MAX \
	(KJ_FRAME_HDR_LEN + 2 + KJ_PROOF_CERT_MAX + KJ_PROOF_SIG_LEN)

/* Largest frame either role ever buffers (a PROOF). */
#define KJ_PARSER_BUF KJ_PROOF_FRAME_MAX

/* Which side of the connection the parser reads for. */
enum kj_proto_role {
	KJ_ROLE_APPLIANCE, /* receives HELLO, PROOF, READBACK, ABORT */
	KJ_ROLE_SITE,	   /* receives CHALLENGE, OFFER, DATA (streamed),
			    * COMMIT, ABORT */
};

/* What kj_frame_feed found. */
enum kj_feed_result {
	KJ_FEED_MORE = 0,  /* all input consumed, nothing complete yet */
	KJ_FEED_FRAME = 1, /* f: a complete frame (not DATA) */
	KJ_FEED_DATA = 2,  /* f: a chunk of one DATA frame's payload */
};

struct kj_frame {
	uint8_t type;
	/*
	 * KJ_FEED_FRAME: the whole body (length-1 bytes).  KJ_FEED_DATA: this
	 * chunk of payload (>= 1 byte).  Valid until the next feed call and
	 * while the caller's input bytes are alive.
	 */
	const uint8_t *body;
	uint32_t len;
	/* KJ_FEED_DATA only. */
	uint8_t stream;	  /* 0 firmware, 1 credential */
	uint32_t offset;  /* stream offset of body[0] */
	bool first;	  /* first chunk of its frame */
	bool last;	  /* last chunk of its frame */
};

struct kj_frame_parser {
	enum kj_proto_role role;
	uint32_t accept;     /* KJ_MSG_BIT mask of types allowed now */
	uint32_t have;	     /* bytes of the current frame in buf */
	uint32_t need;	     /* whole frame size once the header is in */
	uint8_t type;
	/* DATA streaming state */
	bool in_data;
	bool data_first;
	uint8_t data_stream;
	uint32_t data_offset; /* stream offset of the next payload byte */
	uint32_t data_left;   /* payload bytes still to come */
	const char *why;      /* reason of the last -EBADMSG, static */
	bool failed;	      /* sticky: a malformed stream stays malformed */
	uint8_t buf[KJ_PARSER_BUF];
};

/* Start a connection: accept every type the role may receive. */
void kj_frame_parser_init(struct kj_frame_parser *p, enum kj_proto_role role);

/*
 * Narrow the types allowed next (message order, PROTOCOL.md "Sequence"):
 * a frame of another type is malformed as soon as its header is seen, so
 * out-of-order bodies are never buffered.  Masked by the role's types.
 */
void kj_frame_parser_expect(struct kj_frame_parser *p, uint32_t mask);

/* True between frames (no partial frame buffered): a clean EOF point. */
bool kj_frame_parser_idle(const struct kj_frame_parser *p);

/*
 * Consume bytes from in[0..n).  Stops at the first complete frame or DATA
 * chunk, with *used = bytes consumed; call again with in + *used.
 * Returns KJ_FEED_MORE (*used == n), KJ_FEED_FRAME, KJ_FEED_DATA, or
 * -EBADMSG with p->why set (out-of-range length, unknown type, a type the
 * role or the current state does not accept, bad DATA stream); once
 * failed, every later call returns -EBADMSG.  Bodies are not parsed here:
 * call the kj_*_parse function for the type.
 */
KJ_MUST_CHECK int kj_frame_feed(struct kj_frame_parser *p, const uint8_t *in,
				size_t n, size_t *used, struct kj_frame *f);

/* ---- Message bodies.  Strings are NUL-terminated copies (str8 has no NUL). */

struct kj_hello {
	uint8_t version;
	char site_id[KJ_STR8_MAX + 1];
	uint16_t socket;
	uint8_t uid_len; /* 1..64 */
	uint8_t uid[KJ_UID_MAX];
	char hwrev[KJ_STR8_MAX + 1];
	uint8_t pubkey_len; /* 0 or 65 */
	uint8_t pubkey[KJ_PUBKEY_LEN];
};

struct kj_offer {
	uint64_t attempt;
	char serial[KJ_STR8_MAX + 1];
	char fw_version[KJ_STR8_MAX + 1];
	uint8_t fw_sha256[32];
	uint32_t fw_size;
	uint32_t cred_size;
};

struct kj_commit {
	uint64_t attempt;
	uint64_t leaf_index;
};

struct kj_abort {
	uint16_t code; /* 1..10 */
	char message[KJ_STR8_MAX + 1];
};

/* PROOF: cert points into the parsed body (valid while it is). */
struct kj_proof {
	const uint8_t *cert;
	uint16_t cert_len; /* 1..KJ_PROOF_CERT_MAX */
	uint8_t sig[KJ_PROOF_SIG_LEN];
};

/*
 * Exact body parsers: every field checked, no trailing bytes.  0 or
 * -EBADMSG with a static reason in *why (may be NULL).
 */
KJ_MUST_CHECK int kj_hello_parse(const uint8_t *body, size_t len,
				 struct kj_hello *h, const char **why);
KJ_MUST_CHECK int kj_offer_parse(const uint8_t *body, size_t len,
				 struct kj_offer *o, const char **why);
KJ_MUST_CHECK int kj_readback_parse(const uint8_t *body, size_t len,
				    uint8_t digest[KJ_DIGEST_LEN],
				    const char **why);
KJ_MUST_CHECK int kj_commit_parse(const uint8_t *body, size_t len,
				  struct kj_commit *c, const char **why);
KJ_MUST_CHECK int kj_abort_parse(const uint8_t *body, size_t len,
				 struct kj_abort *a, const char **why);
KJ_MUST_CHECK int kj_challenge_parse(const uint8_t *body, size_t len,
				     uint8_t nonce[KJ_NONCE_LEN],
				     const char **why);
KJ_MUST_CHECK int kj_proof_parse(const uint8_t *body, size_t len,
				 struct kj_proof *p, const char **why);
/* A whole DATA body (tests, fuzzing; the parser streams DATA instead). */
KJ_MUST_CHECK int kj_data_parse(const uint8_t *body, size_t len,
				uint8_t *stream, uint32_t *offset,
				const uint8_t **payload, uint32_t *payload_len,
				const char **why);

/* str8 rule: valid UTF-8 (no overlongs, surrogates, > U+10FFFF), no NUL. */
bool kj_str8_valid(const uint8_t *s, size_t len);

/*
 * ---- Builders.  Write one whole frame into out (cap bytes) and return
 * its size, or -EINVAL (a field does not fit the format; logged) or
 * -ENOSPC (cap too small).
 */
KJ_MUST_CHECK int kj_hello_build(uint8_t *out, size_t cap,
				 const struct kj_hello *h);
KJ_MUST_CHECK int kj_offer_build(uint8_t *out, size_t cap,
				 const struct kj_offer *o);
KJ_MUST_CHECK int kj_readback_build(uint8_t *out, size_t cap,
				    const uint8_t digest[KJ_DIGEST_LEN]);
KJ_MUST_CHECK int kj_commit_build(uint8_t *out, size_t cap,
				  uint64_t attempt, uint64_t leaf_index);
/*
 * ABORT with a human message (NULL = empty).  A message longer than 255
 * bytes is cut at a UTF-8 character boundary; invalid UTF-8 is -EINVAL.
 * code must be 1..10.
 */
KJ_MUST_CHECK int kj_abort_build(uint8_t *out, size_t cap, unsigned code,
				 const char *message);
KJ_MUST_CHECK int kj_challenge_build(uint8_t *out, size_t cap,
				     const uint8_t nonce[KJ_NONCE_LEN]);
/* cert_len 1..KJ_PROOF_CERT_MAX. */
KJ_MUST_CHECK int kj_proof_build(uint8_t *out, size_t cap,
				 const uint8_t *cert, size_t cert_len,
				 const uint8_t sig[KJ_PROOF_SIG_LEN]);

/*
 * The 10-byte header of a DATA frame carrying payload_len (1..65536)
 * bytes of stream (0 firmware, 1 credential) at offset: send it from a
 * small buffer and the payload straight from the arena (no copy).
 * Returns KJ_DATA_HDR_LEN or -EINVAL.
 */
KJ_MUST_CHECK int kj_data_hdr_build(uint8_t out[KJ_DATA_HDR_LEN],
				    uint8_t stream, uint32_t offset,
				    uint32_t payload_len);

/* Number of DATA frames for a stream of size bytes (0 for an empty one). */
static inline uint32_t kj_data_frames(uint32_t size)
{
	return (uint32_t)(((uint64_t)size + KJ_DATA_PAYLOAD_MAX - 1) /
			  KJ_DATA_PAYLOAD_MAX);
}

#endif
