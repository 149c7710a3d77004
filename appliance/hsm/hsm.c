// SPDX-License-Identifier: Apache-2.0
/*
 * HSM access through p11-kit (hsm.h).  The transport private key never
 * leaves the token: ECDH happens there (CKM_ECDH1_DERIVE), only the shared
 * secret Z comes out, straight into the caller's arena buffer.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include "hsm.h"
#include "base/log.h"
#include "hsm_int.h"
#include "pin.h"


static const struct {
	CK_RV rv;
	const char *name;
} rv_names[] = {
#define RV(x) { x, #x }
	RV(CKR_OK), RV(CKR_CANCEL), RV(CKR_HOST_MEMORY),
	RV(CKR_SLOT_ID_INVALID), RV(CKR_GENERAL_ERROR),
	RV(CKR_FUNCTION_FAILED), RV(CKR_ARGUMENTS_BAD),
	RV(CKR_ATTRIBUTE_READ_ONLY), RV(CKR_ATTRIBUTE_SENSITIVE),
	RV(CKR_ATTRIBUTE_TYPE_INVALID), RV(CKR_ATTRIBUTE_VALUE_INVALID),
	RV(CKR_DATA_INVALID), RV(CKR_DATA_LEN_RANGE), RV(CKR_DEVICE_ERROR),
	RV(CKR_DEVICE_MEMORY), RV(CKR_DEVICE_REMOVED),
	RV(CKR_FUNCTION_NOT_SUPPORTED), RV(CKR_KEY_HANDLE_INVALID),
	RV(CKR_KEY_TYPE_INCONSISTENT), RV(CKR_KEY_FUNCTION_NOT_PERMITTED),
	RV(CKR_KEY_UNEXTRACTABLE), RV(CKR_MECHANISM_INVALID),
	RV(CKR_MECHANISM_PARAM_INVALID), RV(CKR_OBJECT_HANDLE_INVALID),
	RV(CKR_OPERATION_ACTIVE), RV(CKR_PIN_INCORRECT),
	RV(CKR_PIN_INVALID), RV(CKR_PIN_LEN_RANGE), RV(CKR_PIN_EXPIRED),
	RV(CKR_PIN_LOCKED), RV(CKR_SESSION_CLOSED),
	RV(CKR_SESSION_HANDLE_INVALID), RV(CKR_SESSION_READ_ONLY),
	RV(CKR_TEMPLATE_INCOMPLETE), RV(CKR_TEMPLATE_INCONSISTENT),
	RV(CKR_TOKEN_NOT_PRESENT), RV(CKR_TOKEN_NOT_RECOGNIZED),
	RV(CKR_USER_ALREADY_LOGGED_IN), RV(CKR_USER_NOT_LOGGED_IN),
	RV(CKR_USER_PIN_NOT_INITIALIZED), RV(CKR_USER_TYPE_INVALID),
	RV(CKR_DOMAIN_PARAMS_INVALID), RV(CKR_CURVE_NOT_SUPPORTED),
	RV(CKR_BUFFER_TOO_SMALL), RV(CKR_CRYPTOKI_NOT_INITIALIZED),
	RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
#undef RV
};

const char *kj_ck_rv_name(unsigned long rv)
{
	static char buf[32];

	for (size_t i = 0; i < KJ_ARRAY_SIZE(rv_names); i++)
		if (rv_names[i].rv == rv)
			return rv_names[i].name;
	snprintf(buf, sizeof(buf), "CKR_0x%lx", rv);
	return buf;
}

/* Log a PKCS#11 failure naming the URI, the call and the CK_RV. */
int kj_hsm_fail(const struct kj_hsm *h, const char *call, CK_RV rv)
{
	kj_err("%s: PKCS#11 %s: %s", h->uri_text, call, kj_ck_rv_name(rv));
	switch (rv) {
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
	case CKR_PIN_LOCKED:
	case CKR_PIN_EXPIRED:
		return -EACCES;
	case CKR_HOST_MEMORY:
		return -ENOMEM;
	/* The token or its module is gone (pulled, crashed, reset): the
	 * session and its handles with it.  -ENODEV lets a running job tell
	 * this from one failed operation (hsm.h). */
	case CKR_DEVICE_REMOVED:
	case CKR_DEVICE_ERROR:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_KEY_HANDLE_INVALID:
	case CKR_OBJECT_HANDLE_INVALID:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_GENERAL_ERROR:
		return -ENODEV;
	default:
		return -EIO;
	}
}

