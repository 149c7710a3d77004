// SPDX-License-Identifier: Apache-2.0
/*
 * Building quorum requests (request.h).  The request is made on the
 * appliance and carried to each officer, who signs its exact bytes with
 * openssl cms: so everything an officer approves is inside it (the
 * certificate being enrolled, the officer set, the policy's content), never
 * a reference to a file that could change between signing and applying.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "request.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "inputs/cms.h"
#include "journal/record.h"
#include "ceremony_int.h"
#include "officers.h"

int kj_cer_path(char *buf, const char *state, const char *rel)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", state, rel);

	if (n < 0 || n >= PATH_MAX) {
		kj_err("--state %s: path too long", state);
		return -ENAMETOOLONG;
	}
	return 0;
}

int kj_cer_appliance_id(const char *state, char hex[65])
{
	char path[PATH_MAX];
	X509 *x;
	int rc;

	KJ_TRY(kj_cer_path(path, state, "transport.pem"));
	if (access(path, R_OK) != 0) {
		kj_err("%s: missing: the appliance is not initialised (kinject "
		       "ceremony init)", path);
		return -ENOENT;
	}
	KJ_TRY(kj_cert_load(path, &x));
	rc = kj_cert_fingerprint(x, hex);
	X509_free(x);
	return rc;
}

int kj_cer_cert_pem(X509 *x, char **pem)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	*pem = NULL;
	if (!b)
		return -ENOMEM;
	if (PEM_write_bio_X509(b, x) == 1) {
		n = BIO_get_mem_data(b, &p);
		*pem = strndup(p, (size_t)n);
	}
	BIO_free(b);
	return *pem ? 0 : kj_err_ssl("certificate: cannot write PEM");
}

json_t *kj_cer_b64(const uint8_t *in, size_t len)
{
	char *out = len < INT_MAX / 2 ? malloc(4 * ((len + 2) / 3) + 1) : NULL;
	json_t *j;

	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	j = json_string(out);
	free(out);
	return j;
}

json_t *kj_cer_hex(const uint8_t *in, size_t len)
{
	char *out = malloc(2 * len + 1);
	json_t *j;

	if (!out)
		return NULL;
	kj_hex_encode(in, len, out);
	j = json_string(out);
	free(out);
	return j;
}

int kj_cer_check_name(const char *name, const char *what)
{
	if (!name || !*name) {
		kj_err("%s: missing", what);
		return -EINVAL;
	}
	KJ_TRY(kj_json_check_str(name, strlen(name), what, "name",
				 KJ_STR_NAME, 64));
	if (strchr(name, '/') || name[0] == '.') {
		kj_err("%s: `%s' cannot name a directory (no '/', no leading "
		       "'.')", what, name);
		return -EINVAL;
	}
	return 0;
}

int kj_cer_unb64(const char *in, uint8_t **out, size_t *len)
{
	size_t n = strlen(in);
	int got;

	*out = malloc(n / 4 * 3 + 3);
	if (!*out)
		return -ENOMEM;
	got = n % 4 ? -1 : EVP_DecodeBlock(*out, (const unsigned char *)in,
					   (int)n);
	if (got < 0) {
		free(*out);
		*out = NULL;
		return -EINVAL;
	}
	*len = (size_t)got - (n && in[n - 1] == '=') -
	       (n > 1 && in[n - 2] == '=');
	return 0;
}

/* The common fields, for the appliance whose transport.pem hashes to id. */
static int request_for(const char *id, const char *kind, json_t **out)
{
	char t[KJ_RECORD_TIME_LEN + 1];
	uint8_t nonce[16];

	if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce)) {
		kj_err("getrandom: %s", strerror(errno));
		return -EIO;
	}
	KJ_TRY(kj_record_format_time(kj_record_now_ms(), t));
	*out = json_pack("{s:i,s:s,s:s,s:o,s:s}", "kinject_request", 1,
			 "kind", kind, "appliance", id, "nonce",
			 kj_cer_hex(nonce, sizeof(nonce)), "time", t);
	return *out ? 0 : -ENOMEM;
}

int kj_request_new(const char *state, const char *kind, json_t **out)
{
	char id[65];

	KJ_TRY(kj_cer_appliance_id(state, id));
	return request_for(id, kind, out);
}

static int add_cert(json_t *r, const struct kj_request_args *a)
{
	char *pem;
	X509 *x;
	int rc;

	KJ_TRY(kj_cer_check_name(a->name, "--name"));
	if (!a->cert) {
		kj_err("--cert: missing (the certificate to enrol)");
		return -EINVAL;
	}
	KJ_TRY(kj_cert_load(a->cert, &x));
	rc = kj_cer_cert_pem(x, &pem);
	X509_free(x);
	if (rc < 0)
		return rc;
	json_object_set_new(r, "name", json_string(a->name));
	json_object_set_new(r, "cert", json_string(pem));
	free(pem);
	return 0;
}

