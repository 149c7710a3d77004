// SPDX-License-Identifier: Apache-2.0
/*
 * Which cred_blob a device gets (PROTOCOL.md "cred_blob", the work order's
 * "credential_mode"): plain sends the batch's blob as it is; inject seals
 * it to the HELLO's device_pubkey in place, in the arena, so the injector
 * and the site only ever see ciphertext; issue has the enrolled issuing CA
 * (its key in the HSM) certify device_pubkey and sends that certificate
 * from a pool of blobs in the arena (the batch line only gives the index).
 * Apart from the request table because this is where the keeper writes
 * what the injector reads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "inputs/creds.h"
#include "inputs/issuer.h"
#include "inputs/preflight.h"
#include "inputs/workorder.h"
#include "wire/devcred.h"
#include "keeper_int.h"

_Static_assert(KJ_CRED_SEAL_HEAD == KJ_PUBKEY_LEN,
	       "creds.h leaves room for the ephemeral key");
_Static_assert(KJ_CRED_SEAL_TAIL == KJ_GCM_TAG_LEN,
	       "creds.h leaves room for the GCM tag");

int kj_kp_cred_setup(struct keeper *k, unsigned slots)
{
	uint8_t *pool;

	if (k->job->wo->cred_mode != KJ_CRED_ISSUE)
		return 0;
	if (!k->job->issuer) {
		kj_err("keeper: credential_mode issue without an issuing CA");
		return -EINVAL;
	}
	pool = kj_arena_alloc(k->job->arena, (size_t)slots *
						     KJ_ISSUE_BLOB_MAX);
	k->pool_free = calloc(slots, sizeof(*k->pool_free));
	if (!pool || !k->pool_free) {
		kj_err("keeper: no room for %u issue-mode blobs of %d bytes in "
		       "the secret arena (--max-connections)", slots,
		       KJ_ISSUE_BLOB_MAX);
		return -ENOMEM;
	}
	k->pool_off = kj_arena_offset(k->job->arena, pool);
	for (unsigned i = 0; i < slots; i++)
		k->pool_free[k->pool_nfree++] = slots - 1 - i;
	return 0;
}

void kj_kp_cred_teardown(struct keeper *k)
{
	free(k->pool_free);
	k->pool_free = NULL;
	k->pool_nfree = 0;
}

void kj_kp_cred_release(struct keeper *k, struct kslot *s)
{
	if (!s->pool1)
		return;
	k->pool_free[k->pool_nfree++] = s->pool1 - 1;
	s->pool1 = 0;
}

/* Issue mode: a certificate for device_pubkey, named by the serial. */
static int issue(struct keeper *k, struct kslot *s)
{
	EVP_PKEY *dev = kj_p256_from_sec1(s->pubkey);
	uint64_t off;
	uint8_t *b;
	uint32_t i;
	int n;

	if (!dev || !k->pool_nfree) {
		kj_err("keeper: issue mode: %s", dev ? "no free blob (more "
		       "devices in flight than connections?)" :
		       "device_pubkey is not a P-256 point");
		EVP_PKEY_free(dev);
		return -EIO;
	}
	i = k->pool_free[--k->pool_nfree];
	s->pool1 = i + 1;
	off = k->pool_off + (uint64_t)i * KJ_ISSUE_BLOB_MAX;
	b = k->job->arena->base + off;
	n = kj_issuer_issue(k->job->issuer, dev, s->res.serial, b + 4,
			    KJ_ISSUED_CERT_MAX);
	EVP_PKEY_free(dev);
	if (n < 0)
		return n;
	kj_put_u32be(b, (uint32_t)n);
	kj_put_u32be(b + 4 + n, 0); /* no key: it never leaves the chip */
	/* The record names the certificate the device got. */
	kj_sha256(b + 4, (size_t)n, s->res.cert_sha256);
	s->blob_off = off;
	s->blob_len = (uint32_t)n + 8;
	return 0;
}

void kj_kp_hsm_lost(struct keeper *k)
{
	if (k->hsm_lost)
		return;
	k->hsm_lost = true;
	k->issuing = false;
	k->refuse_reason = KJ_ABORT_INTERNAL;
	k->end = KJ_KEEPER_HSM_LOST;
	kj_err("keeper: the HSM %s is gone (see above): issuing stopped; the "
	       "device that needed a certificate and every new HELLO get "
	       "ABORT INTERNAL (recorded), devices already programming "
	       "finish; is the token inserted and its module or service "
	       "working? Bring it back and run the same command again to "
	       "resume", kj_issuer_hsm_uri(k->job->issuer));
}

int kj_kp_cred_blob(struct keeper *k, struct kslot *s,
		    const struct kcred *c)
{
	uint8_t *base = k->job->arena->base;
	int n;

	switch (k->job->wo->cred_mode) {
	case KJ_CRED_PLAIN:
		s->blob_off = c->blob_off;
		s->blob_len = c->blob_len;
		return 0;
	case KJ_CRED_INJECT:
		/* The credential is used once, ever (SPEC.md §3.2): its
		 * plaintext is replaced by the ciphertext for this device. */
		n = kj_cred_seal(s->pubkey, s->uid, s->uid_len,
				 base + c->blob_off, c->blob_len,
				 base + c->blob_off - KJ_CRED_SEAL_HEAD,
				 c->blob_len + KJ_SEAL_OVERHEAD);
		if (n < 0) {
			kj_err("keeper: credential index %llu: cannot seal it "
			       "to the device key",
			       (unsigned long long)c->index);
			return n;
		}
		s->blob_off = c->blob_off - KJ_CRED_SEAL_HEAD;
		s->blob_len = (uint32_t)n;
		return 0;
	case KJ_CRED_ISSUE:
		return issue(k, s);
	default:
		kj_err("keeper: credential_mode %s is not served",
		       kj_cred_mode_name(k->job->wo->cred_mode));
		return -EINVAL;
	}
}
