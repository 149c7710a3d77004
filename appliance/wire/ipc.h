/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keeper <-> injector messages (SPEC.md §2, docs/ENGINE.md "IPC").
 *
 * One SOCK_SEQPACKET socketpair per injector.  A packet is at most
 * KJ_IPC_MSG_MAX bytes and carries a batch of entries, so a busy injector
 * needs one send per loop turn, not one per device:
 *
 *   packet := entry*        entry := kj_ipc_ent (8 bytes) body[len] pad8
 *
 * Bodies are fixed C structs (both ends are the same binary on the same
 * host), variable parts only at the end of ADMIT and OFFER with their
 * lengths in the fixed part.  kj_ipc_next() checks the framing and the
 * exact size of each type; what a type is permitted to do in which state
 * is the keeper's dispatch table (keeper.c, OpenSSH monitor.c style).  On
 * the keeper side any framing or size error is fatal to the injector: it
 * is killed and a fresh one started.
 *
 * A tag names one connection slot of the injector (0 .. max_conns-1).  The
 * injector never reuses a slot while a request of it is unanswered, and
 * sends at most one request per slot at a time.
 */
#ifndef KINJECT_IPC_H
#define KINJECT_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "proto.h"

#define KJ_IPC_MSG_MAX 65536u

enum kj_ipc_type {
	/* injector -> keeper */
	KJ_IPC_READY = 1,   /* once, first: the sandbox is in place */
	KJ_IPC_ADMIT = 2,   /* a valid HELLO: reserve, or refuse */
	KJ_IPC_OUTCOME = 3, /* how an OFFERed attempt ended */
	KJ_IPC_COUNTERS = 4, /* connection counters (no device data) */
	KJ_IPC_PROOF = 5,   /* the site's answer to a CHALLENGE */
	KJ_IPC_SIGN = 6,    /* TLS: a CertificateVerify input to sign */
	/* keeper -> injector */
	KJ_IPC_OFFER = 16,  /* the reservation is durable: send it */
	KJ_IPC_REFUSE = 17, /* ABORT with a code, no reservation */
	KJ_IPC_VERDICT = 18, /* record durable: COMMIT, or ABORT code */
	KJ_IPC_STOP = 19,   /* close listeners and idle sockets, exit */
	KJ_IPC_CHALLENGE = 20, /* send CHALLENGE, then forward the PROOF */
	KJ_IPC_SIGNED = 21, /* TLS: the signature, or a refusal */
	KJ_IPC_LOAD = 22,   /* the other workers' open connections */
	KJ_IPC_TYPE_MAX_ = 32,
};

struct kj_ipc_ent {
	uint16_t type;
	uint16_t len; /* body bytes, without padding */
	uint32_t reserved; /* 0 */
};

struct kj_ipc_ready {
	uint32_t worker;
	uint32_t max_conns; /* tags are below this */
	uint32_t pid;
	uint32_t flags;	    /* reserved, 0 */
};

/*
 * Fixed part; then site_len + uid_len + hwrev_len + pubkey_len + cn_len
 * bytes.  cn: the TLS client certificate's subject CN, which the HELLO's
 * site_id must equal (PROTOCOL.md "TLS"); cn_len 0: not a TLS connection.
 */
struct kj_ipc_admit {
	uint32_t tag;
	uint16_t socket;
	uint8_t site_len;   /* 0..255 */
	uint8_t uid_len;    /* 1..64 */
	uint8_t hwrev_len;  /* 0..255 */
	uint8_t pubkey_len; /* 0 or 65 */
	uint8_t cn_len;     /* 0..255 */
	uint8_t pad;
};
#define KJ_IPC_ADMIT_MAX                                            \
	(sizeof(struct kj_ipc_admit) + KJ_STR8_MAX + KJ_UID_MAX +   \
	 KJ_STR8_MAX + KJ_PUBKEY_LEN + KJ_STR8_MAX)

