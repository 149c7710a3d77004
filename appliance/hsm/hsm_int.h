/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the pieces of the HSM module share and nobody else may see: the
 * handle's layout and the helpers of hsm.c that hsm_wrap.c (the backup's
 * key wrapping) needs.  Callers outside hsm/hsm*.c use hsm.h only.
 */
#ifndef KINJECT_HSM_INT_H
#define KINJECT_HSM_INT_H

#include <stdbool.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include "hsm.h"

struct kj_hsm {
	char *uri_text;
	P11KitUri *uri;
	CK_FUNCTION_LIST **modules; /* p11_kit_modules_load_and_initialize */
	CK_FUNCTION_LIST *module;   /* p11_kit_module_load (module-path=) */
	CK_FUNCTION_LIST *f;	    /* the module holding the token */
	CK_SESSION_HANDLE session;
	bool have_session;
	bool logged_in;
	CK_OBJECT_HANDLE priv;
	bool have_priv;
};

/* Log a PKCS#11 failure naming the URI, the call and the CK_RV. */
int kj_hsm_fail(const struct kj_hsm *h, const char *call, CK_RV rv);
/* The one EC object of class cls with the URI's label/id: 1, 0 none, < 0. */
int kj_hsm_find(struct kj_hsm *h, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *obj);
/* 0 if the token has no private key with the URI's label/id; else
 * -EEXIST, logged with what (what to do instead). */
int kj_hsm_no_key_yet(struct kj_hsm *h, const char *what);
/* The uncompressed point of EC public key object pub (CKA_EC_POINT). */
int kj_hsm_point_of(struct kj_hsm *h, CK_OBJECT_HANDLE pub, uint8_t *out,
		    size_t cap, size_t *len);
/* Look up the private key (h->priv); -ENOKEY (logged) when absent. */
int kj_hsm_priv(struct kj_hsm *h);

#endif