const char *kj_hsm_uri(const struct kj_hsm *h)
{
	return h->uri_text;
}

static int load_modules(struct kj_hsm *h)
{
	const char *path = p11_kit_uri_get_module_path(h->uri);
	CK_RV rv;

	if (path) {
		h->module = p11_kit_module_load(path, 0);
		if (!h->module) {
			kj_err("%s: p11-kit cannot load module %s: %s",
			       h->uri_text, path, p11_kit_message());
			return -EIO;
		}
		rv = p11_kit_module_initialize(h->module);
		if (rv != CKR_OK) {
			p11_kit_module_release(h->module);
			h->module = NULL;
			return kj_hsm_fail(h, "C_Initialize", rv);
		}
		return 0;
	}
	h->modules = p11_kit_modules_load_and_initialize(0);
	if (!h->modules || !h->modules[0]) {
		kj_err("%s: p11-kit loaded no PKCS#11 module (%s)",
		       h->uri_text, p11_kit_message() ? p11_kit_message() :
		       "none registered");
		return -EIO;
	}
	return 0;
}

static void label_text(const unsigned char *l, size_t n, char *out)
{
	while (n && l[n - 1] == ' ')
		n--;
	memcpy(out, l, n);
	out[n] = '\0';
}

/* Try every slot with a token of module f; set *slot on the first match. */
static int find_in_module(struct kj_hsm *h, CK_FUNCTION_LIST *f,
			  CK_SLOT_ID *slot, char *seen, size_t seen_cap)
{
	CK_SLOT_ID ids[64];
	CK_ULONG n = KJ_ARRAY_SIZE(ids);
	CK_TOKEN_INFO ti;
	CK_RV rv;

	rv = f->C_GetSlotList(CK_TRUE, ids, &n);
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_GetSlotList", rv);
	for (CK_ULONG i = 0; i < n; i++) {
		char label[sizeof(ti.label) + 1];

		if (f->C_GetTokenInfo(ids[i], &ti) != CKR_OK)
			continue;
		label_text(ti.label, sizeof(ti.label), label);
		if (strlen(seen) + strlen(label) + 4 < seen_cap)
			sprintf(seen + strlen(seen), "%s\"%s\"",
				*seen ? ", " : "", label);
		if (p11_kit_uri_match_token_info(h->uri, &ti)) {
			*slot = ids[i];
			return 1;
		}
	}
	return 0;
}

static int find_token(struct kj_hsm *h, CK_SLOT_ID *slot)
{
	char seen[512] = "";
	int rc;

	if (h->module) {
		rc = find_in_module(h, h->module, slot, seen, sizeof(seen));
		if (rc > 0)
			h->f = h->module;
	} else {
		rc = 0;
		for (size_t i = 0; h->modules[i] && rc == 0; i++) {
			rc = find_in_module(h, h->modules[i], slot, seen,
					    sizeof(seen));
			if (rc > 0)
				h->f = h->modules[i];
		}
	}
	if (rc < 0)
		return rc;
	if (rc == 0) {
		kj_err("%s: no token matches the URI (tokens present: %s)",
		       h->uri_text, *seen ? seen : "none");
		return -ENODEV;
	}
	return 0;
}

static int login(struct kj_hsm *h, const char *pin_source)
{
	char pin[KJ_PIN_MAX];
	size_t len = 0;
	CK_RV rv;
	int rc;

	KJ_TRY_GOTO(rc, kj_pin_read(pin_source, pin, sizeof(pin), &len), out);
	rv = h->f->C_Login(h->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, len);
	if (rv == CKR_USER_ALREADY_LOGGED_IN)
		rv = CKR_OK;
	if (rv != CKR_OK) {
		rc = kj_hsm_fail(h, "C_Login", rv);
		goto out;
	}
	h->logged_in = true;
	rc = 0;
out:
	explicit_bzero(pin, sizeof(pin));
	return rc;
}

