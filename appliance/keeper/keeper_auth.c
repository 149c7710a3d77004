// SPDX-License-Identifier: Apache-2.0
/*
 * Device authenticity, the keeper's half (PROTOCOL.md "Device
 * authenticity"): the nonce of a CHALLENGE and the check of the PROOF that
 * comes back.  Here, not in the injector, because the injector is
 * untrusted: it only carries the bytes, and a compromised one could
 * otherwise wave a counterfeit through.  The CAs are the signed product
 * matrix's "device_ca" (SPEC.md §3.4).
 */
#include <errno.h>
#include <string.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "base/log.h"
#include "inputs/product.h"
#include "wire/devcred.h"
#include "wire/ipc.h"
#include "keeper_int.h"

int kj_kp_auth_setup(struct keeper *k)
{
	const struct kj_product *pm = k->job->product;

	k->rl = (struct kj_ratelimit)KJ_RATELIMIT_INIT(10000, 5);
	if (!pm || !pm->n_device_ca)
		return 0;
	k->dev_store = X509_STORE_new();
	if (!k->dev_store)
		return kj_err_ssl("keeper: device CA store");
	/* A listed CA is a trust anchor even when it is not self-signed
	 * (a vendor's signer CA under its root). */
	if (!X509_STORE_set_flags(k->dev_store, X509_V_FLAG_PARTIAL_CHAIN))
		return kj_err_ssl("keeper: device CA store flags");
	for (unsigned i = 0; i < pm->n_device_ca; i++)
		if (!X509_STORE_add_cert(k->dev_store, pm->device_ca[i]))
			return kj_err_ssl("product %s: device_ca[%u]",
					  pm->product, i);
	kj_info("job: device authenticity on: %u device CA(s) from the "
		"product matrix", pm->n_device_ca);
	return 0;
}

void kj_kp_auth_teardown(struct keeper *k)
{
	X509_STORE_free(k->dev_store);
	k->dev_store = NULL;
}

int kj_kp_challenge(struct keeper *k, struct inj *in, uint32_t tag,
		    struct kslot *s)
{
	struct kj_ipc_challenge m = { .tag = tag };

	if (RAND_bytes(s->nonce, sizeof(s->nonce)) != 1)
		return kj_err_ssl("keeper: CHALLENGE nonce");
	memcpy(m.nonce, s->nonce, sizeof(m.nonce));
	s->state = K_CHALLENGED;
	(void)k;
	return kj_kp_inj_put(in, KJ_IPC_CHALLENGE, &m, sizeof(m), NULL, 0);
}

/* Does cert chain to a device CA?  Time checks as OpenSSL's default. */
static bool chains(struct keeper *k, X509 *cert)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	bool ok = ctx && X509_STORE_CTX_init(ctx, k->dev_store, cert, NULL) &&
		  X509_verify_cert(ctx) == 1;

	X509_STORE_CTX_free(ctx);
	return ok;
}

int kj_kp_proof_check(struct keeper *k, const struct kslot *s,
		      const uint8_t *cert, size_t len, const uint8_t *sig,
		      const char **why)
{
	const unsigned char *p = cert;
	uint8_t pt[KJ_PUBKEY_LEN];
	X509 *x = d2i_X509(NULL, &p, (long)len);
	EVP_PKEY *pk = x ? X509_get0_pubkey(x) : NULL;
	int rc = -EBADMSG;

	if (!x || p != cert + len)
		*why = "certificate is not one DER X.509 certificate";
	else if (!pk || kj_p256_sec1(pk, pt) < 0)
		*why = "certificate key is not P-256";
	else if (!chains(k, x))
		*why = "certificate does not chain to a device_ca";
	else if (s->pubkey_len && memcmp(pt, s->pubkey, KJ_PUBKEY_LEN))
		*why = "certificate key is not the HELLO's device_pubkey";
	else if (kj_devauth_verify(pk, s->nonce, s->uid, s->uid_len, sig) < 0)
		*why = "signature over the CHALLENGE does not verify";
	else
		rc = 0;
	X509_free(x);
	return rc;
}