/* How an attempt ended, as the injector saw it. */
enum kj_ipc_outcome_kind {
	KJ_OUT_READBACK = 1, /* digest received: the keeper compares */
	KJ_OUT_TIMEOUT,
	KJ_OUT_DISCONNECTED,
	KJ_OUT_PROTOCOL,
	KJ_OUT_SITE_ABORT,
	KJ_OUT_INTERNAL,
	KJ_OUT_MAX_ = KJ_OUT_INTERNAL,
};

struct kj_ipc_outcome {
	uint32_t tag;
	uint8_t kind;	    /* enum kj_ipc_outcome_kind */
	uint8_t pad;
	uint16_t site_code; /* KJ_OUT_SITE_ABORT: the site's ABORT code */
	uint64_t attempt;
	uint8_t digest[KJ_DIGEST_LEN]; /* KJ_OUT_READBACK */
};

/* Pre-HELLO noise and connection life, totals since the injector began. */
struct kj_ipc_counters {
	uint64_t accepted;
	uint64_t closed;
	uint64_t pre_hello_protocol; /* garbage, bad lengths, bad HELLO */
	uint64_t pre_hello_timeout;
	uint64_t pre_hello_eof;	     /* closed with a partial frame */
	uint64_t over_limit;	     /* refused: --max-connections */
	uint64_t refusal_closed;     /* closed: refusal budget spent */
	uint64_t open;		     /* connections now */
	uint64_t bytes_sent;
	/* TLS listeners (docs/TLS.md): handshakes that ended in kTLS, in
	 * user-space records, or refused (counted, never recorded) */
	uint64_t tls_ktls, tls_user, tls_refused;
};

/* Fixed part; then serial_len bytes. */
struct kj_ipc_offer {
	uint32_t tag;
	uint32_t blob_len;  /* cred_blob bytes */
	uint64_t attempt;
	uint64_t blob_off;  /* arena offset of the cred_blob */
	uint8_t serial_len; /* 1..255 */
	uint8_t pad[7];
};
#define KJ_IPC_OFFER_MAX (sizeof(struct kj_ipc_offer) + KJ_STR8_MAX)

/* KJ_IPC_CHALLENGE: the nonce the keeper drew for this device. */
struct kj_ipc_challenge {
	uint32_t tag;
	uint32_t pad;
	uint8_t nonce[KJ_NONCE_LEN];
};

/*
 * KJ_IPC_PROOF: every CHALLENGE gets one.  KJ_PROOF_GIVEN carries the
 * PROOF's fields (then cert_len bytes of certificate follow); the others
 * say why there is none, each recorded `counterfeit' by the keeper.
 */
enum kj_ipc_proof_status {
	KJ_PROOF_GIVEN = 0,
	KJ_PROOF_MALFORMED,	/* a PROOF (or frame) that does not parse */
	KJ_PROOF_SITE_ABORT,	/* the site answered ABORT */
	KJ_PROOF_TIMEOUT,
	KJ_PROOF_DISCONNECTED,
	KJ_PROOF_STATUS_MAX_ = KJ_PROOF_DISCONNECTED,
};

struct kj_ipc_proof {
	uint32_t tag;
	uint16_t cert_len;  /* GIVEN: 1..KJ_PROOF_CERT_MAX; else 0 */
	uint8_t status;	    /* enum kj_ipc_proof_status */
	uint8_t pad;
	uint8_t sig[KJ_PROOF_SIG_LEN];
};
#define KJ_IPC_PROOF_MAX (sizeof(struct kj_ipc_proof) + KJ_PROOF_CERT_MAX)

/*
 * KJ_IPC_SIGN: the bytes the TLS server key must sign for a handshake
 * (docs/TLS.md); fixed part, then len bytes.  At most one per slot at a
 * time, before its HELLO; the keeper answers SIGNED at once.  More room
 * than a CertificateVerify input, so the keeper sees (and refuses) what
 * else an injector might ask for.
 */
