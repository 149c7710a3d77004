// SPDX-License-Identifier: Apache-2.0
/*
 * Applying a quorum request (request.h): the checks in the order that
 * refuses cheaply and says the most useful thing first (which appliance,
 * applied before, then the signatures), then the act, then the approval
 * made durable in the journal.  The acts only write files in the state
 * directory, so an act whose journal record then failed can be applied
 * again with the same signatures and comes out the same.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "request.h"
#include "attest/checkpoint.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "journal/journal.h"
#include "journal/record.h"
#include "ceremony.h"
#include "ceremony_int.h"
#include "officers.h"

struct apply {
	const char *state, *path;
	json_t *req;
	const char *kind;
	char sha[65];
	char what[512];
};

static const char *str(const struct apply *a, const char *key)
{
	const json_t *v = kj_json_get(a->req, a->path, "", key, JSON_STRING);

	return v ? json_string_value(v) : NULL;
}

/* customers/<name>/release.pem, or <dir>/<name>.pem for a CA. */
static int write_cert(struct apply *a, const char *dir, bool customer)
{
	char rel[512], path[PATH_MAX];
	const char *name = str(a, "name"), *pem = str(a, "cert");

	if (!name || !pem)
		return -EINVAL;
	KJ_TRY(kj_cer_check_name(name, a->path));
	if (customer)
		snprintf(rel, sizeof(rel), "%s/%s", dir, name);
	else
		snprintf(rel, sizeof(rel), "%s", dir);
	KJ_TRY(kj_cer_path(path, a->state, rel));
	KJ_TRY(kj_mkdir_p(path, 0755));
	snprintf(rel, sizeof(rel), customer ? "%s/%s/release.pem" :
		 "%s/%s.pem", dir, name);
	KJ_TRY(kj_cer_path(path, a->state, rel));
	KJ_TRY(kj_write_file_atomic(path, pem, strlen(pem), 0644));
	snprintf(a->what, sizeof(a->what), "%s %s: %.300s", a->kind, name,
		 rel);
	return 0;
}

static int set_officers(struct apply *a)
{
	struct kj_officers set;
	const char *pem = str(a, "officers");
	uint64_t m;
	int rc;

	if (!pem)
		return -EINVAL;
	KJ_TRY(kj_json_u64(a->req, a->path, "", "threshold", 2,
			   KJ_OFFICERS_MAX, &m));
	KJ_TRY(kj_officers_from_pem(pem, (unsigned)m, a->path, &set));
	rc = kj_officers_save(a->state, &set);
	snprintf(a->what, sizeof(a->what), "officers: %u of %u", set.threshold,
		 set.n);
	kj_officers_free(&set);
	return rc;
}

static int set_policy(struct apply *a)
{
	const char *name = str(a, "name"), *b64 = str(a, "content"),
		   *sha = str(a, "sha256");
	char rel[PATH_MAX], path[PATH_MAX], hex[65];
	uint8_t *buf, d[32];
	size_t n;
	int rc;

	if (!name || !b64 || !sha)
		return -EINVAL;
	KJ_TRY(kj_cer_check_name(name, a->path));
	if (kj_cer_unb64(b64, &buf, &n) < 0) {
		kj_err("%s: field \"content\": not base64", a->path);
		return -EINVAL;
	}
	kj_sha256(buf, n, d);
	kj_hex_encode(d, 32, hex);
	if (strcmp(hex, sha)) {
		kj_err("%s: field \"content\" does not hash to \"sha256\"",
		       a->path);
		free(buf);
		return -EBADMSG;
	}
	snprintf(rel, sizeof(rel), "policy/%s", name);
	rc = kj_cer_path(path, a->state, "policy");
	if (rc >= 0)
		rc = kj_mkdir_p(path, 0755);
	if (rc >= 0)
		rc = kj_cer_path(path, a->state, rel);
	if (rc >= 0)
		rc = kj_write_file_atomic(path, buf, n, 0644);
	free(buf);
	snprintf(a->what, sizeof(a->what), "policy %s (sha256 %s)", name, sha);
	return rc;
}

