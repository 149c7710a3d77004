// SPDX-License-Identifier: Apache-2.0
/*
 * Device-key crypto of the wire protocol (devcred.h): the CHALLENGE digest
 * and its r || s signature, and the inject-mode seal (ECDH + HKDF +
 * AES-256-GCM).  OpenSSL does every primitive; this file only fixes the
 * bytes PROTOCOL.md names, the same for the appliance and the site.
 */
#include <errno.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "devcred.h"
#include "base/log.h"
#include "base/util.h"

void kj_devauth_digest(const uint8_t nonce[KJ_NONCE_LEN], const uint8_t *uid,
		       size_t uid_len, uint8_t out[32])
{
	uint8_t m[sizeof(KJ_DEVAUTH_DOMAIN) - 1 + KJ_NONCE_LEN + 2 +
		  KJ_UID_MAX];
	size_t n = sizeof(KJ_DEVAUTH_DOMAIN) - 1;

	if (uid_len > KJ_UID_MAX)
		uid_len = KJ_UID_MAX; /* HELLO allows 1..64 */
	memcpy(m, KJ_DEVAUTH_DOMAIN, n);
	memcpy(m + n, nonce, KJ_NONCE_LEN);
	n += KJ_NONCE_LEN;
	kj_put_u16be(m + n, (uint16_t)uid_len);
	n += 2;
	memcpy(m + n, uid, uid_len);
	kj_sha256(m, n + uid_len, out);
}

int kj_devauth_sign(EVP_PKEY *key, const uint8_t nonce[KJ_NONCE_LEN],
		    const uint8_t *uid, size_t uid_len,
		    uint8_t sig[KJ_PROOF_SIG_LEN])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	uint8_t d[32], der[80];
	const unsigned char *p = der;
	size_t dlen = sizeof(der);
	ECDSA_SIG *s = NULL;
	int rc = -EIO;

	kj_devauth_digest(nonce, uid, uid_len, d);
	if (!ctx || EVP_PKEY_sign_init(ctx) <= 0 ||
	    EVP_PKEY_sign(ctx, der, &dlen, d, sizeof(d)) <= 0 ||
	    !(s = d2i_ECDSA_SIG(NULL, &p, (long)dlen)) ||
	    BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) != 32 ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) != 32)
		kj_err_ssl("device key: ECDSA sign");
	else
		rc = 0;
	ECDSA_SIG_free(s);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int kj_devauth_verify(EVP_PKEY *key, const uint8_t nonce[KJ_NONCE_LEN],
		      const uint8_t *uid, size_t uid_len,
		      const uint8_t sig[KJ_PROOF_SIG_LEN])
{
	EVP_PKEY_CTX *ctx = NULL;
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32,
							      NULL);
	unsigned char *der = NULL;
	uint8_t d[32];
	int dlen, rc = -EBADMSG;

	kj_devauth_digest(nonce, uid, uid_len, d);
	if (!s || !r || !ss || !ECDSA_SIG_set0(s, r, ss)) {
		BN_free(r);
		BN_free(ss);
		ECDSA_SIG_free(s);
		return -ENOMEM;
	}
	dlen = i2d_ECDSA_SIG(s, &der);
	ctx = EVP_PKEY_CTX_new(key, NULL);
	if (dlen > 0 && ctx && EVP_PKEY_verify_init(ctx) > 0 &&
	    EVP_PKEY_verify(ctx, der, (size_t)dlen, d, sizeof(d)) == 1)
		rc = 0;
	OPENSSL_free(der);
	ECDSA_SIG_free(s);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

EVP_PKEY *kj_p256_from_sec1(const uint8_t pt[KJ_PUBKEY_LEN])
{
	OSSL_PARAM prm[] = {
		OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
				       (char *)"prime256v1", 0),
		OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pt,
					KJ_PUBKEY_LEN),
		OSSL_PARAM_END
	};
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *k = NULL;

	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, prm) <= 0)
		k = NULL;
	EVP_PKEY_CTX_free(ctx);
	return k;
}

int kj_p256_sec1(EVP_PKEY *key, uint8_t out[KJ_PUBKEY_LEN])
{
	char grp[32];
	size_t n = 0;

	if (!EVP_PKEY_is_a(key, "EC") ||
	    !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
					    grp, sizeof(grp), NULL) ||
	    strcmp(grp, "prime256v1") ||
	    !EVP_PKEY_get_octet_string_param(key,
					     OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
					     out, KJ_PUBKEY_LEN, &n) ||
	    n != KJ_PUBKEY_LEN || out[0] != 0x04)
		return -EINVAL;
	return 0;
}

