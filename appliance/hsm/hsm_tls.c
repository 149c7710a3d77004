// SPDX-License-Identifier: Apache-2.0
/*
 * The appliance's TLS server key (PROTOCOL.md "TLS"), made by the key
 * ceremony.  It is a second key of the token, apart from the transport
 * key, because it does a different job (it signs TLS 1.3 CertificateVerify
 * inputs for the keeper, nothing else) and must never be extractable, even
 * on an appliance whose transport key is wrappable for backup: a restored
 * appliance simply gets a new one.
 */
#include <string.h>
#include <p11-kit/p11-kit.h>
#include <openssl/rand.h>

#include "hsm.h"
#include "base/log.h"
#include "hsm_int.h"

int kj_hsm_generate_tls_key(struct kj_hsm *h, uint8_t pt[65],
			    unsigned long *key)
{
	/* DER OID prime256v1 (1.2.840.10045.3.1.7), CKA_EC_PARAMS. */
	static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
					0x3d, 0x03, 0x01, 0x07 };
	static const char label[] = "kinject-tls";
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	uint8_t id[16];
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_EC_PARAMS, (void *)p256, sizeof(p256) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)label, sizeof(label) - 1 },
		{ CKA_ID, id, sizeof(id) },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_DERIVE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)label, sizeof(label) - 1 },
		{ CKA_ID, id, sizeof(id) },
	};
	CK_OBJECT_HANDLE hpub, hpriv;
	size_t len;
	CK_RV rv;

	/* A fresh CKA_ID per key: find_key_by_point pairs them through it. */
	if (RAND_bytes(id, sizeof(id)) != 1)
		return kj_err_ssl("%s: drawing the TLS key's CKA_ID",
				  kj_hsm_uri(h));
	rv = h->f->C_GenerateKeyPair(h->session, &mech, pub,
				     KJ_ARRAY_SIZE(pub), priv,
				     KJ_ARRAY_SIZE(priv), &hpub, &hpriv);
	if (rv != CKR_OK)
		return kj_hsm_fail(h, "C_GenerateKeyPair(TLS key)", rv);
	KJ_TRY(kj_hsm_point_of(h, hpub, pt, 65, &len));
	if (len != 65) {
		kj_err("%s: the TLS key's point is %zu bytes, not 65",
		       kj_hsm_uri(h), len);
		return -EIO;
	}
	*key = hpriv;
	return 0;
}
