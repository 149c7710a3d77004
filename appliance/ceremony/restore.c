// SPDX-License-Identifier: Apache-2.0
/*
 * kinject ceremony restore (backup.h): the approved restore request, the
 * officers' shares decrypted into the arena one by one (with a key file or
 * the officer's token) and each checked
 * against the manifest before use (a tampered share is named, not merely
 * "wrong key" at the end), the backup key rebuilt, then an init on the new
 * token and TPM that unwraps the transport key instead of making one.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "backup.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "hsm/hsm.h"
#include "inputs/cms.h"
#include "secret/arena.h"
#include "ceremony_int.h"
#include "officers.h"
#include "request.h"
#include "shamir.h"

#define KEK_LEN 32
#define SHARE_LEN (1 + KEK_LEN)

struct rst {
	const struct kj_restore_args *a;
	uint8_t *mbuf, *rbuf;
	size_t mlen, rlen;
	json_t *m, *req;
	struct kj_officers set;
	unsigned who[KJ_OFFICERS_MAX * 2];
	struct kj_restore r;
	char *set_pem;
	uint8_t *wrapped;
};

/* The manifest's entry for share file path, by its name. */
static const json_t *entry(const json_t *m, const char *path)
{
	char tmp[PATH_MAX];
	const char *name;
	size_t i;
	json_t *e;

	snprintf(tmp, sizeof(tmp), "%s", path);
	name = basename(tmp);
	json_array_foreach(json_object_get(m, "shares"), i, e)
		if (!strcmp(json_string_value(json_object_get(e, "file")) ?: "",
			    name))
			return e;
	return NULL;
}

/* An RSA officer key file: CMS_decrypt, its output copied to the arena
 * from a secure-heap BIO cleansed on free. */
static int decrypt_rsa(CMS_ContentInfo *cms, EVP_PKEY *pk, const char *path,
		       const char *key, struct kj_arena *ar,
		       const uint8_t **out)
{
	BIO *sb = BIO_new(BIO_s_secmem());
	uint8_t *p = kj_arena_alloc(ar, SHARE_LEN);
	int rc = -EBADMSG;

	if (!cms || !sb || !p || CMS_decrypt(cms, pk, NULL, NULL, sb,
				     CMS_BINARY) != 1)
		kj_err_ssl("%s: cannot decrypt it with %s (tampered, or not "
			   "this officer's share)", path, key);
	else if (BIO_read(sb, p, SHARE_LEN) != SHARE_LEN || BIO_pending(sb))
		kj_err("%s: decrypted share is not %d bytes", path, SHARE_LEN);
	else
		rc = 0;
	BIO_free(sb);
	*out = p;
	return rc;
}

/*
 * Officer key: a PEM file, or a PKCS#11 URI (the officer's token; its PIN
 * from the URI's pin-source).  EC keys open the AuthEnvelopedData with
 * kj_cms_open_envelope, which writes the plaintext only into the arena.
 */
static int decrypt_share(const char *path, const char *key, X509 *officer,
			 struct kj_arena *ar, const uint8_t **out)
{
	struct kj_ecdh_key k;
	struct kj_hsm *h = NULL;
	EVP_PKEY *pk = NULL;
	CMS_ContentInfo *cms = NULL;
	const unsigned char *p;
	uint8_t *der = NULL;
	size_t len, plen = 0;
	BIO *kb = NULL;
	int rc;

	KJ_TRY(kj_read_file(path, 1 << 16, &der, &len));
	if (!strncmp(key, "pkcs11:", 7)) {
		KJ_TRY_GOTO(rc, kj_hsm_open(&h, key, NULL), out);
		kj_hsm_ecdh_key(h, officer, &k);
	} else {
		kb = BIO_new_file(key, "r");
		pk = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
		if (!pk) {
			rc = kj_err_ssl("%s: cannot read the officer's private "
					"key", key);
			goto out;
		}
		if (X509_check_private_key(officer, pk) != 1) {
			char sub[256];

			X509_NAME_oneline(X509_get_subject_name(officer), sub,
					  sizeof(sub));
			ERR_clear_error();
			kj_err("%s: %s is not the key of the share's officer "
			       "(%s)", path, key, sub);
			rc = -EPERM;
			goto out;
		}
		if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC) {
			p = der;
			cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
			rc = decrypt_rsa(cms, pk, path, key, ar, out);
			goto out;
		}
		kj_cms_sw_ecdh_key(pk, officer, &k);
	}
	rc = kj_cms_open_envelope(&k, der, len, path, ar, out, &plen);
	if (rc >= 0 && plen != SHARE_LEN) {
		kj_err("%s: decrypted share is not %d bytes", path, SHARE_LEN);
		rc = -EBADMSG;
	}
out:
	kj_hsm_close(h);
	CMS_ContentInfo_free(cms);
	EVP_PKEY_free(pk);
	BIO_free(kb);
	free(der);
	return rc;
}

/* The officer of a manifest entry, in the backup's set. */
static X509 *officer_of(const struct rst *c, const json_t *e)
{
	const char *fp = json_string_value(json_object_get(e, "officer"));

	for (unsigned i = 0; fp && i < c->set.n; i++)
		if (!strcmp(c->set.fp[i], fp))
			return c->set.cert[i];
	return NULL;
}