#define KJ_IPC_SIGN_IN_MAX 512
struct kj_ipc_sign {
	uint32_t tag;
	uint16_t len;	/* 1..KJ_IPC_SIGN_IN_MAX */
	uint16_t pad;
};
#define KJ_IPC_SIGN_MAX (sizeof(struct kj_ipc_sign) + KJ_IPC_SIGN_IN_MAX)

/* KJ_IPC_SIGNED: the DER ECDSA signature; sig_len 0: refused (rate
 * limit, HSM error): the handshake fails. */
#define KJ_IPC_SIG_MAX 72
struct kj_ipc_signed {
	uint32_t tag;
	uint16_t sig_len; /* 0..KJ_IPC_SIG_MAX */
	uint16_t pad;
	uint8_t sig[KJ_IPC_SIG_MAX];
};

struct kj_ipc_refuse {
	uint32_t tag;
	uint16_t code; /* ABORT code: LOCKED_OUT QUOTA DUPLICATE INTERNAL
			* STOPPED UNAUTHORIZED COUNTERFEIT PROTOCOL */
	uint16_t pad;
};

/* VERDICT code for an attempt that already failed: tell the site nothing. */
#define KJ_VERDICT_SILENT 0xffffu

struct kj_ipc_verdict {
	uint32_t tag;
	/* 0: COMMIT; 1..10 the ABORT code (READBACK, ...); KJ_VERDICT_SILENT.
	 * Every OUTCOME gets one, so the slot is free again after it. */
	uint16_t code;
	uint16_t pad;
	uint64_t attempt;
	uint64_t leaf_index;
};

/*
 * KJ_IPC_LOAD: what the keeper knows (from COUNTERS) of the other workers,
 * sent when it changes: a worker above its share of the open connections
 * leaves the next ones to the others (docs/ENGINE.md, accept spread).
 */
struct kj_ipc_load {
	uint32_t others_open;	/* the other live workers' open connections */
	uint16_t workers;	/* live workers (started, not dead), this too */
	uint16_t others_room;	/* live others below their share */
};

struct kj_ipc_stop {
	uint32_t reason; /* ABORT code for HELLOs still arriving: QUOTA or
			  * STOPPED */
	uint32_t pad;
};

/* Name for logs. */
const char *kj_ipc_type_name(unsigned type);

/* ---- building a packet ---------------------------------------------- */

struct kj_ipc_buf {
	uint8_t *p;  /* KJ_IPC_MSG_MAX bytes */
	size_t len;
	unsigned n;  /* entries */
};

/* Bytes an entry of body length len takes (header + padding). */
static inline size_t kj_ipc_ent_size(size_t len)
{
	return sizeof(struct kj_ipc_ent) + ((len + 7) & ~(size_t)7);
}

/*
 * Append an entry with body bytes [a, a+alen) then [b, b+blen) (b may be
 * NULL).  -ENOSPC when it does not fit (send the packet, start a new one).
 */
KJ_MUST_CHECK int kj_ipc_put(struct kj_ipc_buf *b, unsigned type,
			     const void *a, size_t alen, const void *c,
			     size_t clen);

/* ---- reading a packet ----------------------------------------------- */

struct kj_ipc_iter {
	const uint8_t *p;
	size_t len;
	size_t off;
};

static inline void kj_ipc_iter_init(struct kj_ipc_iter *it, const void *p,
				    size_t len)
{
	it->p = p;
	it->len = len;
	it->off = 0;
}

/*
 * Next entry: 1 with *type, *body, *len set; 0 at the end of the packet;
 * -EBADMSG with a static reason in *why for bad framing, an unknown type,
 * or a body whose size is wrong for its type (fixed size, or fixed part +
 * the lengths it declares, each within its PROTOCOL.md bound).
 */
KJ_MUST_CHECK int kj_ipc_next(struct kj_ipc_iter *it, unsigned *type,
			      const uint8_t **body, size_t *len,
			      const char **why);

#endif
