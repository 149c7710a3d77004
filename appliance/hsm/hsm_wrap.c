// SPDX-License-Identifier: Apache-2.0
/*
 * The backup's key wrapping (hsm.h: kj_hsm_wrap_transport,
 * kj_hsm_unwrap_transport): the transport private key leaves the token
 * only as C_WrapKey output under the backup key, and comes back only
 * through C_UnwrapKey, so its plaintext never exists outside a token.  The
 * backup key itself is the caller's (arena memory, split by Shamir),
 * imported as a session object that dies with this call.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <p11-kit/p11-kit.h>

#include "hsm.h"
#include "base/log.h"
#include "hsm_int.h"

#ifndef CKM_AES_KEY_WRAP_PAD
#define CKM_AES_KEY_WRAP_PAD 0x210aUL
#endif

/* DER OID prime256v1, as CKA_EC_PARAMS. */
static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
				0x03, 0x01, 0x07 };

static int import_kek(struct kj_hsm *h, const uint8_t kek[32], bool wrap,
		      CK_OBJECT_HANDLE *obj)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ wrap ? CKA_WRAP : CKA_UNWRAP, &yes, sizeof(yes) },
		{ CKA_VALUE, (void *)kek, 32 },
	};
	CK_RV rv = h->f->C_CreateObject(h->session, t, KJ_ARRAY_SIZE(t), obj);

	return rv == CKR_OK ? 0 : kj_hsm_fail(h, "C_CreateObject(backup key)",
					      rv);
}

int kj_hsm_wrap_transport(struct kj_hsm *h, const uint8_t kek[32],
			  uint8_t *out, size_t cap, size_t *len)
{
	CK_MECHANISM mech = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_OBJECT_HANDLE k;
	CK_ULONG n = cap;
	CK_RV rv;
	int rc;

	KJ_TRY(kj_hsm_priv(h));
	KJ_TRY(import_kek(h, kek, true, &k));
	rv = h->f->C_WrapKey(h->session, &mech, k, h->priv, out, &n);
	h->f->C_DestroyObject(h->session, k);
	if (rv == CKR_KEY_UNEXTRACTABLE || rv == CKR_KEY_NOT_WRAPPABLE) {
		kj_err("%s: the transport key is never extractable (%s): this "
		       "token cannot back it up; see docs/CEREMONY.md "
		       "(init --backup-capable, or the token's own backup)",
		       h->uri_text, kj_ck_rv_name(rv));
		return -EPERM;
	}
	rc = rv == CKR_OK ? 0 :
	     kj_hsm_fail(h, "C_WrapKey(CKM_AES_KEY_WRAP_PAD)", rv);
	*len = n;
	return rc;
}

static int public_object(struct kj_hsm *h, const uint8_t *point, size_t plen)
{
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_KEY_TYPE kt = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	uint8_t der[2 + 133];
	CK_ATTRIBUTE t[8] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_EC_PARAMS, (void *)p256, sizeof(p256) },
		{ CKA_EC_POINT, der, plen + 2 },
		{ CKA_VERIFY, &yes, sizeof(yes) },
	};
	CK_ULONG nt = 6;
	CK_OBJECT_HANDLE obj;
	CK_ATTRIBUTE *a;
	CK_RV rv;

	if (plen != 65 || point[0] != 0x04) {
		kj_err("%s: restore: the transport public key is not a P-256 "
		       "point", h->uri_text);
		return -EINVAL;
	}
	der[0] = 0x04; /* DER OCTET STRING around the point, as PKCS#11 says */
	der[1] = (uint8_t)plen;
	memcpy(der + 2, point, plen);
	if ((a = p11_kit_uri_get_attribute(h->uri, CKA_LABEL)))
		t[nt++] = *a;
	if ((a = p11_kit_uri_get_attribute(h->uri, CKA_ID)))
		t[nt++] = *a;
	rv = h->f->C_CreateObject(h->session, t, nt, &obj);
	return rv == CKR_OK ? 0 :
	       kj_hsm_fail(h, "C_CreateObject(transport public key)", rv);
}

int kj_hsm_unwrap_transport(struct kj_hsm *h, const uint8_t kek[32],
			    const uint8_t *wrapped, size_t len,
			    const uint8_t *point, size_t plen)
{
	CK_MECHANISM mech = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE kt = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[10] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &yes, sizeof(yes) },
		{ CKA_DERIVE, &yes, sizeof(yes) },
		{ CKA_SIGN, &yes, sizeof(yes) },
	};
	CK_ULONG nt = 8;
	CK_OBJECT_HANDLE k, obj;
	CK_ATTRIBUTE *a;
	CK_RV rv;
	int rc;

	rc = kj_hsm_find(h, CKO_PRIVATE_KEY, &obj);
	if (rc < 0)
		return rc;
	if (rc > 0) {
		kj_err("%s: a private key with this label/id already exists; "
		       "restore onto a fresh token", h->uri_text);
		return -EEXIST;
	}
	if ((a = p11_kit_uri_get_attribute(h->uri, CKA_LABEL)))
		t[nt++] = *a;
	if ((a = p11_kit_uri_get_attribute(h->uri, CKA_ID)))
		t[nt++] = *a;
	KJ_TRY(import_kek(h, kek, false, &k));
	rv = h->f->C_UnwrapKey(h->session, &mech, k, (CK_BYTE_PTR)wrapped,
			       len, t, nt, &obj);
	h->f->C_DestroyObject(h->session, k);
	if (rv == CKR_WRAPPED_KEY_INVALID || rv == CKR_ENCRYPTED_DATA_INVALID ||
	    rv == CKR_WRAPPED_KEY_LEN_RANGE) {
		kj_err("%s: C_UnwrapKey: %s: the shares do not rebuild the "
		       "backup key of this wrapped key", h->uri_text,
		       kj_ck_rv_name(rv));
		return -EBADMSG;
	}
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_UnwrapKey(CKM_AES_KEY_WRAP_PAD)", rv);
	h->priv = obj;
	h->have_priv = true;
	return public_object(h, point, plen);
}
