/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the envelope opener (cms.h): what cms.c (the DER walk of the
 * AuthEnvelopedData) hands cms_crypto.c (the key agreement and AES-GCM
 * steps).  Not for other modules.
 */
#ifndef KINJECT_CMS_INT_H
#define KINJECT_CMS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/der.h"
#include "base/kinject.h"
#include "cms.h"

/* A key agreement scheme of RFC 5753 §7.1.4 (the table is in cms.c). */
struct kdf_alg {
	uint8_t oid[9];
	uint8_t oid_len;
	const char *name;
	const char *md; /* NULL: refused as too weak for SPEC §3.1 */
};

/* One KeyAgreeRecipientInfo (RFC 5652 §6.2.2), pointing into the file. */
struct kari {
	const uint8_t *point; /* originator public point (04||X||Y) */
	size_t point_len;
	struct kj_tlv ukm;    /* value of the [1] OCTET STRING, if has_ukm */
	bool has_ukm;
	const struct kdf_alg *kdf;
	struct kj_tlv wrap;   /* the wrap AlgorithmIdentifier (keyInfo) */
	size_t kek_len;
	struct kj_tlv reks;   /* SEQUENCE OF RecipientEncryptedKey */
};

/* The AuthEnvelopedData fields (RFC 5083 §2.1), pointing into the file. */
struct envelope {
	const uint8_t *base; /* the file, for offsets in messages */
	struct kj_tlv recipients;
	size_t cek_len;
	struct kj_tlv nonce;
	size_t tag_len;
	struct kj_tlv ciphertext; /* [0] primitive or constructed */
	struct kj_tlv auth_attrs;
	bool has_auth_attrs;
	struct kj_tlv mac;
};

/* cms_crypto.c: Z -> KEK -> CEK for one entry; the CEK lands at ks + 128. */
KJ_MUST_CHECK int kj_cms_recover_cek(const struct kj_ecdh_key *key,
				     const struct kari *k,
				     const struct kj_tlv *ek, size_t cek_len,
				     uint8_t *ks, const char *path);

/* AES-GCM over the encryptedContent into out; -EBADMSG on a bad tag. */
KJ_MUST_CHECK int kj_cms_gcm_decrypt(const struct envelope *e,
				     const uint8_t *cek, uint8_t *out,
				     const char *path);

#endif
