// SPDX-License-Identifier: Apache-2.0
/*
 * The officer set and the quorum check (officers.h).  The quorum check is
 * the one gate every privileged act of the ceremony passes, so each of its
 * refusals says exactly which signature file failed and why: an officer
 * holding a refused request needs to know whether to sign again, fetch
 * another officer, or suspect tampering.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "officers.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "inputs/cms.h"

int kj_cert_fingerprint(X509 *x, char hex[65])
{
	unsigned char *der = NULL;
	uint8_t d[32];
	int n = i2d_X509(x, &der);

	if (n <= 0)
		return kj_err_ssl("certificate: cannot encode it as DER");
	kj_sha256(der, (size_t)n, d);
	OPENSSL_free(der);
	kj_hex_encode(d, 32, hex);
	return 0;
}

static int add(struct kj_officers *s, X509 *x, const char *what)
{
	char fp[65];

	if (s->n >= KJ_OFFICERS_MAX) {
		kj_err("%s: more than %d officers", what, KJ_OFFICERS_MAX);
		X509_free(x);
		return -EINVAL;
	}
	if (kj_cert_fingerprint(x, fp) < 0) {
		X509_free(x);
		return -EINVAL;
	}
	for (unsigned i = 0; i < s->n; i++)
		if (!strcmp(s->fp[i], fp)) {
			kj_err("%s: officer certificate %s given twice (%s)",
			       what, fp, s->subject[i]);
			X509_free(x);
			return -EINVAL;
		}
	s->cert[s->n] = x;
	memcpy(s->fp[s->n], fp, sizeof(fp));
	X509_NAME_oneline(X509_get_subject_name(x), s->subject[s->n],
			  sizeof(s->subject[0]));
	s->n++;
	return 0;
}

static int check_threshold(struct kj_officers *s, unsigned m,
			   const char *what)
{
	if (m < 2 || m > s->n) {
		kj_err("%s: threshold %u with %u officers; need 2 <= "
		       "threshold <= officers (no one may act alone)", what,
		       m, s->n);
		return -EINVAL;
	}
	s->threshold = m;
	return 0;
}

int kj_officers_from_files(const char *const *paths, unsigned n, unsigned m,
			   struct kj_officers *out)
{
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < n && rc >= 0; i++) {
		X509 *x;

		rc = kj_cert_load(paths[i], &x);
		if (rc >= 0)
			rc = add(out, x, paths[i]);
	}
	if (rc >= 0)
		rc = check_threshold(out, m, "--threshold");
	if (rc < 0)
		kj_officers_free(out);
	return rc;
}

int kj_officers_from_pem(const char *pem, unsigned m, const char *what,
			 struct kj_officers *out)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!b)
		return -ENOMEM;
	while (rc >= 0 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		rc = add(out, x, what);
	ERR_clear_error();
	BIO_free(b);
	if (rc >= 0 && !out->n) {
		kj_err("%s: no officer certificate in it", what);
		rc = -EINVAL;
	}
	if (rc >= 0)
		rc = check_threshold(out, m, what);
	if (rc < 0)
		kj_officers_free(out);
	return rc;
}

int kj_officers_pem(const struct kj_officers *s, char **pem)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	if (!b)
		return -ENOMEM;
	for (unsigned i = 0; i < s->n; i++)
		if (PEM_write_bio_X509(b, s->cert[i]) != 1) {
			BIO_free(b);
			return kj_err_ssl("officer %s: cannot write PEM",
					  s->fp[i]);
		}
	n = BIO_get_mem_data(b, &p);
	*pem = malloc((size_t)n + 1);
	if (*pem) {
		memcpy(*pem, p, (size_t)n);
		(*pem)[n] = '\0';
	}
	BIO_free(b);
	return *pem ? 0 : -ENOMEM;
}

int kj_officers_save(const char *state, const struct kj_officers *s)
{
	char path[PATH_MAX], *pem = NULL, *js = NULL;
	json_t *o = json_pack("{s:i,s:i,s:[]}", "kinject_officers", 1,
			      "threshold", (json_int_t)s->threshold,
			      "officers");
	int rc;

	for (unsigned i = 0; o && i < s->n; i++)
		json_array_append_new(json_object_get(o, "officers"),
				      json_pack("{s:s,s:s}", "sha256", s->fp[i],
						"subject", s->subject[i]));
	js = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	if (!js)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/ceremony", state);
	KJ_TRY_GOTO(rc, kj_mkdir_p(path, 0700), out);
	KJ_TRY_GOTO(rc, kj_officers_pem(s, &pem), out);
	snprintf(path, sizeof(path), "%s/%s", state, KJ_OFFICERS_PEM);
	KJ_TRY_GOTO(rc, kj_write_file_atomic(path, pem, strlen(pem), 0644),
		    out);
	snprintf(path, sizeof(path), "%s/%s", state, KJ_OFFICERS_JSON);
	rc = kj_write_file_atomic(path, js, strlen(js), 0644);
out:
	free(pem);
	free(js);
	return rc;
}

int kj_officers_load(const char *state, struct kj_officers *out)
{
	char path[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len;
	json_t *o = NULL;
	uint64_t m;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/%s", state, KJ_OFFICERS_JSON);
	if (access(path, F_OK) != 0) {
		kj_err("%s: no officer set: the appliance is not initialised "
		       "(kinject ceremony init)", path);
		return -ENOENT;
	}
	KJ_TRY_GOTO(rc, kj_read_file(path, 1 << 20, &buf, &len), out);
	KJ_TRY_GOTO(rc, kj_json_load(buf, len, path, &o), out);
	KJ_TRY_GOTO(rc, kj_json_u64(o, path, "", "threshold", 2,
				    KJ_OFFICERS_MAX, &m), out);
	free(buf);
	buf = NULL;
	snprintf(path, sizeof(path), "%s/%s", state, KJ_OFFICERS_PEM);
	KJ_TRY_GOTO(rc, kj_read_file(path, 1 << 20, &buf, &len), out);
	rc = kj_officers_from_pem((char *)buf, (unsigned)m, path, out);
out:
	json_decref(o);
	free(buf);
	return rc;
}

void kj_officers_free(struct kj_officers *s)
{
	for (unsigned i = 0; i < s->n; i++)
		X509_free(s->cert[i]);
	memset(s, 0, sizeof(*s));
}

/* Which officer signed sig (one SignerInfo)?  -1 with *name set if none. */
static int find_signer(const struct kj_officers *s, const uint8_t *sig,
		       size_t len, const char *path, char *name, size_t cap)
{
	const unsigned char *p = sig;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	STACK_OF(CMS_SignerInfo) *sis;
	CMS_SignerInfo *si;
	X509_NAME *iss = NULL;
	ASN1_INTEGER *ser = NULL;
	int idx = -1;

	snprintf(name, cap, "?");
	if (!cms || !(sis = CMS_get0_SignerInfos(cms)) ||
	    sk_CMS_SignerInfo_num(sis) != 1) {
		CMS_ContentInfo_free(cms);
		kj_err_ssl("%s: not a CMS signature with exactly one signer "
			   "(openssl cms -sign -binary -outform DER)", path);
		return -2;
	}
	si = sk_CMS_SignerInfo_value(sis, 0);
	for (unsigned i = 0; i < s->n && idx < 0; i++)
		if (CMS_SignerInfo_cert_cmp(si, s->cert[i]) == 0)
			idx = (int)i;
	if (idx < 0 &&
	    CMS_SignerInfo_get0_signer_id(si, NULL, &iss, &ser) == 1 && iss) {
		char in[200];
		BIGNUM *bn = ASN1_INTEGER_to_BN(ser, NULL);
		char *hex = bn ? BN_bn2hex(bn) : NULL;

		X509_NAME_oneline(iss, in, sizeof(in));
		snprintf(name, cap, "issuer %s serial %s", in,
			 hex ? hex : "?");
		OPENSSL_free(hex);
		BN_free(bn);
	}
	CMS_ContentInfo_free(cms);
	return idx;
}