int kj_hsm_open(struct kj_hsm **out, const char *uri, const char *pin_source)
{
	struct kj_hsm *h;
	CK_SLOT_ID slot = 0;
	CK_RV rv;
	int rc;

	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (!h || !(h->uri_text = strdup(uri ? uri : ""))) {
		free(h);
		return -ENOMEM;
	}
	h->uri = p11_kit_uri_new();
	if (!h->uri) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = p11_kit_uri_parse(h->uri_text, P11_KIT_URI_FOR_ANY, h->uri);
	if (rc != P11_KIT_URI_OK) {
		kj_err("--hsm `%s': not a PKCS#11 URI: %s", h->uri_text,
		       p11_kit_uri_message(rc));
		rc = -EINVAL;
		goto fail;
	}
	if (p11_kit_uri_get_pin_value(h->uri)) {
		kj_err("--hsm: the URI carries pin-value; give the PIN with "
		       "--pin-source file:PATH|env:NAME instead");
		rc = -EINVAL;
		goto fail;
	}
	KJ_TRY_GOTO(rc, load_modules(h), fail);
	KJ_TRY_GOTO(rc, find_token(h, &slot), fail);
	rv = h->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				 NULL, NULL, &h->session);
	if (rv != CKR_OK) {
		rc = kj_hsm_fail(h, "C_OpenSession", rv);
		goto fail;
	}
	h->have_session = true;
	/* RFC 7512 pin-source (an officer's token named by URI alone). */
	if (!pin_source)
		pin_source = p11_kit_uri_get_pin_source(h->uri);
	if (pin_source)
		KJ_TRY_GOTO(rc, login(h, pin_source), fail);
	*out = h;
	return 0;
fail:
	kj_hsm_close(h);
	return rc;
}

void kj_hsm_close(struct kj_hsm *h)
{
	if (!h)
		return;
	/*
	 * No C_Logout: login state is per application and token, so it would
	 * log out every other handle on the same token too.  The token logs
	 * out by itself when the application's last session closes.
	 */
	if (h->have_session)
		h->f->C_CloseSession(h->session);
	if (h->module) {
		p11_kit_module_finalize(h->module);
		p11_kit_module_release(h->module);
	}
	if (h->modules)
		p11_kit_modules_finalize_and_release(h->modules);
	if (h->uri)
		p11_kit_uri_free(h->uri);
	free(h->uri_text);
	free(h);
}

/* Objects matching tmpl: up to 2 counted, the first in *obj. */
static int find_objects(struct kj_hsm *h, CK_ATTRIBUTE *tmpl, CK_ULONG nt,
			CK_OBJECT_HANDLE *obj)
{
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;
	CK_RV rv;

	rv = h->f->C_FindObjectsInit(h->session, tmpl, nt);
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_FindObjectsInit", rv);
	rv = h->f->C_FindObjects(h->session, found, 2, &n);
	h->f->C_FindObjectsFinal(h->session);
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_FindObjects", rv);
	if (n >= 1)
		*obj = found[0];
	return (int)n;
}

/*
 * Find the one object of class cls (EC) with the URI's label and id.
 * Returns 1 found, 0 none, <0 error (logged; also on ambiguity).
 */
int kj_hsm_find(struct kj_hsm *h, CK_OBJECT_CLASS cls,
		       CK_OBJECT_HANDLE *obj)
{
	CK_KEY_TYPE kt = CKK_EC;
	CK_ATTRIBUTE tmpl[4] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
	};
	CK_ULONG nt = 2;
	CK_ATTRIBUTE *a;
	int n;

	a = p11_kit_uri_get_attribute(h->uri, CKA_LABEL);
	if (a)
		tmpl[nt++] = *a;
	a = p11_kit_uri_get_attribute(h->uri, CKA_ID);
	if (a)
		tmpl[nt++] = *a;
	if (nt == 2) {
		kj_err("%s: the URI names no key: add object=LABEL and/or "
		       "id=ID", h->uri_text);
		return -EINVAL;
	}
	n = find_objects(h, tmpl, nt, obj);
	if (n > 1) {
		kj_err("%s: more than one %s key matches; add id= to the URI",
		       h->uri_text, cls == CKO_PRIVATE_KEY ? "private" :
		       "public");
		return -EINVAL;
	}
	return n;
}

