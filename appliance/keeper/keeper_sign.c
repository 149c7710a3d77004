// SPDX-License-Identifier: Apache-2.0
/*
 * The keeper's signing check for the TLS key (keeper_sign.h): what the
 * injector may have signed, and how often.
 */
#include <string.h>

#include "keeper_int.h"
#include "keeper_sign.h"

void kj_sign_limit_init(struct kj_sign_limit *l, unsigned rate,
			unsigned burst, uint64_t now_ms)
{
	memset(l, 0, sizeof(*l));
	l->rate = rate ? rate : KJ_SIGN_RATE_DEFAULT;
	l->burst = burst ? burst : KJ_SIGN_BURST_DEFAULT;
	l->tokens_ms = (uint64_t)l->burst * 1000u;
	l->last_ms = now_ms;
	l->log = (struct kj_ratelimit)KJ_RATELIMIT_INIT(5000, 10);
}

void kj_kp_sign_setup(struct keeper *k, uint64_t now_ms)
{
	kj_sign_limit_init(&k->sign, k->job->limits.tls_sign_rate,
			   k->job->limits.tls_sign_burst, now_ms);
}

static bool take(struct kj_sign_limit *l, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)l->burst * 1000u;

	if (now_ms > l->last_ms) {
		l->tokens_ms += (now_ms - l->last_ms) * l->rate;
		if (l->tokens_ms > cap)
			l->tokens_ms = cap;
		l->last_ms = now_ms;
	}
	if (l->tokens_ms < 1000u)
		return false;
	l->tokens_ms -= 1000u;
	return true;
}

int kj_tls_cv_check(const uint8_t *in, size_t len, const char **why)
{
	static const char ctx[] = KJ_TLS_CV_CONTEXT;

	if (len != KJ_TLS_CV_LEN) {
		*why = "not 130 bytes (64 spaces, the server context string, "
		       "0x00, a SHA-256 transcript hash)";
		return -EBADMSG;
	}
	for (size_t i = 0; i < 64; i++) {
		if (in[i] != 0x20) {
			*why = "does not start with 64 spaces (0x20)";
			return -EBADMSG;
		}
	}
	/* sizeof(ctx) counts the NUL: the string and its 0x00 separator. */
	if (memcmp(in + 64, ctx, sizeof(ctx))) {
		*why = "not the context string \"" KJ_TLS_CV_CONTEXT "\" "
		       "followed by 0x00";
		return -EBADMSG;
	}
	return 0;
}

int kj_keeper_tls_sign(const struct kj_tls_key *k, struct kj_sign_limit *l,
		       uint64_t now_ms, unsigned worker, const uint8_t *in,
		       size_t len, uint8_t sig[KJ_TLS_SIG_MAX], size_t *siglen)
{
	const char *why;
	int rc;

	rc = kj_tls_cv_check(in, len, &why);
	if (rc < 0) {
		l->refused_n++;
		kj_err("injector %u: asked to sign %zu bytes with the TLS key "
		       "that are not a TLS 1.3 server CertificateVerify input: "
		       "%s; refused", worker, len, why);
		return rc;
	}
	if (!take(l, now_ms)) {
		l->limited_n++;
		kj_log_ratelimited(&l->log, KJ_LOG_WARN, "injector %u: TLS handshake "
				   "signatures over the limit (%u/s, burst "
				   "%u): handshake refused", worker, l->rate,
				   l->burst);
		return -EBUSY;
	}
	KJ_TRY(kj_tls_key_sign(k, in, len, sig, siglen));
	l->signed_n++;
	return 0;
}
