// SPDX-License-Identifier: Apache-2.0
/*
 * The strict evidence bundle parser (EVIDENCE.md §5): exactly the keys of
 * the format, every size bounded, hex lowercase of exact length, base64
 * canonical, indexes in range.  Structure only: verify.c does the
 * cryptography and the §6 checks.  Input is hostile (fuzz_evidence.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "journal/record.h"
#include "evidence.h"
#include "evidence_int.h"

#define PATH_LEN 160

struct pc {
	const char *file;
};

static int bad(const struct pc *p, const char *path, const char *what)
{
	kj_err("%s: field \"%s\": %s", p->file, path, what);
	return -EBADMSG;
}

static const json_t *member(const struct pc *p, const json_t *obj,
			    const char *parent, const char *key, json_type t)
{
	return kj_json_get(obj, p->file, parent, key, t);
}

static int u64_of(const struct pc *p, const json_t *obj, const char *parent,
		  const char *key, uint64_t max, uint64_t *out)
{
	return kj_json_u64(obj, p->file, parent, key, 0, max, out) < 0 ?
		       -EBADMSG : 0;
}

static int hex_value(const struct pc *p, const json_t *v, const char *path,
		     uint8_t *out, size_t n)
{
	const char *s;

	if (!json_is_string(v))
		return bad(p, path, "expected a hex string");
	s = json_string_value(v);
	if (json_string_length(v) != 2 * n)
		return bad(p, path, n == 32 ? "expected 64 hex digits" :
					      "hex string of the wrong length");
	for (size_t i = 0; i < 2 * n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return bad(p, path, "expected lowercase hex digits");
	return kj_hex_decode(s, out, n) < 0 ? bad(p, path, "bad hex") : 0;
}

static int hex_of(const struct pc *p, const json_t *obj, const char *parent,
		  const char *key, uint8_t *out, size_t n)
{
	const json_t *v = member(p, obj, parent, key, JSON_STRING);
	char path[PATH_LEN];

	if (!v)
		return -EBADMSG;
	return hex_value(p, v, kj_json_path(path, sizeof(path), parent, key),
			 out, n);
}

static int b64_of(const struct pc *p, const json_t *obj, const char *parent,
		  const char *key, size_t max, uint8_t **out, size_t *len)
{
	const json_t *v = member(p, obj, parent, key, JSON_STRING);
	char path[PATH_LEN];

	if (!v)
		return -EBADMSG;
	kj_json_path(path, sizeof(path), parent, key);
	if (json_string_length(v) > 4 * ((max + 2) / 3))
		return bad(p, path, "too long");
	if (kj_base64_decode(json_string_value(v), json_string_length(v), out,
			     len) < 0)
		return bad(p, path, "not canonical base64");
	if (!*len) {
		free(*out);
		*out = NULL;
		return bad(p, path, "empty");
	}
	return 0;
}

/* A string (no NUL, at most max bytes) or null (when nullable). */
static int text_of(const struct pc *p, const json_t *obj, const char *parent,
		   const char *key, size_t max, bool nullable, char **out)
{
	const json_t *v = json_object_get(obj, key);
	char path[PATH_LEN];

	kj_json_path(path, sizeof(path), parent, key);
	*out = NULL;
	if (!v)
		return bad(p, path, "missing");
	if (nullable && json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad(p, path, nullable ? "expected a string or null" :
					       "expected a string");
	if (json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return bad(p, path, "too long or contains NUL");
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

static int proof_of(const struct pc *p, const json_t *obj, const char *parent,
		    const char *key, uint8_t (**out)[32], size_t *n)
{
	const json_t *a = member(p, obj, parent, key, JSON_ARRAY);
	char path[PATH_LEN], ep[PATH_LEN + 24];
	size_t i;

	*out = NULL;
	*n = 0;
	if (!a)
		return -EBADMSG;
	kj_json_path(path, sizeof(path), parent, key);
	if (json_array_size(a) > KJ_MTREE_MAX_PROOF)
		return bad(p, path, "proof longer than any tree allows");
	if (!json_array_size(a))
		return 0;
	*out = calloc(json_array_size(a), 32);
	if (!*out)
		return -ENOMEM;
	for (i = 0; i < json_array_size(a); i++) {
		snprintf(ep, sizeof(ep), "%s[%zu]", path, i);
		KJ_TRY(hex_value(p, json_array_get(a, i), ep, (*out)[i], 32));
		*n = i + 1;
	}
	return 0;
}

static int parse_appliance(const struct pc *p, const json_t *root,
			   struct kj_evidence *ev)
{
	static const char *const keys[] = { "ak_public_pem", "ak_public",
		"ak_name", "ek_certificate_pem", "transport_cert_pem",
		"secret_memory", "code_measured_by", "ceremony_transcript",
		"tpm_orderly_count",
		NULL };
	const json_t *a = member(p, root, "", "appliance", JSON_OBJECT);

	if (!a)
		return -EBADMSG;
	if (kj_json_only_keys(a, p->file, "appliance", keys) < 0)
		return -EBADMSG;
	KJ_TRY(text_of(p, a, "appliance", "ak_public_pem", KJ_EVIDENCE_PEM_MAX,
		       false, &ev->ak_public_pem));
	KJ_TRY(b64_of(p, a, "appliance", "ak_public", KJ_TPM_PUB_MAX,
		      &ev->ak_public, &ev->ak_public_len));
	KJ_TRY(hex_of(p, a, "appliance", "ak_name", ev->ak_name,
		      KJ_TPM_NAME_LEN));
	ev->ak_name_len = KJ_TPM_NAME_LEN;
	KJ_TRY(text_of(p, a, "appliance", "ek_certificate_pem",
		       KJ_EVIDENCE_PEM_MAX, true, &ev->ek_cert_pem));
	KJ_TRY(text_of(p, a, "appliance", "transport_cert_pem",
		       KJ_EVIDENCE_PEM_MAX, true, &ev->transport_cert_pem));
	KJ_TRY(text_of(p, a, "appliance", "secret_memory", 32, true,
		       &ev->secret_memory));
	KJ_TRY(text_of(p, a, "appliance", "ceremony_transcript",
		       KJ_EVIDENCE_TRANSCRIPT_MAX, true,
		       &ev->ceremony_transcript));
	if (ev->secret_memory && strcmp(ev->secret_memory, "memfd_secret") &&
	    strcmp(ev->secret_memory, "kmod") &&
	    strcmp(ev->secret_memory, "mlock"))
		return bad(p, "appliance.secret_memory",
			   "expected memfd_secret, kmod or mlock");
	KJ_TRY(text_of(p, a, "appliance", "code_measured_by", 8, true,
		       &ev->code_measured_by));
	if (ev->code_measured_by && strcmp(ev->code_measured_by, "boot") &&
	    strcmp(ev->code_measured_by, "self"))
		return bad(p, "appliance.code_measured_by",
			   "expected boot or self");
	return u64_of(p, a, "appliance", "tpm_orderly_count", UINT32_MAX,
		      &ev->tpm_orderly_count);
}

/* A top-level array of at most max elements; *n its size. */
static const json_t *array_of(const struct pc *p, const json_t *root,
			      const char *key, size_t max, size_t *n)
{
	const json_t *a = member(p, root, "", key, JSON_ARRAY);

	if (!a)
		return NULL;
	*n = json_array_size(a);
	if (*n > max) {
		(void)bad(p, key, "too many elements");
		return NULL;
	}
	return a;
}

static int parse_event(const struct pc *p, const json_t *o, const char *path,
		       struct kj_event *e)
{
	static const char *const keys[] = { "epoch", "pcr", "name", "digest",
					    "void", NULL };
	const json_t *v;
	uint64_t x;
	char *name;

	if (!json_is_object(o))
		return bad(p, path, "expected an object");
	if (kj_json_only_keys(o, p->file, path, keys) < 0)
		return -EBADMSG;
	KJ_TRY(u64_of(p, o, path, "epoch", UINT32_MAX, &x));
	e->epoch = (uint32_t)x;
	KJ_TRY(u64_of(p, o, path, "pcr", KJ_TPM_PCR_COUNT - 1, &x));
	e->pcr = (uint32_t)x;
	KJ_TRY(text_of(p, o, path, "name", KJ_EVENT_NAME_MAX - 1, false,
		       &name));
	strcpy(e->name, name);
	free(name);
	if (!e->name[0])
		return bad(p, path, "empty name");
	KJ_TRY(hex_of(p, o, path, "digest", e->digest, 32));
	v = json_object_get(o, "void");
	if (v && !json_is_true(v))
		return bad(p, path, "\"void\" may only be true");
	e->is_void = v != NULL;
	return 0;
}

static int parse_events(const struct pc *p, const json_t *root,
			struct kj_evidence *ev)
{
	const json_t *a = array_of(p, root, "event_log", KJ_EVIDENCE_MAX_EVENTS,
				   &ev->n_events);
	char path[PATH_LEN];

	if (!a)
		return -EBADMSG;
	ev->events = calloc(ev->n_events + 1, sizeof(*ev->events));
	if (!ev->events)
		return -ENOMEM;
	for (size_t i = 0; i < ev->n_events; i++) {
		snprintf(path, sizeof(path), "event_log[%zu]", i);
		KJ_TRY(parse_event(p, json_array_get(a, i), path,
				   &ev->events[i]));
	}
	return 0;
}

static int parse_pcrs(const struct pc *p, const json_t *o, const char *path,
		      struct kj_ev_checkpoint *c)
{
	const json_t *pcrs = member(p, o, path, "pcrs", JSON_OBJECT);
	char pp[PATH_LEN + 8], kp[PATH_LEN + 48];
	const char *k;
	json_t *v;

	if (!pcrs)
		return -EBADMSG;
	snprintf(pp, sizeof(pp), "%s.pcrs", path);
	if (!json_object_size(pcrs))
		return bad(p, pp, "no PCR");
	json_object_foreach((json_t *)pcrs, k, v) {
		uint64_t i;

		snprintf(kp, sizeof(kp), "%s.%s", pp, k);
		/* Canonical decimal keys only: "13", never "013" or "+13". */
		if (kj_parse_u64(k, 0, KJ_TPM_PCR_COUNT - 1, kp, &i) < 0 ||
		    (k[0] == '0' && k[1]))
			return bad(p, kp, "not a PCR index 0..23");
		c->pcr_mask |= KJ_PCR_BIT(i);
		KJ_TRY(hex_value(p, v, kp, c->pcrs[i], 32));
	}
	return 0;
}

static int parse_checkpoint(const struct pc *p, const json_t *o,
			    const char *path, struct kj_ev_checkpoint *c)
{
	static const char *const keys[] = { "tree_size", "root", "nv_counter",
		"epoch", "event_log_length", "quote_attest", "quote_signature",
		"pcrs", NULL };
	uint64_t x;

	if (!json_is_object(o))
		return bad(p, path, "expected an object");
	if (kj_json_only_keys(o, p->file, path, keys) < 0)
		return -EBADMSG;
	KJ_TRY(u64_of(p, o, path, "tree_size", INT64_MAX, &c->tree_size));
	KJ_TRY(hex_of(p, o, path, "root", c->root, 32));
	KJ_TRY(u64_of(p, o, path, "nv_counter", INT64_MAX, &c->nv_counter));
	KJ_TRY(u64_of(p, o, path, "epoch", UINT32_MAX, &x));
	c->epoch = (uint32_t)x;
	KJ_TRY(u64_of(p, o, path, "event_log_length", KJ_EVIDENCE_MAX_EVENTS,
		      &c->event_log_length));
	KJ_TRY(b64_of(p, o, path, "quote_attest", KJ_EVIDENCE_ATTEST_MAX,
		      &c->attest, &c->attest_len));
	KJ_TRY(b64_of(p, o, path, "quote_signature", KJ_EVIDENCE_SIG_MAX,
		      &c->sig, &c->sig_len));
	return parse_pcrs(p, o, path, c);
}

static int parse_checkpoints(const struct pc *p, const json_t *root,
			     struct kj_evidence *ev)
{
	const json_t *a = array_of(p, root, "checkpoints",
				   KJ_EVIDENCE_MAX_CHECKPOINTS,
				   &ev->n_checkpoints);
	char path[PATH_LEN];

	if (!a)
		return -EBADMSG;
	if (!ev->n_checkpoints)
		return bad(p, "checkpoints", "no checkpoint");
	ev->checkpoints = calloc(ev->n_checkpoints, sizeof(*ev->checkpoints));
	if (!ev->checkpoints)
		return -ENOMEM;
	for (size_t i = 0; i < ev->n_checkpoints; i++) {
		snprintf(path, sizeof(path), "checkpoints[%zu]", i);
		KJ_TRY(parse_checkpoint(p, json_array_get(a, i), path,
					&ev->checkpoints[i]));
	}
	return 0;
}

static int parse_record(const struct pc *p, const json_t *o, const char *path,
			size_t n_ck, struct kj_ev_record *r)
{
	static const char *const keys[] = { "leaf_index", "checkpoint",
					    "record", "inclusion", NULL };

	if (!json_is_object(o))
		return bad(p, path, "expected an object");
	if (kj_json_only_keys(o, p->file, path, keys) < 0)
		return -EBADMSG;
	KJ_TRY(u64_of(p, o, path, "leaf_index", INT64_MAX, &r->leaf_index));
	KJ_TRY(u64_of(p, o, path, "checkpoint", n_ck - 1, &r->checkpoint));
	KJ_TRY(text_of(p, o, path, "record", KJ_RECORD_MAX, false,
		       &r->jcs));
	r->jcs_len = strlen(r->jcs);
	return proof_of(p, o, path, "inclusion", &r->proof, &r->proof_len);
}

int kj_ev_parse_record(const json_t *o, const char *file, size_t i,
		       size_t n_ck, struct kj_ev_record *r)
{
	struct pc p = { .file = file };
	char path[PATH_LEN];

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "records[%zu]", i);
	return parse_record(&p, o, path, n_ck, r);
}

static int parse_records(const struct pc *p, const json_t *root,
			 struct kj_evidence *ev)
{
	const json_t *a = array_of(p, root, "records", KJ_EVIDENCE_MAX_RECORDS,
				   &ev->n_records);
	char path[PATH_LEN];

	if (!a)
		return -EBADMSG;
	if (!ev->n_records)
		return bad(p, "records", "no record");
	ev->records = calloc(ev->n_records, sizeof(*ev->records));
	if (!ev->records)
		return -ENOMEM;
	for (size_t i = 0; i < ev->n_records; i++) {
		snprintf(path, sizeof(path), "records[%zu]", i);
		KJ_TRY(parse_record(p, json_array_get(a, i), path,
				    ev->n_checkpoints, &ev->records[i]));
		/* Copied out: drop its part of the document now, so the peak
		 * is about one copy of the records, not two. */
		json_array_set_new((json_t *)a, i, json_null());
	}
	return 0;
}

static int parse_consistency(const struct pc *p, const json_t *root,
			     struct kj_evidence *ev)
{
	static const char *const keys[] = { "from", "to", "proof", NULL };
	const json_t *a = array_of(p, root, "consistency",
				   KJ_EVIDENCE_MAX_CHECKPOINTS,
				   &ev->n_consistency);
	char path[PATH_LEN];

	if (!a)
		return -EBADMSG;
	ev->consistency = calloc(ev->n_consistency + 1,
				 sizeof(*ev->consistency));
	if (!ev->consistency)
		return -ENOMEM;
	for (size_t i = 0; i < ev->n_consistency; i++) {
		const json_t *o = json_array_get(a, i);
		struct kj_ev_consistency *c = &ev->consistency[i];

		snprintf(path, sizeof(path), "consistency[%zu]", i);
		if (!json_is_object(o))
			return bad(p, path, "expected an object");
		if (kj_json_only_keys(o, p->file, path, keys) < 0)
			return -EBADMSG;
		KJ_TRY(u64_of(p, o, path, "from", ev->n_checkpoints - 1,
			      &c->from));
		KJ_TRY(u64_of(p, o, path, "to", ev->n_checkpoints - 1,
			      &c->to));
		KJ_TRY(proof_of(p, o, path, "proof", &c->proof,
				&c->proof_len));
	}
	return 0;
}

int kj_ev_parse_head(const json_t *root, const char *file,
		     struct kj_evidence *ev)
{
	static const char *const keys[] = { "kinject_evidence", "appliance",
		"event_log", "checkpoints", "records", "consistency", NULL };
	struct pc p = { .file = file };

	if (!json_is_object(root)) {
		kj_err("%s: expected a JSON object at the top level", file);
		return -EBADMSG;
	}
	if (kj_json_only_keys(root, file, "", keys) < 0 ||
	    kj_json_version(root, file, "kinject_evidence",
			    KJ_EVIDENCE_VERSION) < 0)
		return -EBADMSG;
	KJ_TRY(parse_appliance(&p, root, ev));
	KJ_TRY(parse_events(&p, root, ev));
	return parse_checkpoints(&p, root, ev);
}

int kj_ev_parse_tail(const json_t *root, const char *file,
		     struct kj_evidence *ev)
{
	struct pc p = { .file = file };

	return parse_consistency(&p, root, ev);
}

static int parse_root(json_t *root, const char *file, struct kj_evidence *ev)
{
	struct pc p = { .file = file };
	int rc = -EBADMSG;

	KJ_TRY_GOTO(rc, kj_ev_parse_head(root, file, ev), out);
	KJ_TRY_GOTO(rc, parse_records(&p, root, ev), out);
	KJ_TRY_GOTO(rc, kj_ev_parse_tail(root, file, ev), out);
	rc = 0;
out:
	json_decref(root);
	if (rc < 0)
		kj_evidence_free(ev);
	return rc;
}

int kj_evidence_parse(const uint8_t *buf, size_t len, const char *file,
		      struct kj_evidence *ev)
{
	json_t *root;

	memset(ev, 0, sizeof(*ev));
	if (len > KJ_EVIDENCE_FILE_MAX) {
		kj_err("%s: %zu bytes, more than an evidence bundle may have",
		       file, len);
		return -EBADMSG;
	}
	if (kj_json_load(buf, len, file, &root) < 0)
		return -EBADMSG;
	return parse_root(root, file, ev);
}

void kj_evidence_free(struct kj_evidence *ev)
{
	free(ev->ak_public_pem);
	free(ev->ak_public);
	free(ev->ek_cert_pem);
	free(ev->ceremony_transcript);
	free(ev->transport_cert_pem);
	free(ev->secret_memory);
	free(ev->code_measured_by);
	free(ev->events);
	for (size_t i = 0; ev->checkpoints && i < ev->n_checkpoints; i++) {
		free(ev->checkpoints[i].attest);
		free(ev->checkpoints[i].sig);
	}
	free(ev->checkpoints);
	for (size_t i = 0; ev->records && i < ev->n_records; i++) {
		free(ev->records[i].jcs);
		free(ev->records[i].proof);
	}
	free(ev->records);
	for (size_t i = 0; ev->consistency && i < ev->n_consistency; i++)
		free(ev->consistency[i].proof);
	free(ev->consistency);
	kj_ev_stream_close(ev->stream);
	memset(ev, 0, sizeof(*ev));
}
