// SPDX-License-Identifier: Apache-2.0
/*
 * Backup and restore (backup.h).  The backup key, its coefficients and
 * every share exist in plaintext only in the secret arena: drawn there,
 * split there, encrypted to the officers from there, and on restore
 * decrypted back there (OpenSSL's output buffer is wiped at once).  What
 * is written is the wrapped key (useless without M shares) and the
 * encrypted shares (useless without the officers' keys).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "backup.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "hsm/hsm.h"
#include "journal/record.h"
#include "secret/arena.h"
#include "ceremony_int.h"
#include "officers.h"
#include "request.h"
#include "shamir.h"

#define KEK_LEN 32
#define SHARE_LEN (1 + KEK_LEN)

/*
 * One share (arena) as CMS AuthEnvelopedData (AES-256-GCM) to one officer;
 * to an EC officer with a SHA-256 KDF, as SPEC.md §3.1's inputs, so that
 * restore opens it with the same code (kj_cms_open_envelope, into the
 * arena), also with the officer's key on a token.
 */
static int encrypt_share(X509 *officer, const uint8_t *share,
			 const char *path)
{
	BIO *in = BIO_new_mem_buf(share, SHARE_LEN);
	CMS_ContentInfo *cms = in ? CMS_encrypt(NULL, in, EVP_aes_256_gcm(),
						CMS_BINARY | CMS_PARTIAL) :
				    NULL;
	CMS_RecipientInfo *ri = cms ? CMS_add1_recipient_cert(cms, officer,
						CMS_KEY_PARAM) : NULL;
	unsigned char *der = NULL;
	int n = -1, rc;

	if (ri && CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_AGREE &&
	    EVP_PKEY_CTX_set_ecdh_kdf_md(CMS_RecipientInfo_get0_pkey_ctx(ri),
					 EVP_sha256()) <= 0)
		ri = NULL;
	if (ri && CMS_final(cms, in, NULL, CMS_BINARY) == 1)
		n = i2d_CMS_ContentInfo(cms, &der);
	rc = n > 0 ? kj_write_file_atomic(path, der, (size_t)n, 0644) :
		     kj_err_ssl("%s: cannot encrypt the share to the officer",
				path);
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	return rc;
}

static int write_manifest(const char *state, const char *dir,
			  const struct kj_officers *set, const uint8_t *wrapped,
			  size_t wlen, const uint8_t *shares)
{
	char path[PATH_MAX], id[65], t[KJ_RECORD_TIME_LEN + 1], f[32];
	char *opem = NULL, *tpem = NULL, *s = NULL;
	uint8_t *cert = NULL, d[32];
	size_t clen;
	json_t *m = NULL, *arr = json_array();
	int rc;

	KJ_TRY_GOTO(rc, kj_cer_appliance_id(state, id), out);
	KJ_TRY_GOTO(rc, kj_cer_path(path, state, "transport.pem"), out);
	KJ_TRY_GOTO(rc, kj_read_file(path, 1 << 16, &cert, &clen), out);
	KJ_TRY_GOTO(rc, kj_officers_pem(set, &opem), out);
	KJ_TRY_GOTO(rc, kj_record_format_time(kj_record_now_ms(), t), out);
	for (unsigned i = 0; arr && i < set->n; i++) {
		kj_sha256(shares + i * SHARE_LEN, SHARE_LEN, d);
		snprintf(f, sizeof(f), "share-%u.cms", i + 1);
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:i,s:o}",
			"file", f, "officer", set->fp[i], "subject",
			set->subject[i], "x", i + 1, "sha256",
			kj_cer_hex(d, 32)));
	}
	m = json_pack("{s:i,s:s,s:s,s:i,s:s,s:s,s:o,s:s,s:o}",
		      "kinject_backup", 1, "time", t, "appliance", id,
		      "threshold", set->threshold, "officers", opem,
		      "transport_cert", (char *)cert, "wrapped",
		      kj_cer_b64(wrapped, wlen), "mechanism",
		      "CKM_AES_KEY_WRAP_PAD", "shares", arr);
	arr = NULL;
	s = m ? json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	rc = -ENOMEM;
	if (!s)
		goto out;
	KJ_TRY_GOTO(rc, kj_cer_path(path, dir, "manifest.json"), out);
	rc = kj_write_file_atomic(path, s, strlen(s), 0644);
out:
	json_decref(arr);
	json_decref(m);
	free(cert);
	free(opem);
	free(tpem);
	free(s);
	return rc;
}

int kj_ceremony_backup(const char *state, const char *hsm_uri,
		       const char *pin_source, const char *dir)
{
	struct kj_officers set = { 0 };
	struct kj_arena arena = { 0 };
	struct kj_hsm *hsm = NULL;
	uint8_t *kek, *scratch, *shares, wrapped[1024];
	size_t wlen = 0;
	char path[PATH_MAX];
	int rc;

	KJ_TRY(kj_ceremony_check_initialised(state, "backup"));
	KJ_TRY_GOTO(rc, kj_officers_load(state, &set), out);
	KJ_TRY_GOTO(rc, kj_arena_create(&arena, 4096, KJ_ARENA_AUTO), out);
	kek = kj_arena_alloc(&arena, KEK_LEN);
	scratch = kj_arena_alloc(&arena, KEK_LEN * set.threshold);
	shares = kj_arena_alloc(&arena, SHARE_LEN * set.n);
	rc = -ENOMEM;
	if (!kek || !scratch || !shares)
		goto out;
	if (getrandom(kek, KEK_LEN, 0) != KEK_LEN) {
		rc = -EIO;
		kj_err("getrandom: %s", strerror(errno));
		goto out;
	}
	KJ_TRY_GOTO(rc, kj_hsm_open(&hsm, hsm_uri, pin_source), out);
	KJ_TRY_GOTO(rc, kj_hsm_wrap_transport(hsm, kek, wrapped,
					      sizeof(wrapped), &wlen), out);
	KJ_TRY_GOTO(rc, kj_shamir_split_random(kek, KEK_LEN, set.threshold,
					       set.n, scratch, shares), out);
	KJ_TRY_GOTO(rc, kj_mkdir_p(dir, 0700), out);
	for (unsigned i = 0; i < set.n; i++) {
		char f[32];

		snprintf(f, sizeof(f), "share-%u.cms", i + 1);
		KJ_TRY_GOTO(rc, kj_cer_path(path, dir, f), out);
		KJ_TRY_GOTO(rc, encrypt_share(set.cert[i],
					      shares + i * SHARE_LEN, path),
			    out);
	}
	rc = write_manifest(state, dir, &set, wrapped, wlen, shares);
	if (rc >= 0)
		printf("backup in %s: the transport key wrapped under a fresh "
		       "AES-256 key, split %u of %u; share-N.cms is officer "
		       "N's (%s ...)\n", dir, set.threshold, set.n,
		       set.subject[0]);
out:
	kj_arena_destroy(&arena);
	kj_hsm_close(hsm);
	kj_officers_free(&set);
	return rc;
}