/* HKDF-SHA256(ECDH(priv, peer), salt = uid, info) -> 32-byte key. */
static int derive(EVP_PKEY *priv, EVP_PKEY *peer, const uint8_t *uid,
		  size_t uid_len, uint8_t key[32])
{
	EVP_PKEY_CTX *dh = EVP_PKEY_CTX_new(priv, NULL);
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kc = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	uint8_t z[32];
	size_t zlen = sizeof(z);
	OSSL_PARAM prm[] = {
		OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST,
				       (char *)"SHA256", 0),
		OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, z, sizeof(z)),
		OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SALT, (void *)uid,
					uid_len),
		OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO,
					(void *)KJ_CRED_SEAL_INFO,
					sizeof(KJ_CRED_SEAL_INFO) - 1),
		OSSL_PARAM_END
	};
	int rc = -EIO;

	if (dh && EVP_PKEY_derive_init(dh) > 0 &&
	    EVP_PKEY_derive_set_peer(dh, peer) > 0 &&
	    EVP_PKEY_derive(dh, z, &zlen) > 0 && zlen == sizeof(z) && kc &&
	    EVP_KDF_derive(kc, key, 32, prm) > 0)
		rc = 0;
	explicit_bzero(z, sizeof(z));
	EVP_KDF_CTX_free(kc);
	EVP_KDF_free(kdf);
	EVP_PKEY_CTX_free(dh);
	return rc;
}

/* AES-256-GCM with the zero nonce; enc: tag out, else tag checked. */
static int gcm(bool enc, const uint8_t key[32], const uint8_t *in,
	       size_t len, uint8_t *out, uint8_t tag[KJ_GCM_TAG_LEN])
{
	static const uint8_t iv[12];
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, f = 0, ok;

	if (!c || len > INT32_MAX)
		return -EIO;
	ok = EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv, enc) &&
	     EVP_CipherUpdate(c, out, &n, in, (int)len) && (size_t)n == len;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG,
					 KJ_GCM_TAG_LEN, tag);
	ok = ok && EVP_CipherFinal_ex(c, out + n, &f) && f == 0;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG,
					 KJ_GCM_TAG_LEN, tag);
	EVP_CIPHER_CTX_free(c);
	if (!ok)
		explicit_bzero(out, len);
	return ok ? 0 : -EBADMSG;
}

int kj_cred_seal(const uint8_t pt[KJ_PUBKEY_LEN], const uint8_t *uid,
		 size_t uid_len, const uint8_t *plain, size_t len,
		 uint8_t *out, size_t cap)
{
	EVP_PKEY *dev = kj_p256_from_sec1(pt), *eph = NULL;
	uint8_t key[32];
	int rc = -EINVAL;

	if (!dev || cap < KJ_SEAL_OVERHEAD || len > cap - KJ_SEAL_OVERHEAD ||
	    len > INT32_MAX - KJ_SEAL_OVERHEAD)
		goto out;
	rc = -EIO;
	eph = EVP_EC_gen("prime256v1");
	if (!eph || kj_p256_sec1(eph, out) < 0 ||
	    derive(eph, dev, uid, uid_len, key) < 0) {
		kj_err_ssl("inject mode: ephemeral P-256 key agreement");
		goto out;
	}
	if (gcm(true, key, plain, len, out + KJ_PUBKEY_LEN,
		out + KJ_PUBKEY_LEN + len) < 0) {
		kj_err_ssl("inject mode: AES-256-GCM");
		goto out;
	}
	rc = (int)(len + KJ_SEAL_OVERHEAD);
out:
	explicit_bzero(key, sizeof(key));
	EVP_PKEY_free(eph);
	EVP_PKEY_free(dev);
	return rc;
}

int kj_cred_open(EVP_PKEY *key, const uint8_t *uid, size_t uid_len,
		 const uint8_t *blob, size_t len, uint8_t *out, size_t cap)
{
	EVP_PKEY *eph;
	uint8_t k[32], tag[KJ_GCM_TAG_LEN];
	size_t n;
	int rc = -EBADMSG;

	if (len < KJ_SEAL_OVERHEAD)
		return -EBADMSG;
	n = len - KJ_SEAL_OVERHEAD;
	if (n > cap)
		return -ENOSPC;
	eph = kj_p256_from_sec1(blob);
	if (!eph)
		return -EBADMSG;
	memcpy(tag, blob + KJ_PUBKEY_LEN + n, sizeof(tag));
	if (derive(key, eph, uid, uid_len, k) == 0 &&
	    gcm(false, k, blob + KJ_PUBKEY_LEN, n, out, tag) == 0)
		rc = (int)n;
	explicit_bzero(k, sizeof(k));
	EVP_PKEY_free(eph);
	return rc;
}
