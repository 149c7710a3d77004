// SPDX-License-Identifier: Apache-2.0
/*
 * A PKCS#11 module that stands in front of a real one (SoftHSM2) and can
 * be made to fail mid-job, for the "HSM lost" fault test
 * (tests/integration/run_hsm_lost.sh, QUALITY.md "Faults").  Loaded by
 * kinject through the URI's module-path= like any module; every call goes
 * to the real module (KJ_P11FAULT_MODULE) until the file named by
 * KJ_P11FAULT_TRIGGER exists.  From then on the token behaves as if it
 * was pulled out: no slot has a token, opening a session says
 * CKR_TOKEN_NOT_PRESENT and every call on an open session
 * CKR_DEVICE_REMOVED.  Removing the file puts the token back (for new
 * sessions, as with a real token).  Built by the test with the system cc.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST list;

static int gone(void)
{
	const char *t = getenv("KJ_P11FAULT_TRIGGER");
	struct stat st;

	return t && stat(t, &st) == 0;
}

static CK_RV w_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR ids,
			   CK_ULONG_PTR n)
{
	if (present && gone()) {
		*n = 0;
		return CKR_OK;
	}
	return real->C_GetSlotList(present, ids, n);
}

/* Calls on the token that is gone. */
#define TOKEN(name, decl, args)                                           \
	static CK_RV w_##name decl                                         \
	{                                                                  \
		return gone() ? CKR_TOKEN_NOT_PRESENT : real->C_##name args; \
	}
/* Calls on a session of the token that is gone. */
#define SESSION(name, decl, args)                                          \
	static CK_RV w_##name decl                                         \
	{                                                                  \
		return gone() ? CKR_DEVICE_REMOVED : real->C_##name args;    \
	}

TOKEN(GetTokenInfo, (CK_SLOT_ID s, CK_TOKEN_INFO_PTR i), (s, i))
TOKEN(OpenSession, (CK_SLOT_ID s, CK_FLAGS f, CK_VOID_PTR a, CK_NOTIFY cb,
		    CK_SESSION_HANDLE_PTR h), (s, f, a, cb, h))
SESSION(GetSessionInfo, (CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR i), (h, i))
SESSION(Login, (CK_SESSION_HANDLE h, CK_USER_TYPE u, CK_UTF8CHAR_PTR p,
		CK_ULONG n), (h, u, p, n))
SESSION(FindObjectsInit, (CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t,
			  CK_ULONG n), (h, t, n))
SESSION(FindObjects, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR o,
		      CK_ULONG m, CK_ULONG_PTR n), (h, o, m, n))
SESSION(FindObjectsFinal, (CK_SESSION_HANDLE h), (h))
SESSION(GetAttributeValue, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
			    CK_ATTRIBUTE_PTR t, CK_ULONG n), (h, o, t, n))
SESSION(SignInit, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
		   CK_OBJECT_HANDLE k), (h, m, k))
SESSION(Sign, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dn,
	       CK_BYTE_PTR s, CK_ULONG_PTR sn), (h, d, dn, s, sn))
SESSION(DeriveKey, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
		    CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR t, CK_ULONG n,
		    CK_OBJECT_HANDLE_PTR k), (h, m, b, t, n, k))
SESSION(GenerateKeyPair, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
			  CK_ATTRIBUTE_PTR pt, CK_ULONG pn,
			  CK_ATTRIBUTE_PTR vt, CK_ULONG vn,
			  CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv),
	(h, m, pt, pn, vt, vn, pub, priv))

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	const char *path = getenv("KJ_P11FAULT_MODULE");
	CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
	void *dl;

	if (!real) {
		if (!path || !(dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
			fprintf(stderr, "p11fault: KJ_P11FAULT_MODULE=%s: %s\n",
				path ? path : "(unset)",
				path ? dlerror() : "names the real module");
			return CKR_GENERAL_ERROR;
		}
		get = (CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(
			dl, "C_GetFunctionList");
		if (!get || get(&real) != CKR_OK)
			return CKR_GENERAL_ERROR;
		list = *real;
#define W(name) list.C_##name = w_##name
		W(GetSlotList);
		W(GetTokenInfo);
		W(OpenSession);
		W(GetSessionInfo);
		W(Login);
		W(FindObjectsInit);
		W(FindObjects);
		W(FindObjectsFinal);
		W(GetAttributeValue);
		W(SignInit);
		W(Sign);
		W(DeriveKey);
		W(GenerateKeyPair);
#undef W
	}
	*out = &list;
	return CKR_OK;
}
