// SPDX-License-Identifier: Apache-2.0
/*
 * Frame builders, spec/PROTOCOL.md "Messages" (proto.h).  They encode our
 * own data and log when it does not fit the format; apart from proto.c,
 * whose parser and readers take a hostile peer's bytes and never log.
 */
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "proto.h"

struct wr {
	uint8_t *p;
	size_t cap, len;
};

static void wr_bytes(struct wr *w, const void *b, size_t n)
{
	if (w->len + n <= w->cap && n)
		memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void wr_u8(struct wr *w, uint8_t v)
{
	wr_bytes(w, &v, 1);
}

static void wr_u16(struct wr *w, uint16_t v)
{
	uint8_t b[2];

	kj_put_u16be(b, v);
	wr_bytes(w, b, 2);
}

static void wr_u32(struct wr *w, uint32_t v)
{
	uint8_t b[4];

	kj_put_u32be(b, v);
	wr_bytes(w, b, 4);
}

static void wr_u64(struct wr *w, uint64_t v)
{
	uint8_t b[8];

	kj_put_u64be(b, v);
	wr_bytes(w, b, 8);
}

static int check_str8(const char *s, const char *what)
{
	size_t n = strlen(s);

	if (n > KJ_STR8_MAX) {
		kj_err("%s: %zu bytes, more than the 255 of a str8 "
		       "(PROTOCOL.md)", what, n);
		return -EINVAL;
	}
	if (!kj_str8_valid((const uint8_t *)s, n)) {
		kj_err("%s: not valid UTF-8", what);
		return -EINVAL;
	}
	return 0;
}

static void wr_str8(struct wr *w, const char *s)
{
	size_t n = strlen(s);

	wr_u8(w, (uint8_t)n);
	wr_bytes(w, s, n);
}

/* Start a frame of type; its length is patched by wr_finish. */
static struct wr wr_start(uint8_t *out, size_t cap, uint8_t type)
{
	struct wr w = { out, cap, 0 };

	wr_u32(&w, 0);
	wr_u8(&w, type);
	return w;
}

static int wr_finish(struct wr *w, const char *what)
{
	if (w->len > w->cap) {
		kj_err("%s: frame of %zu bytes does not fit a %zu-byte buffer",
		       what, w->len, w->cap);
		return -ENOSPC;
	}
	kj_put_u32be(w->p, (uint32_t)(w->len - 4));
	return (int)w->len;
}

int kj_hello_build(uint8_t *out, size_t cap, const struct kj_hello *h)
{
	struct wr w;

	KJ_TRY(check_str8(h->site_id, "HELLO site_id"));
	KJ_TRY(check_str8(h->hwrev, "HELLO hwrev"));
	if (h->uid_len < 1 || h->uid_len > KJ_UID_MAX) {
		kj_err("HELLO uid: %u bytes, not 1..64", h->uid_len);
		return -EINVAL;
	}
	if (h->pubkey_len != 0 &&
	    (h->pubkey_len != KJ_PUBKEY_LEN || h->pubkey[0] != 0x04)) {
		kj_err("HELLO device_pubkey: not empty nor 65 bytes 0x04...");
		return -EINVAL;
	}
	w = wr_start(out, cap, KJ_MSG_HELLO);
	wr_u8(&w, h->version);
	wr_str8(&w, h->site_id);
	wr_u16(&w, h->socket);
	wr_u16(&w, h->uid_len);
	wr_bytes(&w, h->uid, h->uid_len);
	wr_str8(&w, h->hwrev);
	wr_u16(&w, h->pubkey_len);
	wr_bytes(&w, h->pubkey, h->pubkey_len);
	return wr_finish(&w, "HELLO");
}

int kj_offer_build(uint8_t *out, size_t cap, const struct kj_offer *o)
{
	struct wr w;

	KJ_TRY(check_str8(o->serial, "OFFER serial"));
	KJ_TRY(check_str8(o->fw_version, "OFFER fw_version"));
	w = wr_start(out, cap, KJ_MSG_OFFER);
	wr_u64(&w, o->attempt);
	wr_str8(&w, o->serial);
	wr_str8(&w, o->fw_version);
	wr_bytes(&w, o->fw_sha256, 32);
	wr_u32(&w, o->fw_size);
	wr_u32(&w, o->cred_size);
	return wr_finish(&w, "OFFER");
}

int kj_readback_build(uint8_t *out, size_t cap,
		      const uint8_t digest[KJ_DIGEST_LEN])
{
	struct wr w = wr_start(out, cap, KJ_MSG_READBACK);

	wr_bytes(&w, digest, KJ_DIGEST_LEN);
	return wr_finish(&w, "READBACK");
}

int kj_commit_build(uint8_t *out, size_t cap, uint64_t attempt,
		    uint64_t leaf_index)
{
	struct wr w = wr_start(out, cap, KJ_MSG_COMMIT);

	wr_u64(&w, attempt);
	wr_u64(&w, leaf_index);
	return wr_finish(&w, "COMMIT");
}

int kj_abort_build(uint8_t *out, size_t cap, unsigned code,
		   const char *message)
{
	size_t n = message ? strlen(message) : 0;
	struct wr w;

	if (code < KJ_ABORT_MIN || code > KJ_ABORT_MAX) {
		kj_err("ABORT: code %u is not 1..10", code);
		return -EINVAL;
	}
	if (n && !kj_str8_valid((const uint8_t *)message, n)) {
		kj_err("ABORT message: not valid UTF-8");
		return -EINVAL;
	}
	/* Cut at a character boundary: never before a continuation byte. */
	if (n > KJ_STR8_MAX) {
		n = KJ_STR8_MAX;
		while (n && ((uint8_t)message[n] & 0xc0) == 0x80)
			n--;
	}
	w = wr_start(out, cap, KJ_MSG_ABORT);
	wr_u16(&w, (uint16_t)code);
	wr_u8(&w, (uint8_t)n);
	wr_bytes(&w, message, n);
	return wr_finish(&w, "ABORT");
}

int kj_challenge_build(uint8_t *out, size_t cap,
		       const uint8_t nonce[KJ_NONCE_LEN])
{
	struct wr w = wr_start(out, cap, KJ_MSG_CHALLENGE);

	wr_bytes(&w, nonce, KJ_NONCE_LEN);
	return wr_finish(&w, "CHALLENGE");
}

int kj_proof_build(uint8_t *out, size_t cap, const uint8_t *cert,
		   size_t cert_len, const uint8_t sig[KJ_PROOF_SIG_LEN])
{
	struct wr w;

	if (cert_len < 1 || cert_len > KJ_PROOF_CERT_MAX) {
		kj_err("PROOF certificate: %zu bytes, not 1..%d", cert_len,
		       KJ_PROOF_CERT_MAX);
		return -EINVAL;
	}
	w = wr_start(out, cap, KJ_MSG_PROOF);
	wr_u16(&w, (uint16_t)cert_len);
	wr_bytes(&w, cert, cert_len);
	wr_bytes(&w, sig, KJ_PROOF_SIG_LEN);
	return wr_finish(&w, "PROOF");
}

int kj_data_hdr_build(uint8_t out[KJ_DATA_HDR_LEN], uint8_t stream,
		      uint32_t offset, uint32_t payload_len)
{
	if (stream > 1 || payload_len < 1 ||
	    payload_len > KJ_DATA_PAYLOAD_MAX ||
	    (uint64_t)offset + payload_len > UINT32_MAX) {
		kj_err("DATA: stream %u offset %u length %u out of range "
		       "(PROTOCOL.md: stream 0/1, 1..65536 bytes)",
		       stream, offset, payload_len);
		return -EINVAL;
	}
	kj_put_u32be(out, 1 + 5 + payload_len);
	out[4] = KJ_MSG_DATA;
	out[5] = stream;
	kj_put_u32be(out + 6, offset);
	return KJ_DATA_HDR_LEN;
}
