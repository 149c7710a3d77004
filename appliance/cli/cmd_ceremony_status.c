// SPDX-License-Identifier: Apache-2.0
/*
 * kinject ceremony status: what the officers have set up, read from the
 * state directory and the journal (read-only): officers and threshold,
 * customers, site and issuing CAs, the keys with their fingerprints, the
 * last approvals.  One JSON object is built and either printed (--json) or
 * rendered as text, so the two never disagree.
 */
#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/x509.h>

#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "ceremony/ceremony.h"
#include "ceremony/officers.h"
#include "ceremony/request.h"
#include "inputs/cms.h"
#include "commands.h"

#define LAST_APPROVALS 10

static json_t *cert_info(const char *path, const char *name)
{
	char fp[65], subj[256];
	X509 *x;

	if (access(path, R_OK) != 0)
		return NULL;
	if (kj_cert_load(path, &x) < 0)
		return NULL;
	X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
	if (kj_cert_fingerprint(x, fp) < 0)
		fp[0] = '\0';
	X509_free(x);
	return json_pack("{s:s,s:s,s:s,s:s}", "name", name, "subject", subj,
			 "sha256", fp, "file", path);
}

/* dir/<name>/file (customers) or dir/<name>.pem (CAs), sorted by name. */
static json_t *list(const char *state, const char *dir, const char *file)
{
	char path[PATH_MAX * 2], base[PATH_MAX];
	struct dirent **ents = NULL;
	json_t *arr = json_array();
	int n;

	snprintf(base, sizeof(base), "%s/%s", state, dir);
	n = scandir(base, &ents, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		char name[256];
		const char *d = ents[i]->d_name;
		size_t l = strlen(d);
		json_t *c = NULL;

		if (d[0] == '.') {
			free(ents[i]);
			continue;
		}
		snprintf(name, sizeof(name), "%s", d);
		if (file) {
			snprintf(path, sizeof(path), "%s/%s/%s", base, d, file);
			c = cert_info(path, name);
		} else if (l > 4 && !strcmp(d + l - 4, ".pem")) {
			name[l - 4] = '\0';
			snprintf(path, sizeof(path), "%s/%s", base, d);
			c = cert_info(path, name);
		}
		if (c)
			json_array_append_new(arr, c);
		free(ents[i]);
	}
	free(ents);
	return arr;
}

static json_t *keys(const char *state)
{
	char path[PATH_MAX + 16];
	uint8_t *buf = NULL;
	size_t len;
	json_t *k = json_object(), *t;

	snprintf(path, sizeof(path), "%s/transport.pem", state);
	t = cert_info(path, "transport");
	json_object_set_new(k, "transport", t ? t : json_null());
	snprintf(path, sizeof(path), "%s/tls.pem", state);
	t = cert_info(path, "tls");
	json_object_set_new(k, "tls", t ? t : json_null());
	snprintf(path, sizeof(path), "%s/ek.pem", state);
	t = cert_info(path, "ek");
	json_object_set_new(k, "ek_certificate", t ? t : json_null());
	snprintf(path, sizeof(path), "%s/ak.name", state);
	if (access(path, R_OK) == 0 &&
	    kj_read_file(path, 4096, &buf, &len) == 0) {
		buf[strcspn((char *)buf, "\n")] = '\0';
		json_object_set_new(k, "ak_name", json_string((char *)buf));
	} else {
		json_object_set_new(k, "ak_name", json_null());
	}
	free(buf);
	return k;
}