static int act(struct apply *a, struct kj_journal *j,
	       const struct kj_officers *set, const char *const *sigs,
	       const unsigned *who, unsigned nsig)
{
	if (!strcmp(a->kind, "init")) {
		snprintf(a->what, sizeof(a->what), "init: %u of %u officers",
			 set->threshold, set->n);
		return kj_ceremony_sign_transcript(a->state, set, sigs, who,
						   nsig);
	}
	if (!strcmp(a->kind, "enrol-customer"))
		return write_cert(a, "customers", true);
	if (!strcmp(a->kind, "enrol-site-ca"))
		return write_cert(a, "site-ca", false);
	if (!strcmp(a->kind, "enrol-issuing-ca"))
		return write_cert(a, "issuing-ca", false);
	if (!strcmp(a->kind, "set-officers"))
		return set_officers(a);
	if (!strcmp(a->kind, "set-policy"))
		return set_policy(a);
	if (!strcmp(a->kind, "reset-journal")) {
		snprintf(a->what, sizeof(a->what), "reset-journal: %s",
			 str(a, "reason") ? str(a, "reason") : "?");
		KJ_TRY(kj_journal_meta_set(j, KJ_CEREMONY_META_RESET_JOURNAL,
					   a->sha, 64));
		/* The checkpointer's own record of the approval: it refuses a
		 * journal that has checkpoints already (docs/CEREMONY.md). */
		return kj_checkpoint_allow_fresh(j, a->sha);
	}
	if (!strcmp(a->kind, "restore")) {
		kj_err("%s: a restore request is applied by `kinject ceremony "
		       "restore --request %s SIG...' with the officers' shares",
		       a->path, a->path);
		return -EINVAL;
	}
	kj_err("%s: field \"kind\": unknown request kind `%s'", a->path,
	       a->kind);
	return -EINVAL;
}

static int load_approvals(struct kj_journal *j, json_t **out)
{
	uint8_t *buf = NULL;
	size_t len;
	json_error_t e;
	int rc = kj_journal_meta_get(j, KJ_CEREMONY_META_APPROVALS, &buf,
				     &len);

	if (rc == -ENOENT) {
		*out = json_array();
		return *out ? 0 : -ENOMEM;
	}
	if (rc < 0)
		return rc;
	*out = json_loadb((char *)buf, len, 0, &e);
	free(buf);
	if (!*out || !json_is_array(*out)) {
		kj_err("journal: meta %s: not a JSON array (%s)",
		       KJ_CEREMONY_META_APPROVALS, e.text);
		json_decref(*out);
		return -EBADMSG;
	}
	return 0;
}

static int not_applied(const struct apply *a, const json_t *list)
{
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v) {
		const char *s = json_string_value(
			json_object_get(v, "request_sha256"));

		if (s && !strcmp(s, a->sha)) {
			kj_err("%s: request already applied (%s, at %s): each "
			       "request is applied at most once; make a new "
			       "one", a->path, a->kind, json_string_value(
				       json_object_get(v, "time")));
			return -EPERM;
		}
	}
	return 0;
}

