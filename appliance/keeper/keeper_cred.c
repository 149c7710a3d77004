// SPDX-License-Identifier: Apache-2.0
/*
 * Which cred_blob a device gets (PROTOCOL.md "cred_blob", the work order's
 * "credential_mode"): plain sends the batch's blob as it is; inject seals
 * it to the HELLO's device_pubkey in place, in the arena, so the injector
 * and the site only ever see ciphertext.  Apart from the request table
 * because this is the one place the keeper writes a secret into what the
 * injector reads.
 */
#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "inputs/creds.h"
#include "inputs/workorder.h"
#include "wire/devcred.h"
#include "keeper_int.h"

_Static_assert(KJ_CRED_SEAL_HEAD == KJ_PUBKEY_LEN,
	       "creds.h leaves room for the ephemeral key");
_Static_assert(KJ_CRED_SEAL_TAIL == KJ_GCM_TAG_LEN,
	       "creds.h leaves room for the GCM tag");

int kj_kp_cred_blob(struct keeper *k, struct kslot *s,
		    const struct kj_cred *c)
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
	default:
		kj_err("keeper: credential_mode %s is not served",
		       kj_cred_mode_name(k->job->wo->cred_mode));
		return -EINVAL;
	}
}