static int add_officers(json_t *r, const struct kj_request_args *a)
{
	struct kj_officers set;
	char *pem;
	int rc;

	KJ_TRY(kj_officers_from_files(a->officers, a->n_officers,
				      a->threshold, &set));
	rc = kj_officers_pem(&set, &pem);
	kj_officers_free(&set);
	if (rc < 0)
		return rc;
	json_object_set_new(r, "officers", json_string(pem));
	json_object_set_new(r, "threshold", json_integer(a->threshold));
	free(pem);
	return 0;
}

static int add_policy(json_t *r, const struct kj_request_args *a)
{
	uint8_t *buf, d[32];
	size_t len;

	KJ_TRY(kj_cer_check_name(a->name, "--name"));
	if (!a->policy) {
		kj_err("--policy: missing (the policy file to approve)");
		return -EINVAL;
	}
	KJ_TRY(kj_read_file(a->policy, 1 << 20, &buf, &len));
	kj_sha256(buf, len, d);
	json_object_set_new(r, "name", json_string(a->name));
	json_object_set_new(r, "content", kj_cer_b64(buf, len));
	json_object_set_new(r, "sha256", kj_cer_hex(d, 32));
	free(buf);
	return 0;
}

/* restore: for the appliance the backup was made of (the new one has no
 * transport key yet), carrying the manifest's exact text. */
static int backup_request(const struct kj_request_args *a, json_t **out)
{
	char path[PATH_MAX];
	const char *id;
	uint8_t *buf;
	size_t len;
	json_t *m = NULL;
	int rc;

	if (!a->backup) {
		kj_err("--backup: missing (the backup directory)");
		return -EINVAL;
	}
	KJ_TRY(kj_cer_path(path, a->backup, "manifest.json"));
	KJ_TRY(kj_read_file(path, 1 << 20, &buf, &len));
	rc = kj_json_load(buf, len, path, &m);
	id = rc < 0 ? NULL : json_string_value(json_object_get(m,
							       "appliance"));
	if (rc >= 0 && !id) {
		kj_err("%s: field \"appliance\": missing", path);
		rc = -EINVAL;
	}
	if (rc >= 0)
		rc = request_for(id, "restore", out);
	if (rc >= 0)
		json_object_set_new(*out, "backup", json_stringn((char *)buf,
								  len));
	json_decref(m);
	free(buf);
	return rc;
}

int kj_request_build(const char *state, const char *kind,
		     const struct kj_request_args *a, json_t **out)
{
	json_t *r = NULL;
	int rc;

	if (strcmp(kind, "enrol-customer") && strcmp(kind, "enrol-site-ca") &&
	    strcmp(kind, "enrol-issuing-ca") && strcmp(kind, "set-officers") &&
	    strcmp(kind, "set-policy") && strcmp(kind, "reset-journal") &&
	    strcmp(kind, "restore")) {
		kj_err("request: unknown kind `%s' (enrol-customer, "
		       "enrol-site-ca, enrol-issuing-ca, set-officers, "
		       "set-policy, reset-journal, restore)", kind);
		return -EINVAL;
	}
	if (!strcmp(kind, "restore"))
		return backup_request(a, out);
	KJ_TRY(kj_request_new(state, kind, &r));
	if (!strncmp(kind, "enrol-", 6))
		rc = add_cert(r, a);
	else if (!strcmp(kind, "set-officers"))
		rc = add_officers(r, a);
	else if (!strcmp(kind, "set-policy"))
		rc = add_policy(r, a);
	else if (!a->reason || !*a->reason) {
		kj_err("--reason: missing (why a fresh journal is needed)");
		rc = -EINVAL;
	} else {
		rc = kj_json_check_str(a->reason, strlen(a->reason), "--reason",
				       "reason", KJ_STR_TEXT, 1000);
		json_object_set_new(r, "reason", json_string(a->reason));
	}
	if (rc < 0) {
		json_decref(r);
		return rc;
	}
	*out = r;
	return 0;
}

int kj_request_bytes(const json_t *req, char **out)
{
	char *s = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
	size_t n;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	n = strlen(s);
	*out = realloc(s, n + 2);
	if (!*out) {
		free(s);
		return -ENOMEM;
	}
	memcpy(*out + n, "\n", 2);
	return 0;
}

int kj_request_write(const json_t *req, const char *path)
{
	char *b;
	int rc;

	KJ_TRY(kj_request_bytes(req, &b));
	rc = kj_write_file_atomic(path, b, strlen(b), 0644);
	free(b);
	return rc;
}