int kj_request_record(struct kj_journal *j, const char *kind,
		      const char *sha, const char *what,
		      const struct kj_officers *set, const unsigned *who,
		      unsigned nsig)
{
	char t[KJ_RECORD_TIME_LEN + 1], *s;
	json_t *by = json_array(), *e, *list = NULL;
	int rc;

	for (unsigned i = 0; by && i < nsig; i++)
		json_array_append_new(by, json_pack("{s:s,s:s}", "sha256",
						    set->fp[who[i]], "subject",
						    set->subject[who[i]]));
	KJ_TRY(kj_record_format_time(kj_record_now_ms(), t));
	KJ_TRY(load_approvals(j, &list));
	e = json_pack("{s:s,s:s,s:s,s:o,s:s}", "time", t, "kind", kind,
		      "request_sha256", sha, "officers", by, "what", what);
	if (!e || json_array_append_new(list, e)) {
		json_decref(list);
		return -ENOMEM;
	}
	s = json_dumps(list, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(list);
	if (!s)
		return -ENOMEM;
	rc = kj_journal_meta_set(j, KJ_CEREMONY_META_APPROVALS, s, strlen(s));
	free(s);
	if (rc >= 0)
		rc = kj_journal_commit(j);
	return rc;
}

static int officers_for(struct apply *a, struct kj_officers *set)
{
	struct kj_officers saved;
	const char *pem;
	uint64_t m;
	int rc;

	KJ_TRY(kj_officers_load(a->state, &saved));
	if (strcmp(a->kind, "init")) {
		*set = saved;
		return 0;
	}
	/* init: the set the request names is the one init saved. */
	pem = str(a, "officers");
	rc = pem ? kj_json_u64(a->req, a->path, "", "threshold", 2,
			       KJ_OFFICERS_MAX, &m) : -EINVAL;
	if (rc >= 0)
		rc = kj_officers_from_pem(pem, (unsigned)m, a->path, set);
	if (rc >= 0 && (set->n != saved.n || set->threshold !=
			saved.threshold || memcmp(set->fp, saved.fp,
						  sizeof(saved.fp)))) {
		kj_err("%s: officer set differs from %s/%s", a->path,
		       a->state, KJ_OFFICERS_PEM);
		kj_officers_free(set);
		rc = -EPERM;
	}
	kj_officers_free(&saved);
	return rc;
}

static int parse(struct apply *a, uint8_t **buf, size_t *len)
{
	const json_t *k;
	char id[65];

	KJ_TRY(kj_read_file(a->path, 8 << 20, buf, len));
	{
		uint8_t d[32];

		kj_sha256(*buf, *len, d);
		kj_hex_encode(d, 32, a->sha);
	}
	KJ_TRY(kj_json_load(*buf, *len, a->path, &a->req));
	KJ_TRY(kj_json_version(a->req, a->path, "kinject_request", 1));
	k = kj_json_get(a->req, a->path, "", "kind", JSON_STRING);
	if (!k || !str(a, "appliance"))
		return -EINVAL;
	a->kind = json_string_value(k);
	KJ_TRY(kj_cer_appliance_id(a->state, id));
	if (strcmp(id, str(a, "appliance"))) {
		kj_err("%s: request made for appliance %s, this one (%s/"
		       "transport.pem) is %s", a->path, str(a, "appliance"),
		       a->state, id);
		return -EPERM;
	}
	return 0;
}

int kj_request_apply(const char *state, const char *path,
		     const char *const *sigs, unsigned nsig)
{
	struct apply a = { .state = state, .path = path };
	struct kj_officers set = { 0 };
	struct kj_journal *j = NULL;
	json_t *list = NULL;
	unsigned who[KJ_OFFICERS_MAX * 2];
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	if (nsig > KJ_ARRAY_SIZE(who)) {
		kj_err("%s: %u signatures given, at most %zu", path, nsig,
		       KJ_ARRAY_SIZE(who));
		return -EINVAL;
	}
	KJ_TRY_GOTO(rc, parse(&a, &buf, &len), out);
	KJ_TRY_GOTO(rc, officers_for(&a, &set), out);
	KJ_TRY_GOTO(rc, kj_journal_open(state, 0, &j), out);
	KJ_TRY_GOTO(rc, load_approvals(j, &list), out);
	KJ_TRY_GOTO(rc, not_applied(&a, list), out);
	KJ_TRY_GOTO(rc, kj_officers_quorum(&set, buf, len, path, sigs, nsig,
					   who), out);
	KJ_TRY_GOTO(rc, act(&a, j, &set, sigs, who, nsig), out);
	KJ_TRY_GOTO(rc, kj_request_record(j, a.kind, a.sha, a.what, &set, who,
					  nsig), out);
	printf("applied %s (%s), approved by", path, a.what);
	for (unsigned i = 0; i < nsig; i++)
		printf("%s %s", i ? "," : "", set.subject[who[i]]);
	printf("\n");
out:
	kj_journal_close(j);
	json_decref(list);
	json_decref(a.req);
	kj_officers_free(&set);
	free(buf);
	return rc;
}

int kj_ceremony_fresh_journal_approved(struct kj_journal *j)
{
	uint8_t *v = NULL;
	size_t len;
	int rc = kj_journal_meta_get(j, KJ_CEREMONY_META_RESET_JOURNAL, &v,
				     &len);

	free(v);
	if (rc == -ENOENT)
		return 0;
	return rc < 0 ? rc : 1;
}

int kj_request_approvals(const char *state, json_t **out)
{
	struct kj_journal *j = NULL;
	char path[PATH_MAX];
	int rc;

	KJ_TRY(kj_cer_path(path, state, KJ_JOURNAL_FILE));
	if (access(path, F_OK) != 0) {
		*out = json_array();
		return *out ? 0 : -ENOMEM;
	}
	KJ_TRY(kj_journal_open(state, KJ_JOURNAL_RDONLY, &j));
	rc = load_approvals(j, out);
	kj_journal_close(j);
	return rc;
}
