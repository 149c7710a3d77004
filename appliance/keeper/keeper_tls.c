// SPDX-License-Identifier: Apache-2.0
/*
 * The keeper's part in `--listen tls:` (docs/TLS.md, PROTOCOL.md "TLS"):
 * what an injector gets to run the handshake (tls.pem and the site CAs,
 * after its boot packet), the SIGN request it makes for each handshake's
 * CertificateVerify (signed in the HSM only after keeper_sign.c's check
 * and rate limit), and the rule that a HELLO's site_id is the client
 * certificate's CN.  Apart from keeper_request.c because these are the
 * only requests that reach the TLS key.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/util.h"
#include "injector/injector.h"
#include "wire/ipc.h"
#include "wire/proto.h"
#include "keeper_int.h"

_Static_assert(KJ_IPC_SIG_MAX == KJ_TLS_SIG_MAX,
	       "SIGNED carries a whole DER P-256 signature");

/*
 * After the boot packet, when it says tls_len: "tls.pem text\0site CAs
 * text\0" in one packet (the injector has no filesystem).
 */
int kj_kp_tls_boot(const struct keeper *k, int fd, unsigned worker)
{
	const struct kj_tls_key *t = k->job->tls;
	size_t a = strlen(t->cert_pem) + 1, b = strlen(t->site_cas_pem) + 1;
	char *p = malloc(a + b);
	ssize_t n;

	if (!p) {
		kj_err("keeper: out of memory for the TLS boot packet");
		return -ENOMEM;
	}
	memcpy(p, t->cert_pem, a);
	memcpy(p + a, t->site_cas_pem, b);
	n = send(fd, p, a + b, MSG_NOSIGNAL);
	free(p);
	if (n != (ssize_t)(a + b)) {
		kj_err("keeper: injector %u: sending tls.pem and the site CAs: "
		       "%s", worker, n < 0 ? strerror(errno) : "short send");
		return -EIO;
	}
	return 0;
}

/* SIGN: one handshake's CertificateVerify input, answered at once. */
int kj_kp_on_sign(struct keeper *k, struct inj *in, const uint8_t *b,
		  size_t len)
{
	struct kj_ipc_signed r = { 0 };
	struct kj_ipc_sign m;
	size_t n = 0;
	int rc;

	(void)len;
	memcpy(&m, b, sizeof(m));
	/* Only with a tls: listener, only for a slot with no device. */
	if (!k->job->tls || m.tag >= in->max_conns ||
	    in->slots[m.tag].state != K_FREE)
		return -EPROTO;
	rc = kj_keeper_tls_sign(k->job->tls, &k->sign, kj_now_ms(),
				in->worker, b + sizeof(m), m.len, r.sig, &n);
	/* Anything but a CertificateVerify input (logged): hostile. */
	if (rc == -EBADMSG)
		return -EPROTO;
	/* Over the rate limit (logged, rate-limited) or an HSM error
	 * (logged): this handshake fails, the injector goes on. */
	r.tag = m.tag;
	r.sig_len = rc < 0 ? 0 : (uint16_t)n;
	return kj_kp_inj_put(in, KJ_IPC_SIGNED, &r, sizeof(r), NULL, 0);
}

/*
 * PROTOCOL.md "TLS": the HELLO's site_id must be the client
 * certificate's CN, else UNAUTHORIZED (recorded by the caller).  0, the
 * ABORT code, or -EPROTO for a CN that cannot be (no tls: listener, not
 * str8).
 */
int kj_kp_site_cn_check(struct keeper *k, const struct kslot *s,
			const uint8_t *cn, size_t cn_len)
{
	size_t sl = strlen(s->site);

	if (!cn_len)
		return 0;
	if (!k->job->tls || !kj_str8_valid(cn, cn_len))
		return -EPROTO;
	if (cn_len == sl && !memcmp(cn, s->site, sl))
		return 0;
	kj_log_ratelimited(&k->rl, KJ_LOG_WARN, "site %s socket %u: HELLO "
			   "site_id is not the TLS client certificate's CN "
			   "`%.*s': ABORT UNAUTHORIZED", s->site, s->socket,
			   (int)cn_len, (const char *)cn);
	return KJ_ABORT_UNAUTHORIZED;
}