int kj_hsm_find_key_by_point(struct kj_hsm *h, const uint8_t *pt,
			     size_t len, unsigned long *key)
{
	CK_OBJECT_CLASS pc = CKO_PUBLIC_KEY, kc = CKO_PRIVATE_KEY;
	CK_OBJECT_HANDLE pub, priv;
	uint8_t der[2 + 133], id[128];
	CK_ATTRIBUTE t[2] = { { CKA_CLASS, &pc, sizeof(pc) },
			      { CKA_EC_POINT, der, len + 2 } };
	CK_ATTRIBUTE ida = { CKA_ID, id, sizeof(id) };
	CK_RV rv;
	int n;

	if (len < 1 || len > 127)
		return -EINVAL;
	der[0] = 0x04; /* PKCS#11: CKA_EC_POINT is a DER OCTET STRING */
	der[1] = (uint8_t)len;
	memcpy(der + 2, pt, len);
	n = find_objects(h, t, 2, &pub);
	if (n == 0) { /* some tokens keep the raw point */
		t[1].pValue = (void *)pt;
		t[1].ulValueLen = len;
		n = find_objects(h, t, 2, &pub);
	}
	if (n < 0)
		return n;
	if (n != 1) {
		kj_err("%s: %s EC public key in the token has this point",
		       h->uri_text, n ? "more than one" : "no");
		return -ENOKEY;
	}
	rv = h->f->C_GetAttributeValue(h->session, pub, &ida, 1);
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_GetAttributeValue(CKA_ID)", rv);
	t[0].pValue = &kc;
	t[1] = ida;
	n = find_objects(h, t, 2, &priv);
	if (n < 0)
		return n;
	if (n != 1) {
		kj_err("%s: %s private key has the CKA_ID of the public key "
		       "with this point", h->uri_text,
		       n ? "more than one" : "no");
		return -ENOKEY;
	}
	*key = priv;
	return 0;
}

int kj_hsm_priv(struct kj_hsm *h)
{
	int rc;

	if (h->have_priv)
		return 0;
	rc = kj_hsm_find(h, CKO_PRIVATE_KEY, &h->priv);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		kj_err("%s: no EC private key with this label/id in the token%s",
		       h->uri_text, h->logged_in ? "" :
		       " (not logged in: give --pin-source)");
		return -ENOKEY;
	}
	h->have_priv = true;
	return 0;
}

int kj_hsm_check_key(struct kj_hsm *h)
{
	return kj_hsm_priv(h);
}

int kj_hsm_ecdh(struct kj_hsm *h, const uint8_t *peer, size_t peer_len,
		uint8_t *z, size_t z_cap, size_t *z_len)
{
	CK_ECDH1_DERIVE_PARAMS p = {
		.kdf = CKD_NULL,
		.ulPublicDataLen = peer_len,
		.pPublicData = (CK_BYTE_PTR)peer,
	};
	CK_MECHANISM mech = { CKM_ECDH1_DERIVE, &p, sizeof(p) };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ULONG flen = (peer_len - 1) / 2;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_SENSITIVE, &no, sizeof(no) },
		{ CKA_EXTRACTABLE, &yes, sizeof(yes) },
		{ CKA_VALUE_LEN, &flen, sizeof(flen) },
	};
	CK_OBJECT_HANDLE secret;
	CK_ATTRIBUTE val = { CKA_VALUE, z, z_cap };
	CK_RV rv;
	int rc;

	if (peer_len < 3 || peer[0] != 0x04 || !(peer_len & 1) ||
	    flen > z_cap) {
		kj_err("%s: ECDH: peer public key is not an uncompressed "
		       "point of a supported curve (%zu bytes)", h->uri_text,
		       peer_len);
		return -EBADMSG;
	}
	KJ_TRY(kj_hsm_priv(h));
	rv = h->f->C_DeriveKey(h->session, &mech, h->priv, tmpl,
			       KJ_ARRAY_SIZE(tmpl), &secret);
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_DeriveKey(CKM_ECDH1_DERIVE)", rv);
	rv = h->f->C_GetAttributeValue(h->session, secret, &val, 1);
	rc = rv == CKR_OK ? 0 : kj_hsm_fail(h, "C_GetAttributeValue(Z)", rv);
	if (rc == 0)
		*z_len = val.ulValueLen;
	rv = h->f->C_DestroyObject(h->session, secret);
	if (rv != CKR_OK && rc == 0)
		rc = kj_hsm_fail(h, "C_DestroyObject(Z)", rv);
	if (rc < 0)
		explicit_bzero(z, z_cap);
	return rc;
}

int kj_hsm_public_point(struct kj_hsm *h, uint8_t *out, size_t cap,
			size_t *len)
{
	CK_OBJECT_HANDLE pub;
	int rc;

	rc = kj_hsm_find(h, CKO_PUBLIC_KEY, &pub);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		kj_err("%s: no EC public key with this label/id in the token",
		       h->uri_text);
		return -ENOKEY;
	}
	return kj_hsm_point_of(h, pub, out, cap, len);
}

