// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for what `--listen tls:' adds to the keeper <-> injector
 * channel (docs/TLS.md), fed the way the keeper reads it from an injector
 * an attacker may have taken over: SIGN entries go through the keeper's
 * CertificateVerify check (keeper_sign.c), ADMIT entries that carry a
 * client certificate CN through its site_id = CN rule (keeper_tls.c),
 * SIGNED entries through the framing the injector relies on.  Invariants
 * (abort on violation): only an exact TLS 1.3 server CertificateVerify
 * input with a SHA-256 hash passes the check; a CN passes only when it is
 * valid str8 and equals the HELLO's site_id byte for byte; every other CN
 * is UNAUTHORIZED or, not str8, a hostile injector (-EPROTO).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keeper/keeper_int.h"
#include "keeper/keeper_sign.h"
#include "wire/ipc.h"
#include "wire/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static void on_sign(const uint8_t *body, size_t len)
{
	static const char ctx[] = KJ_TLS_CV_CONTEXT;
	struct kj_ipc_sign g;
	const uint8_t *in = body + sizeof(g);
	const char *why = NULL;

	check(len >= sizeof(g));
	memcpy(&g, body, sizeof(g));
	check(g.len >= 1 && g.len <= KJ_IPC_SIGN_IN_MAX);
	check(len == sizeof(g) + g.len);
	if (kj_tls_cv_check(in, g.len, &why) < 0) {
		check(why != NULL);
		return;
	}
	check(g.len == KJ_TLS_CV_LEN);
	for (size_t i = 0; i < 64; i++)
		check(in[i] == 0x20);
	check(!memcmp(in + 64, ctx, sizeof(ctx)));
}

static void on_admit(struct keeper *k, const uint8_t *body, size_t len)
{
	struct kj_ipc_admit a;
	struct kslot s = { 0 };
	const uint8_t *v = body + sizeof(a), *cn;
	int rc;

	check(len >= sizeof(a));
	memcpy(&a, body, sizeof(a));
	check(len == sizeof(a) + a.site_len + a.uid_len + a.hwrev_len +
			     a.pubkey_len + a.cn_len);
	check(len <= KJ_IPC_ADMIT_MAX);
	/* What on_admit takes before the CN rule: a str8 site id. */
	if (!kj_str8_valid(v, a.site_len))
		return;
	memcpy(s.site, v, a.site_len);
	s.site[a.site_len] = 0;
	cn = v + a.site_len + a.uid_len + a.hwrev_len + a.pubkey_len;
	rc = kj_kp_site_cn_check(k, &s, cn, a.cn_len);
	if (!a.cn_len) {
		check(rc == 0);
		return;
	}
	if (rc == 0)
		check(a.cn_len == a.site_len && kj_str8_valid(cn, a.cn_len) &&
		      !memcmp(cn, s.site, a.site_len));
	else if (rc == -EPROTO)
		check(!kj_str8_valid(cn, a.cn_len));
	else
		check(rc == KJ_ABORT_UNAUTHORIZED &&
		      kj_str8_valid(cn, a.cn_len) &&
		      (a.cn_len != a.site_len || memcmp(cn, s.site, a.site_len)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kj_tls_key key;
	static struct kj_job job = { .tls = &key };
	static struct keeper k = { .job = &job };
	struct kj_ipc_signed sd;
	struct kj_ipc_iter it;
	const uint8_t *body;
	const char *why = NULL;
	unsigned type;
	size_t len;
	int rc;

	if (size > KJ_IPC_MSG_MAX)
		return 0;
	k.rl = (struct kj_ratelimit)KJ_RATELIMIT_INIT(5000, 10);
	kj_ipc_iter_init(&it, data, size);
	while ((rc = kj_ipc_next(&it, &type, &body, &len, &why)) > 0) {
		check(body >= data && body + len <= data + size);
		switch (type) {
		case KJ_IPC_SIGN:
			on_sign(body, len);
			break;
		case KJ_IPC_ADMIT:
			on_admit(&k, body, len);
			break;
		case KJ_IPC_SIGNED:
			check(len == sizeof(sd));
			memcpy(&sd, body, sizeof(sd));
			check(sd.sig_len <= KJ_IPC_SIG_MAX);
			break;
		default:
			break;
		}
	}
	check(rc == 0 || (rc == -EBADMSG && why));
	return 0;
}