static int one_sig(const struct kj_officers *s, const uint8_t *data,
		   size_t len, const char *path, int *idx)
{
	uint8_t *sig = NULL;
	size_t sl;
	char name[400];
	int rc;

	KJ_TRY(kj_read_file(path, 1 << 20, &sig, &sl));
	*idx = find_signer(s, sig, sl, path, name, sizeof(name));
	if (*idx == -2) {
		rc = -EBADMSG;
	} else if (*idx < 0) {
		kj_err("%s: signed by an unknown officer (%s): not one of the "
		       "%u enrolled officers", path, name, s->n);
		rc = -EPERM;
	} else {
		rc = kj_cms_verify_detached(data, len, sig, sl,
					    s->cert[*idx], path);
	}
	free(sig);
	return rc;
}

int kj_officers_quorum(const struct kj_officers *s, const uint8_t *data,
		       size_t len, const char *what, const char *const *sigs,
		       unsigned nsig, unsigned *who)
{
	for (unsigned i = 0; i < nsig; i++) {
		int idx;

		KJ_TRY(one_sig(s, data, len, sigs[i], &idx));
		for (unsigned j = 0; j < i; j++)
			if (who[j] == (unsigned)idx) {
				kj_err("%s: officer %s signed twice (also %s): "
				       "each of the %u signatures must come "
				       "from a different officer", sigs[i],
				       s->subject[idx], sigs[j], s->threshold);
				return -EPERM;
			}
		who[i] = (unsigned)idx;
	}
	if (nsig < s->threshold) {
		kj_err("%s: too few signatures: %u valid, the officers' "
		       "threshold is %u of %u", what, nsig, s->threshold,
		       s->n);
		return -EPERM;
	}
	return 0;
}
