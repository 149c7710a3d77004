// SPDX-License-Identifier: Apache-2.0
/*
 * The cryptography of opening a CMS AuthEnvelopedData: Z from the ECDH key
 * (the HSM, or a software key for tests and the fuzzer), the X9.63 KDF,
 * the AES key unwrap to the CEK, and AES-GCM over the content.  Apart from
 * cms.c, which walks the DER and decides which recipient entry to try:
 * here only secrets are handled, and only in the arena or wiped.
 */
#include <stdbool.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "base/der.h"
#include "base/log.h"
#include "base/util.h"
#include "cms.h"
#include "cms_int.h"

/* X9.63 KDF (SEC 1 §3.6.1) with ECC-CMS-SharedInfo (RFC 5753 §7.2). */
static int x963_kdf(const struct kari *k, const uint8_t *z, size_t z_len,
		    uint8_t *kek, const char *path)
{
	uint8_t si[512], hdr[6], ctr[4], bits[4], *p = si + 6;
	uint8_t dig[EVP_MAX_MD_SIZE];
	const EVP_MD *md = EVP_get_digestbyname(k->kdf->md);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t body, hl, done = 0;
	unsigned dl;
	int rc = -EIO;

	if (!md || !ctx)
		goto out;
	if (k->wrap.tlv_len + (k->has_ukm ? k->ukm.tlv_len + 6 : 0) + 32 >
	    sizeof(si) - 6) {
		kj_err("%s: kari.ukm too long", path);
		rc = -EBADMSG;
		goto out;
	}
	memcpy(p, k->wrap.tlv, k->wrap.tlv_len); /* keyInfo */
	p += k->wrap.tlv_len;
	if (k->has_ukm) { /* entityUInfo [0] EXPLICIT OCTET STRING */
		hl = kj_der_header(KJ_DER_CTX0, k->ukm.tlv_len, hdr);
		memcpy(p, hdr, hl);
		memcpy(p + hl, k->ukm.tlv, k->ukm.tlv_len);
		p += hl + k->ukm.tlv_len;
	}
	kj_put_u32be(bits, (uint32_t)(k->kek_len * 8)); /* suppPubInfo [2] */
	memcpy(p, (const uint8_t[]){ 0xa2, 0x06, 0x04, 0x04 }, 4);
	memcpy(p + 4, bits, 4);
	p += 8;
	body = (size_t)(p - (si + 6));
	hl = kj_der_header(KJ_DER_SEQUENCE, body, hdr);
	memcpy(si + 6 - hl, hdr, hl);
	for (uint32_t i = 1; done < k->kek_len; i++) {
		kj_put_u32be(ctr, i);
		if (!EVP_DigestInit_ex(ctx, md, NULL) ||
		    !EVP_DigestUpdate(ctx, z, z_len) ||
		    !EVP_DigestUpdate(ctx, ctr, 4) ||
		    !EVP_DigestUpdate(ctx, si + 6 - hl, body + hl) ||
		    !EVP_DigestFinal_ex(ctx, dig, &dl))
			goto out;
		memcpy(kek + done, dig, k->kek_len - done < dl ?
		       k->kek_len - done : dl);
		done += dl;
	}
	rc = 0;
out:
	explicit_bzero(dig, sizeof(dig));
	EVP_MD_CTX_free(ctx);
	if (rc == -EIO)
		kj_err_ssl("%s: X9.63 KDF", path);
	return rc;
}

static const EVP_CIPHER *aes_cipher(size_t key_len, bool wrap)
{
	switch (key_len) {
	case 16:
		return wrap ? EVP_aes_128_wrap() : EVP_aes_128_gcm();
	case 24:
		return wrap ? EVP_aes_192_wrap() : EVP_aes_192_gcm();
	case 32:
		return wrap ? EVP_aes_256_wrap() : EVP_aes_256_gcm();
	default:
		return NULL;
	}
}

/* RFC 3394 unwrap; 0, or -EBADMSG when the integrity check fails. */
static int aes_unwrap(const uint8_t *kek, size_t kek_len, const uint8_t *in,
		      size_t in_len, uint8_t *out, size_t out_len)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0, rc = -EBADMSG;

	if (!ctx)
		return -ENOMEM;
	if (in_len != out_len + 8)
		goto out;
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_DecryptInit_ex(ctx, aes_cipher(kek_len, true), NULL, kek,
			       NULL) != 1 ||
	    EVP_DecryptUpdate(ctx, out, &n, in, (int)in_len) != 1 ||
	    EVP_DecryptFinal_ex(ctx, out + n, &fin) != 1 ||
	    (size_t)(n + fin) != out_len)
		goto out;
	rc = 0;
out:
	ERR_clear_error();
	EVP_CIPHER_CTX_free(ctx);
	if (rc < 0)
		explicit_bzero(out, out_len);
	return rc;
}