static int one_share(struct rst *c, unsigned i, struct kj_arena *ar,
		     const uint8_t **out)
{
	const char *path = c->a->shares[i];
	const json_t *e = entry(c->m, path);
	X509 *officer = e ? officer_of(c, e) : NULL;
	const char *want;
	uint8_t d[32];
	char hex[65];

	if (!officer) {
		kj_err("%s: not a share of this backup (manifest.json does not "
		       "list it with one of its officers)", path);
		return -EINVAL;
	}
	KJ_TRY(decrypt_share(path, c->a->keys[i], officer, ar, out));
	kj_sha256(*out, SHARE_LEN, d);
	kj_hex_encode(d, 32, hex);
	want = json_string_value(json_object_get(e, "sha256"));
	if (!want || strcmp(want, hex) ||
	    (*out)[0] != json_integer_value(json_object_get(e, "x"))) {
		kj_err("%s: the decrypted share does not match the backup's "
		       "manifest (tampered)", path);
		return -EBADMSG;
	}
	return 0;
}

/* The request: kind restore, for this backup, approved by a quorum. */
static int approved(struct rst *c)
{
	const struct kj_restore_args *a = c->a;
	const char *k, *b, *app, *opem, *mapp;
	uint8_t d[32];

	KJ_TRY(kj_read_file(a->request, 8 << 20, &c->rbuf, &c->rlen));
	KJ_TRY(kj_json_load(c->rbuf, c->rlen, a->request, &c->req));
	KJ_TRY(kj_json_version(c->req, a->request, "kinject_request", 1));
	k = json_string_value(json_object_get(c->req, "kind"));
	b = json_string_value(json_object_get(c->req, "backup"));
	app = json_string_value(json_object_get(c->req, "appliance"));
	mapp = json_string_value(json_object_get(c->m, "appliance"));
	if (!k || strcmp(k, "restore") || !b ||
	    json_string_length(json_object_get(c->req, "backup")) != c->mlen ||
	    memcmp(b, c->mbuf, c->mlen) || !app || !mapp ||
	    strcmp(app, mapp)) {
		kj_err("%s: not a restore request for the backup in %s "
		       "(kinject ceremony request restore --backup %s)",
		       a->request, a->backup, a->backup);
		return -EPERM;
	}
	opem = json_string_value(json_object_get(c->m, "officers"));
	if (!opem) {
		kj_err("%s/manifest.json: no officers", a->backup);
		return -EINVAL;
	}
	KJ_TRY(kj_officers_from_pem(opem, (unsigned)json_integer_value(
		json_object_get(c->m, "threshold")), "backup: officers",
		&c->set));
	c->set_pem = strdup(opem);
	kj_sha256(c->rbuf, c->rlen, d);
	kj_hex_encode(d, 32, c->r.request_sha);
	kj_sha256(c->mbuf, c->mlen, d);
	kj_hex_encode(d, 32, c->r.manifest_sha);
	if (a->nsig > KJ_ARRAY_SIZE(c->who))
		return -EINVAL;
	return kj_officers_quorum(&c->set, c->rbuf, c->rlen, a->request,
				  a->sigs, a->nsig, c->who);
}

static int rebuild(struct rst *c, struct kj_arena *ar, uint8_t *kek)
{
	const uint8_t *p[KJ_SHAMIR_MAX_SHARES];
	unsigned n = c->a->nshares;

	for (unsigned i = 0; i < n; i++)
		KJ_TRY(one_share(c, i, ar, &p[i]));
	if (n < c->set.threshold) {
		kj_err("%s: too few shares: %u given, the backup needs %u of "
		       "%u", c->a->backup, n, c->set.threshold, c->set.n);
		return -EPERM;
	}
	return kj_shamir_combine(p, n, KEK_LEN, kek);
}

static int run(struct rst *c, struct kj_arena *ar)
{
	const struct kj_restore_args *a = c->a;
	struct kj_ceremony_init_args init = a->init;
	char path[PATH_MAX];
	const char *w;
	uint8_t *kek;

	KJ_TRY(kj_cer_path(path, a->backup, "manifest.json"));
	KJ_TRY(kj_read_file(path, 1 << 20, &c->mbuf, &c->mlen));
	KJ_TRY(kj_json_load(c->mbuf, c->mlen, path, &c->m));
	KJ_TRY(kj_json_version(c->m, path, "kinject_backup", 1));
	KJ_TRY(approved(c));
	KJ_TRY(kj_arena_create(ar, 4096 * 4, KJ_ARENA_AUTO));
	if (a->nshares > KJ_SHAMIR_MAX_SHARES ||
	    !(kek = kj_arena_alloc(ar, KEK_LEN)))
		return -ENOMEM;
	KJ_TRY(rebuild(c, ar, kek));
	w = json_string_value(json_object_get(c->m, "wrapped"));
	c->r.cert_pem = json_string_value(json_object_get(c->m,
							  "transport_cert"));
	if (!w || !c->r.cert_pem ||
	    kj_cer_unb64(w, &c->wrapped, &c->r.wrapped_len) < 0) {
		kj_err("%s: fields \"wrapped\", \"transport_cert\" missing or "
		       "malformed", path);
		return -EINVAL;
	}
	c->r.kek = kek;
	c->r.wrapped = c->wrapped;
	c->r.set = &c->set;
	c->r.set_pem = c->set_pem;
	c->r.who = c->who;
	c->r.nsig = a->nsig;
	init.restore = &c->r;
	return kj_ceremony_init(&init);
}

int kj_ceremony_restore(const struct kj_restore_args *a)
{
	struct rst c = { .a = a };
	struct kj_arena ar = { 0 };
	int rc = run(&c, &ar);

	kj_arena_destroy(&ar);
	json_decref(c.m);
	json_decref(c.req);
	kj_officers_free(&c.set);
	free(c.set_pem);
	free(c.wrapped);
	free(c.mbuf);
	free(c.rbuf);
	return rc;
}
