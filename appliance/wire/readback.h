/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The readback digest, PROTOCOL.md "Readback digest":
 *
 *   SHA-256( "KINJECT-READBACK-1" || firmware image || u16be(len uid) ||
 *            uid || cred_blob )
 *
 * The firmware part is the same for every device of a job: absorb it once
 * (kj_readback_begin + kj_readback_update(image)), keep that state, and per
 * device call kj_readback_device(), which copies the state and adds only
 * uid and cred_blob.  The state is a plain struct (no heap, no failure
 * path): the caller decides where it lives.  It holds up to 63 unhashed
 * bytes of the last firmware block, so treat it as secret: keep it in
 * locked memory (the arena) and wipe it with kj_readback_wipe() at job end.
 *
 * A site (kinject sim) streams instead: begin, update(firmware chunks as
 * received), add_uid, update(cred chunks), final.
 */
#ifndef KINJECT_READBACK_H
#define KINJECT_READBACK_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/sha.h>

#include "base/kinject.h"

#define KJ_READBACK_DOMAIN "KINJECT-READBACK-1"

struct kj_readback {
	SHA256_CTX sha;
};

/* Fresh state with the domain prefix absorbed. */
void kj_readback_begin(struct kj_readback *r);
/* Absorb firmware or cred_blob bytes (in wire order). */
void kj_readback_update(struct kj_readback *r, const void *p, size_t n);
/* Absorb u16be(uid_len) || uid; uid_len is 1..64 on the wire. */
void kj_readback_add_uid(struct kj_readback *r, const uint8_t *uid,
			 size_t uid_len);
/* Finish into out and wipe r. */
void kj_readback_final(struct kj_readback *r, uint8_t out[32]);

/*
 * One device's digest from the precomputed firmware state fw (left
 * unchanged): copies it, adds uid and cred_blob, wipes the copy.
 */
void kj_readback_device(const struct kj_readback *fw, const uint8_t *uid,
			size_t uid_len, const void *cred, size_t cred_len,
			uint8_t out[32]);

/* Constant-time digest comparison: 1 if equal. */
int kj_readback_equal(const uint8_t a[32], const uint8_t b[32]);

void kj_readback_wipe(struct kj_readback *r);

#endif