/*
 * Key agreement for one RecipientEncryptedKey: Z (HSM) -> KEK -> CEK, all
 * in ks (arena scratch, 192 bytes).  -EBADMSG when the unwrap fails.
 */
int kj_cms_recover_cek(const struct kj_ecdh_key *key, const struct kari *k,
		       const struct kj_tlv *ek, size_t cek_len, uint8_t *ks,
		       const char *path)
{
	uint8_t *z = ks, *kek = ks + 80, *cek = ks + 128;
	size_t z_len = 0;
	int rc;

	rc = key->derive(key->ctx, k->point, k->point_len, z, 80, &z_len);
	if (rc < 0)
		goto out;
	rc = x963_kdf(k, z, z_len, kek, path);
	explicit_bzero(z, 80);
	if (rc < 0)
		goto out;
	rc = aes_unwrap(kek, k->kek_len, ek->val, ek->len, cek, cek_len);
out:
	explicit_bzero(ks, 128);
	return rc;
}

/* EVP lengths are int: feed large contents in pieces. */
static int gcm_update(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in,
		      size_t len, size_t *done)
{
	const size_t step = 1u << 30;
	int n;

	*done = 0;
	while (len) {
		size_t k = len < step ? len : step;

		if (EVP_DecryptUpdate(ctx, out + *done, &n, in, (int)k) != 1)
			return -1;
		*done += (size_t)n;
		in += k;
		len -= k;
	}
	return 0;
}

int kj_cms_gcm_decrypt(const struct envelope *e, const uint8_t *cek,
		       uint8_t *out, const char *path)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	const uint8_t set_tag = KJ_DER_SET;
	struct kj_der d;
	struct kj_tlv chunk;
	size_t off = 0, got;
	int n, rc = -EIO;

	if (!ctx)
		return -ENOMEM;
	if (EVP_DecryptInit_ex(ctx, aes_cipher(e->cek_len, false), NULL, NULL,
			       NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN,
				(int)e->nonce.len, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, cek, e->nonce.val) != 1)
		goto ssl;
	/* RFC 5083 §2.2: AAD is the DER of authAttrs with its SET OF tag. */
	if (e->has_auth_attrs &&
	    (EVP_DecryptUpdate(ctx, NULL, &n, &set_tag, 1) != 1 ||
	     EVP_DecryptUpdate(ctx, NULL, &n, e->auth_attrs.tlv + 1,
			       (int)e->auth_attrs.tlv_len - 1) != 1))
		goto ssl;
	if (e->ciphertext.tag == KJ_DER_CTX0_PRIM) {
		if (gcm_update(ctx, out, e->ciphertext.val, e->ciphertext.len,
			       &off) < 0)
			goto ssl;
	} else {
		kj_der_init(&d, e->ciphertext.val, e->ciphertext.len, path);
		d.base = e->base;
		while (kj_der_more(&d)) {
			KJ_TRY_GOTO(rc, kj_der_expect(&d, KJ_DER_OCTET_STRING,
						      &chunk,
						      "encryptedContent chunk"),
				    out);
			if (gcm_update(ctx, out + off, chunk.val, chunk.len,
				       &got) < 0)
				goto ssl;
			off += got;
		}
	}
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)e->tag_len,
				(void *)e->mac.val) != 1)
		goto ssl;
	if (EVP_DecryptFinal_ex(ctx, out + off, &n) != 1) {
		ERR_clear_error();
		kj_err("%s: authentication failed (AES-GCM tag mismatch): the "
		       "file is corrupted or was tampered with", path);
		rc = -EBADMSG;
		goto out;
	}
	rc = 0;
	goto out;
ssl:
	rc = kj_err_ssl("%s: AES-GCM decryption", path);
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

static int sw_derive(void *ctx, const uint8_t *peer, size_t peer_len,
		     uint8_t *z, size_t z_cap, size_t *z_len)
{
	EVP_PKEY *own = ctx, *other = EVP_PKEY_new();
	EVP_PKEY_CTX *dc = NULL;
	size_t n = z_cap;
	int rc = -EBADMSG;

	if (!other || EVP_PKEY_copy_parameters(other, own) != 1 ||
	    EVP_PKEY_set1_encoded_public_key(other, peer, peer_len) != 1)
		goto out;
	dc = EVP_PKEY_CTX_new(own, NULL);
	if (!dc || EVP_PKEY_derive_init(dc) != 1 ||
	    EVP_PKEY_derive_set_peer(dc, other) != 1 ||
	    EVP_PKEY_derive(dc, z, &n) != 1)
		goto out;
	*z_len = n;
	rc = 0;
out:
	if (rc < 0)
		kj_err_ssl("software ECDH: bad originator public key");
	EVP_PKEY_CTX_free(dc);
	EVP_PKEY_free(other);
	return rc;
}

void kj_cms_sw_ecdh_key(EVP_PKEY *pkey, X509 *cert, struct kj_ecdh_key *out)
{
	out->derive = sw_derive;
	out->ctx = pkey;
	out->cert = cert;
}