int kj_hsm_point_of(struct kj_hsm *h, CK_OBJECT_HANDLE pub, uint8_t *out,
		    size_t cap, size_t *len)
{
	uint8_t buf[160];
	CK_ATTRIBUTE a = { CKA_EC_POINT, buf, sizeof(buf) };
	size_t off = 0, n;
	CK_RV rv;

	rv = h->f->C_GetAttributeValue(h->session, pub, &a, 1);
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_GetAttributeValue(CKA_EC_POINT)", rv);
	n = a.ulValueLen;
	/* PKCS#11 says DER OCTET STRING; some tokens give the raw point. */
	if (n >= 2 && buf[0] == 0x04 && buf[1] == n - 2) {
		off = 2;
		n -= 2;
	} else if (n >= 3 && buf[0] == 0x04 && buf[1] == 0x81 &&
		   buf[2] == n - 3) {
		off = 3;
		n -= 3;
	}
	if (n > cap || n < 1 || buf[off] != 0x04) {
		kj_err("%s: CKA_EC_POINT is not an uncompressed point",
		       h->uri_text);
		return -EIO;
	}
	memcpy(out, buf + off, n);
	*len = n;
	return 0;
}

int kj_hsm_no_key_yet(struct kj_hsm *h, const char *what)
{
	CK_OBJECT_HANDLE obj;
	int rc = kj_hsm_find(h, CKO_PRIVATE_KEY, &obj);

	if (rc > 0) {
		kj_err("%s: a private key with this label/id already exists; "
		       "%s", h->uri_text, what);
		return -EEXIST;
	}
	return rc;
}

int kj_hsm_generate_ec_p256(struct kj_hsm *h, bool wrappable)
{
	/* DER OID prime256v1 (1.2.840.10045.3.1.7), CKA_EC_PARAMS. */
	static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
					0x3d, 0x03, 0x01, 0x07 };
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE pub[6] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_EC_PARAMS, (void *)p256, sizeof(p256) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_DERIVE, &yes, sizeof(yes) },
	};
	CK_ATTRIBUTE priv[9] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, wrappable ? &yes : &no, sizeof(no) },
		{ CKA_DERIVE, &yes, sizeof(yes) },
		{ CKA_SIGN, &yes, sizeof(yes) },
	};
	CK_ULONG npub = 4, npriv = 6;
	CK_OBJECT_HANDLE hpub, hpriv;
	CK_ATTRIBUTE *a;
	CK_RV rv;

	KJ_TRY(kj_hsm_no_key_yet(h, "refusing to generate another"));
	a = p11_kit_uri_get_attribute(h->uri, CKA_LABEL);
	if (a) {
		pub[npub++] = *a;
		priv[npriv++] = *a;
	}
	a = p11_kit_uri_get_attribute(h->uri, CKA_ID);
	if (a) {
		pub[npub++] = *a;
		priv[npriv++] = *a;
	}
	rv = h->f->C_GenerateKeyPair(h->session, &mech, pub, npub, priv, npriv,
				     &hpub, &hpriv);
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_GenerateKeyPair(CKM_EC_KEY_PAIR_GEN)", rv);
	h->priv = hpriv;
	h->have_priv = true;
	return 0;
}

int kj_hsm_uri_key(struct kj_hsm *h, unsigned long *key)
{
	KJ_TRY(kj_hsm_priv(h));
	*key = h->priv;
	return 0;
}

int kj_hsm_sign_ecdsa(struct kj_hsm *h, const uint8_t dgst[32],
		      uint8_t sig[64])
{
	KJ_TRY(kj_hsm_priv(h));
	return kj_hsm_sign_ecdsa_key(h, h->priv, dgst, sig);
}

int kj_hsm_sign_ecdsa_key(struct kj_hsm *h, unsigned long key,
			  const uint8_t dgst[32], uint8_t sig[64])
{
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	CK_ULONG n = 64;
	CK_RV rv;

	rv = h->f->C_SignInit(h->session, &mech, key);
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_SignInit(CKM_ECDSA)", rv);
	rv = h->f->C_Sign(h->session, (CK_BYTE_PTR)dgst, 32, sig, &n);
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_Sign(CKM_ECDSA)", rv);
	if (n != 64) {
		kj_err("%s: C_Sign(CKM_ECDSA) returned %lu bytes, want 64",
		       h->uri_text, (unsigned long)n);
		return -EIO;
	}
	return 0;
}

static int hsm_derive(void *ctx, const uint8_t *peer, size_t peer_len,
		      uint8_t *z, size_t z_cap, size_t *z_len)
{
	return kj_hsm_ecdh(ctx, peer, peer_len, z, z_cap, z_len);
}

void kj_hsm_ecdh_key(struct kj_hsm *h, X509 *cert, struct kj_ecdh_key *out)
{
	out->derive = hsm_derive;
	out->ctx = h;
	out->cert = cert;
}