static int build(const char *state, json_t **out)
{
	struct kj_officers set;
	json_t *s, *offs = json_array(), *appr = NULL, *last;
	const char *init;
	size_t n;

	KJ_TRY(kj_officers_load(state, &set));
	for (unsigned i = 0; i < set.n; i++)
		json_array_append_new(offs, json_pack("{s:s,s:s}", "sha256",
			set.fp[i], "subject", set.subject[i]));
	s = json_pack("{s:i,s:i,s:o}", "threshold", set.threshold,
		      "officer_count", set.n, "officers", offs);
	kj_officers_free(&set);
	if (kj_request_approvals(state, &appr) < 0) {
		json_decref(s);
		return -EIO;
	}
	n = json_array_size(appr);
	last = json_array();
	for (size_t i = n > LAST_APPROVALS ? n - LAST_APPROVALS : 0; i < n;
	     i++)
		json_array_append(last, json_array_get(appr, i));
	json_decref(appr);
	init = kj_ceremony_check_initialised(state, "status") == 0 ?
		       "initialised" : "pending";
	json_object_set_new(s, "state", json_string(init));
	json_object_set_new(s, "customers", list(state, "customers",
						 "release.pem"));
	json_object_set_new(s, "site_cas", list(state, "site-ca", NULL));
	json_object_set_new(s, "issuing_cas", list(state, "issuing-ca", NULL));
	json_object_set_new(s, "keys", keys(state));
	json_object_set_new(s, "approvals", last);
	json_object_set_new(s, "approvals_total", json_integer((json_int_t)n));
	*out = s;
	return 0;
}

static void print_certs(const char *title, const json_t *arr)
{
	size_t i;
	json_t *v;

	printf("%s: %zu\n", title, json_array_size(arr));
	json_array_foreach(arr, i, v)
		printf("  %-16s %s  sha256 %s\n",
		       json_string_value(json_object_get(v, "name")),
		       json_string_value(json_object_get(v, "subject")),
		       json_string_value(json_object_get(v, "sha256")));
}

static void print_text(const json_t *s)
{
	const json_t *k = json_object_get(s, "keys"), *t;
	size_t i;
	json_t *v;

	printf("appliance: %s\n", json_string_value(json_object_get(s,
								    "state")));
	printf("officers: %lld of %lld\n",
	       json_integer_value(json_object_get(s, "threshold")),
	       json_integer_value(json_object_get(s, "officer_count")));
	json_array_foreach(json_object_get(s, "officers"), i, v)
		printf("  %s  sha256 %s\n",
		       json_string_value(json_object_get(v, "subject")),
		       json_string_value(json_object_get(v, "sha256")));
	print_certs("customers", json_object_get(s, "customers"));
	print_certs("site CAs", json_object_get(s, "site_cas"));
	print_certs("issuing CAs", json_object_get(s, "issuing_cas"));
	t = json_object_get(k, "transport");
	printf("transport key: %s\n", json_is_object(t) ? json_string_value(
		json_object_get(t, "sha256")) : "none");
	t = json_object_get(k, "tls");
	printf("TLS key (tls.pem): %s\n", json_is_object(t) ?
	       json_string_value(json_object_get(t, "sha256")) : "none");
	printf("AK name: %s\n", json_is_string(json_object_get(k, "ak_name")) ?
	       json_string_value(json_object_get(k, "ak_name")) : "none");
	t = json_object_get(k, "ek_certificate");
	printf("EK certificate: %s\n", json_is_object(t) ? json_string_value(
		json_object_get(t, "subject")) : "none");
	printf("last approvals (%lld in all):\n",
	       json_integer_value(json_object_get(s, "approvals_total")));
	json_array_foreach(json_object_get(s, "approvals"), i, v) {
		size_t j;
		json_t *o;

		printf("  %s  %s  by",
		       json_string_value(json_object_get(v, "time")),
		       json_string_value(json_object_get(v, "what")));
		json_array_foreach(json_object_get(v, "officers"), j, o)
			printf("%s %s", j ? "," : "", json_string_value(
				json_object_get(o, "subject")));
		printf("\n");
	}
}

int cmd_ceremony_status(const char *state, bool json)
{
	json_t *s;
	char *txt;

	if (build(state, &s) < 0)
		return KJ_EXIT_ERROR;
	if (json) {
		txt = json_dumps(s, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (txt)
			puts(txt);
		free(txt);
	} else {
		print_text(s);
	}
	json_decref(s);
	return KJ_EXIT_OK;
}
