// SPDX-License-Identifier: Apache-2.0
/*
 * Readback digest, PROTOCOL.md "Readback digest".  The low-level SHA256_CTX
 * is used on purpose: a plain struct the caller places (arena, stack) and
 * copies per device with one assignment, no heap and no failure path,
 * which EVP_MD_CTX does not give (it allocates, and its copy can fail).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <string.h>
#include <openssl/crypto.h>

#include "readback.h"
#include "base/util.h"

void kj_readback_begin(struct kj_readback *r)
{
	SHA256_Init(&r->sha);
	SHA256_Update(&r->sha, KJ_READBACK_DOMAIN,
		      sizeof(KJ_READBACK_DOMAIN) - 1);
}

void kj_readback_update(struct kj_readback *r, const void *p, size_t n)
{
	SHA256_Update(&r->sha, p, n);
}

void kj_readback_add_uid(struct kj_readback *r, const uint8_t *uid,
			 size_t uid_len)
{
	uint8_t len[2];

	kj_put_u16be(len, (uint16_t)uid_len);
	SHA256_Update(&r->sha, len, sizeof(len));
	SHA256_Update(&r->sha, uid, uid_len);
}

void kj_readback_final(struct kj_readback *r, uint8_t out[32])
{
	SHA256_Final(out, &r->sha);
	kj_readback_wipe(r);
}

void kj_readback_device(const struct kj_readback *fw, const uint8_t *uid,
			size_t uid_len, const void *cred, size_t cred_len,
			uint8_t out[32])
{
	struct kj_readback r = *fw;

	kj_readback_add_uid(&r, uid, uid_len);
	SHA256_Update(&r.sha, cred, cred_len);
	kj_readback_final(&r, out);
}

int kj_readback_equal(const uint8_t a[32], const uint8_t b[32])
{
	return CRYPTO_memcmp(a, b, 32) == 0;
}

void kj_readback_wipe(struct kj_readback *r)
{
	explicit_bzero(r, sizeof(*r));
}
