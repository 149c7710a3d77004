/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keeper as the TLS key's signing monitor (PROTOCOL.md "TLS"; OpenSSH's
 * privilege-separation monitor signs for sshd the same way).  The
 * sandboxed injector runs the TLS 1.3 handshake and sends the keeper the
 * bytes its CertificateVerify must sign; the keeper signs them in the HSM
 * only when they are exactly a TLS 1.3 server CertificateVerify input
 * (RFC 8446 §4.4.3), and no faster than the rate limit allows, so a
 * compromised injector can neither make the key sign anything else (a
 * certificate, a client CertificateVerify, another protocol's message) nor
 * use the HSM as a signing oracle at full speed.
 */
#ifndef KINJECT_KEEPER_SIGN_H
#define KINJECT_KEEPER_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "base/log.h"
#include "inputs/tls_key.h"

/*
 * RFC 8446 §4.4.3: 64 spaces, the context string, one zero byte, then the
 * transcript hash.  The injector offers only TLS_AES_128_GCM_SHA256, so
 * the hash is SHA-256: 32 bytes, 130 in all.
 */
#define KJ_TLS_CV_CONTEXT "TLS 1.3, server CertificateVerify"
#define KJ_TLS_CV_HASH_LEN 32
#define KJ_TLS_CV_LEN (64 + sizeof(KJ_TLS_CV_CONTEXT) + KJ_TLS_CV_HASH_LEN)

/* Token bucket: rate signatures per second, at most burst at once. */
struct kj_sign_limit {
	unsigned rate, burst;
	uint64_t tokens_ms; /* tokens x 1000, so whole milliseconds refill */
	uint64_t last_ms;
	uint64_t signed_n, refused_n, limited_n;
	struct kj_ratelimit log; /* "over the limit" lines */
};

/*
 * `kinject run --tls-sign-rate N --tls-sign-burst N' (docs/TLS.md).
 * Defaults: a line's connections are long-lived (many devices each), so
 * handshakes are rare; a burst covers every connection at once after an
 * injector restart (--max-connections default).  The flags' ranges:
 * 1 to 100,000 signatures a second; a burst of 1 to 65,536 (the most
 * --max-connections allows).
 */
#define KJ_SIGN_RATE_DEFAULT 200u
#define KJ_SIGN_RATE_MAX 100000u
#define KJ_SIGN_BURST_DEFAULT 4096u
#define KJ_SIGN_BURST_MAX 65536u

/*
 * Full: burst signatures now, then rate a second.  0 for rate or burst
 * is its default.
 */
void kj_sign_limit_init(struct kj_sign_limit *l, unsigned rate,
			unsigned burst, uint64_t now_ms);

struct keeper;
/* The keeper's limit as its job's limits set it (tls_sign_rate,
 * tls_sign_burst: the flags), full at now_ms. */
void kj_kp_sign_setup(struct keeper *k, uint64_t now_ms);

/*
 * 0 when in is a TLS 1.3 server CertificateVerify input with a SHA-256
 * transcript hash; else -EBADMSG with a static reason in *why.
 */
KJ_MUST_CHECK int kj_tls_cv_check(const uint8_t *in, size_t len,
				  const char **why);

/*
 * Check in (kj_tls_cv_check), take a token (-EBUSY, logged rate-limited,
 * when there is none), sign it with the TLS key: the DER signature in sig.
 * -EBADMSG (logged, naming the worker) for anything but a CertificateVerify
 * input: the caller treats it as a hostile injector.
 */
KJ_MUST_CHECK int kj_keeper_tls_sign(const struct kj_tls_key *k,
				     struct kj_sign_limit *l, uint64_t now_ms,
				     unsigned worker, const uint8_t *in,
				     size_t len, uint8_t sig[KJ_TLS_SIG_MAX],
				     size_t *siglen);

#endif
