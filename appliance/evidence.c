// SPDX-License-Identifier: Apache-2.0
/*
 * `kinject evidence export`: the bundle of EVIDENCE.md §5 for one job, from
 * the journal (read-only) and the state dir's key files.  The Merkle tree is
 * rebuilt from the journal's records and checked against every stored
 * checkpoint root before any proof is made from it.
 */
#include "evidence.h"
#include "attest.h"
#include "journal.h"
#include "log.h"
#include "util.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/evp.h>

/* ---- base64 (RFC 4648 §4, padded, no line breaks) ------------------------- */

char *kj_base64_encode(const uint8_t *in, size_t len)
{
	char *out;

	if (len > INT_MAX / 2)
		return NULL;
	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

int kj_base64_decode(const char *in, size_t len, uint8_t **out,
		     size_t *out_len)
{
	size_t pad = 0, n;
	uint8_t *buf;
	char *again;
	int rc;

	*out = NULL;
	if (len % 4 || len > INT_MAX / 2)
		return -EINVAL;
	if (len && in[len - 1] == '=')
		pad++;
	if (len > 1 && in[len - 2] == '=')
		pad++;
	buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	rc = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len);
	if (rc < 0 || (size_t)rc < pad) {
		free(buf);
		return -EINVAL;
	}
	n = (size_t)rc - pad;
	/* Canonical only: re-encoding must give the same text (no stray
	 * bits in the last symbol, no whitespace EVP_DecodeBlock skips). */
	again = kj_base64_encode(buf, n);
	if (!again || strlen(again) != len || memcmp(again, in, len)) {
		free(again);
		free(buf);
		return -EINVAL;
	}
	free(again);
	*out = buf;
	*out_len = n;
	return 0;
}

/* ---- reading the state ----------------------------------------------------- */

struct rec {
	uint64_t seq;
	char *jcs;
	size_t len;
};

struct ckpt {
	struct kj_journal_checkpoint c; /* quote pointers: owned copies */
};

struct xport {
	const char *dir;
	struct kj_mtree *tree;
	struct rec *recs;
	size_t n_recs, cap_recs;
	struct ckpt *cks;
	size_t n_cks, cap_cks;
	json_t *events;
};

static int grow(void **p, size_t *cap, size_t n, size_t elem)
{
	void *np;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? 2 * *cap : 64;
	np = reallocarray(*p, c, elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = c;
	return 0;
}

static int tree_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct xport *x = ctx;

	if (seq != kj_mtree_size(x->tree)) {
		kj_err("%s: journal: record seq %" PRIu64 " where %" PRIu64 " was expected: the log has a gap",
		       x->dir, seq, kj_mtree_size(x->tree));
		return -EBADMSG;
	}
	return kj_mtree_append(x->tree, jcs, len);
}

static int job_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct xport *x = ctx;
	struct rec *r;

	KJ_TRY(grow((void **)&x->recs, &x->cap_recs, x->n_recs,
		    sizeof(*x->recs)));
	r = &x->recs[x->n_recs];
	r->jcs = malloc(len + 1);
	if (!r->jcs)
		return -ENOMEM;
	memcpy(r->jcs, jcs, len);
	r->jcs[len] = 0;
	r->len = len;
	r->seq = seq;
	x->n_recs++;
	return 0;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	if (d && n)
		memcpy(d, p, n);
	return d;
}

static int ckpt_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	struct xport *x = ctx;
	struct ckpt *k;

	KJ_TRY(grow((void **)&x->cks, &x->cap_cks, x->n_cks, sizeof(*x->cks)));
	k = &x->cks[x->n_cks];
	k->c = *c;
	k->c.quote_attest = dup_bytes(c->quote_attest, c->attest_len);
	k->c.quote_sig = dup_bytes(c->quote_sig, c->sig_len);
	if (!k->c.quote_attest || !k->c.quote_sig) {
		free((void *)k->c.quote_attest);
		free((void *)k->c.quote_sig);
		return -ENOMEM;
	}
	x->n_cks++;
	return 0;
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
	char hex[2 * 64 + 1];

	if (n > 64)
		return NULL;
	kj_hex_encode(p, n, hex);
	return json_string(hex);
}

static json_t *b64_json(const uint8_t *p, size_t n)
{
	char *s = kj_base64_encode(p, n);
	json_t *v = s ? json_string(s) : NULL;

	free(s);
	return v;
}

static int event_cb(void *ctx, uint64_t index, uint32_t epoch, uint32_t pcr,
		    const char *name, const uint8_t digest[32], bool is_void)
{
	struct xport *x = ctx;
	json_t *e;

	(void)index;
	e = json_pack("{s:I,s:I,s:s,s:o}", "epoch", (json_int_t)epoch, "pcr",
		      (json_int_t)pcr, "name", name, "digest",
		      hex_json(digest, 32));
	if (!e)
		return -ENOMEM;
	if (is_void && json_object_set_new(e, "void", json_true())) {
		json_decref(e);
		return -ENOMEM;
	}
	return json_array_append_new(x->events, e) ? -ENOMEM : 0;
}

/* Every stored checkpoint must describe a prefix of the rebuilt tree. */
static int check_roots(struct xport *x)
{
	uint8_t root[32];
	char hex[65];

	for (size_t i = 0; i < x->n_cks; i++) {
		const struct kj_journal_checkpoint *c = &x->cks[i].c;

		if (c->tree_size > kj_mtree_size(x->tree)) {
			kj_err("%s: journal: checkpoint %" PRIu64 " covers %" PRIu64 " records, the journal has %" PRIu64,
			       x->dir, c->id, c->tree_size,
			       kj_mtree_size(x->tree));
			return -EBADMSG;
		}
		KJ_TRY(kj_mtree_root(x->tree, c->tree_size, root));
		if (memcmp(root, c->root, 32)) {
			kj_hex_encode(c->root, 32, hex);
			kj_err("%s: journal: checkpoint %" PRIu64 " root %s is not the root of the journal's first %" PRIu64 " records: the journal was altered",
			       x->dir, c->id, hex, c->tree_size);
			return -EBADMSG;
		}
	}
	return 0;
}

static int load(struct xport *x, const char *job)
{
	struct kj_journal *j;
	int rc;

	KJ_TRY(kj_journal_open(x->dir, KJ_JOURNAL_RDONLY, &j));
	KJ_TRY_GOTO(rc, kj_journal_foreach_record(j, 0, NULL, tree_cb, x),
		    out);
	KJ_TRY_GOTO(rc, kj_journal_foreach_record(j, 0, job, job_cb, x), out);
	KJ_TRY_GOTO(rc, kj_journal_foreach_checkpoint(j, 0, ckpt_cb, x), out);
	KJ_TRY_GOTO(rc, kj_journal_foreach_event(j, event_cb, x), out);
	rc = check_roots(x);
out:
	kj_journal_close(j);
	return rc;
}

/* ---- building the bundle ----------------------------------------------------- */

static json_t *file_text(const char *dir, const char *name, bool optional,
			 int *rc)
{
	char path[PATH_MAX];
	uint8_t *buf;
	size_t len;
	json_t *v;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (optional && access(path, F_OK) < 0)
		return json_null();
	*rc = kj_read_file(path, KJ_EVIDENCE_PEM_MAX, &buf, &len);
	if (*rc < 0)
		return NULL;
	v = json_stringn((const char *)buf, len);
	free(buf);
	if (!v) {
		kj_err("%s: not UTF-8 text", path);
		*rc = -EINVAL;
	}
	return v;
}

static json_t *appliance(struct xport *x, int *rc)
{
	json_t *o = NULL, *smv = NULL, *pem = NULL, *ek = NULL, *tr = NULL;
	uint8_t *pub = NULL, *sm = NULL;
	char path[PATH_MAX];
	struct kj_journal *j;
	size_t len, sm_len;
	struct kj_ak ak;

	memset(&ak, 0, sizeof(ak));
	snprintf(path, sizeof(path), "%s/ak.pub", x->dir);
	if ((*rc = kj_read_file(path, KJ_TPM_PUB_MAX, &pub, &len)) < 0)
		return NULL;
	if ((*rc = kj_ak_parse(pub, len, &ak, NULL)) < 0)
		goto out;
	if ((*rc = kj_journal_open(x->dir, KJ_JOURNAL_RDONLY, &j)) < 0)
		goto out;
	*rc = kj_journal_meta_get(j, KJ_META_SECRET_MEMORY, &sm, &sm_len);
	kj_journal_close(j);
	if (*rc < 0 && *rc != -ENOENT)
		goto out;
	smv = *rc == -ENOENT ? json_null() : json_stringn((char *)sm, sm_len);
	*rc = 0;
	if (!(pem = file_text(x->dir, "ak.pem", false, rc)) ||
	    !(ek = file_text(x->dir, "ek.pem", true, rc)) ||
	    !(tr = file_text(x->dir, "transport.pem", true, rc)))
		goto out;
	/* "o" steals the references, also when json_pack fails. */
	o = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "ak_public_pem", pem,
		      "ak_public", b64_json(pub, len),
		      "ak_name", hex_json(ak.name, KJ_TPM_NAME_LEN),
		      "ek_certificate_pem", ek, "transport_cert_pem", tr,
		      "secret_memory", smv);
	pem = ek = tr = smv = NULL;
	if (!o)
		*rc = -ENOMEM;
out:
	json_decref(pem);
	json_decref(ek);
	json_decref(tr);
	json_decref(smv);
	if (!o && !*rc)
		*rc = -ENOMEM;
	kj_ak_free(&ak);
	free(pub);
	free(sm);
	return o;
}

static json_t *ckpt_json(const struct kj_journal_checkpoint *c)
{
	json_t *pcrs = json_object(), *o;
	char key[4];

	if (!pcrs)
		return NULL;
	for (unsigned i = 0; i < KJ_JOURNAL_PCR_COUNT; i++) {
		if (!(c->pcr_mask & (1u << i)))
			continue;
		snprintf(key, sizeof(key), "%u", i);
		if (json_object_set_new(pcrs, key, hex_json(c->pcrs[i], 32))) {
			json_decref(pcrs);
			return NULL;
		}
	}
	o = json_pack("{s:I,s:o,s:I,s:I,s:I,s:o,s:o,s:o}",
		      "tree_size", (json_int_t)c->tree_size,
		      "root", hex_json(c->root, 32),
		      "nv_counter", (json_int_t)c->nv_counter,
		      "epoch", (json_int_t)c->epoch,
		      "event_log_length", (json_int_t)c->event_log_length,
		      "quote_attest", b64_json(c->quote_attest, c->attest_len),
		      "quote_signature", b64_json(c->quote_sig, c->sig_len),
		      "pcrs", pcrs);
	return o;
}

static json_t *proof_json(const uint8_t (*p)[32], int n)
{
	json_t *a = json_array();

	for (int i = 0; a && i < n; i++) {
		if (json_array_append_new(a, hex_json(p[i], 32))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* Included checkpoints: [*first, *last] (EVIDENCE.md §5). */
static int pick(struct xport *x, const char *job, size_t *first, size_t *last)
{
	uint64_t lo = x->recs[0].seq, hi = x->recs[x->n_recs - 1].seq;
	size_t i;

	for (i = 0; i < x->n_cks && x->cks[i].c.tree_size <= lo; i++)
		;
	*first = i;
	for (; i < x->n_cks && x->cks[i].c.tree_size <= hi; i++)
		;
	if (i == x->n_cks) {
		kj_err("%s: job `%s': no checkpoint covers its record %" PRIu64 " yet (take one: it is taken at job end and every checkpoint interval)",
		       x->dir, job, hi);
		return -EAGAIN;
	}
	*last = i;
	return 0;
}

static int add_records(struct xport *x, json_t *arr, size_t first,
		       size_t last)
{
	uint8_t proof[KJ_MTREE_MAX_PROOF][32];
	size_t k = first;
	int n;

	for (size_t i = 0; i < x->n_recs; i++) {
		const struct rec *r = &x->recs[i];
		json_t *o;

		while (k <= last && x->cks[k].c.tree_size <= r->seq)
			k++;
		if (k > last)
			return -EBADMSG; /* pick() makes this impossible */
		n = kj_mtree_inclusion_proof(x->tree, r->seq,
					     x->cks[k].c.tree_size, proof);
		if (n < 0)
			return n;
		o = json_pack("{s:I,s:I,s:s%,s:o}", "leaf_index",
			      (json_int_t)r->seq, "checkpoint",
			      (json_int_t)(k - first), "record", r->jcs,
			      r->len, "inclusion",
			      proof_json((const uint8_t (*)[32])proof, n));
		if (!o || json_array_append_new(arr, o))
			return -ENOMEM;
	}
	return 0;
}

static int add_consistency(struct xport *x, json_t *arr, size_t first,
			   size_t last)
{
	uint8_t proof[KJ_MTREE_MAX_PROOF][32];
	int n;

	for (size_t i = first; i < last; i++) {
		json_t *o;

		n = kj_mtree_consistency_proof(x->tree, x->cks[i].c.tree_size,
					       x->cks[i + 1].c.tree_size,
					       proof);
		if (n < 0)
			return n;
		o = json_pack("{s:I,s:I,s:o}", "from",
			      (json_int_t)(i - first), "to",
			      (json_int_t)(i + 1 - first), "proof",
			      proof_json((const uint8_t (*)[32])proof, n));
		if (!o || json_array_append_new(arr, o))
			return -ENOMEM;
	}
	return 0;
}

static int build(struct xport *x, const char *job, json_t **out)
{
	json_t *doc, *app, *cks, *recs, *cons;
	size_t first, last;
	int rc = 0;

	if (!x->n_recs) {
		kj_err("%s: no record of job `%s' in the journal", x->dir, job);
		return -ENOENT;
	}
	KJ_TRY(pick(x, job, &first, &last));
	app = appliance(x, &rc);
	if (!app)
		return rc ? rc : -ENOMEM;
	doc = json_pack("{s:i,s:o,s:O,s:[],s:[],s:[]}", "kinject_evidence",
			KJ_EVIDENCE_VERSION, "appliance", app, "event_log",
			x->events, "checkpoints", "records", "consistency");
	if (!doc)
		return -ENOMEM;
	cks = json_object_get(doc, "checkpoints");
	recs = json_object_get(doc, "records");
	cons = json_object_get(doc, "consistency");
	for (size_t i = first; i <= last; i++) {
		if (json_array_append_new(cks, ckpt_json(&x->cks[i].c))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	KJ_TRY_GOTO(rc, add_records(x, recs, first, last), out);
	KJ_TRY_GOTO(rc, add_consistency(x, cons, first, last), out);
	*out = doc;
	return 0;
out:
	json_decref(doc);
	return rc;
}

static void xport_free(struct xport *x)
{
	for (size_t i = 0; i < x->n_recs; i++)
		free(x->recs[i].jcs);
	for (size_t i = 0; i < x->n_cks; i++) {
		free((void *)x->cks[i].c.quote_attest);
		free((void *)x->cks[i].c.quote_sig);
	}
	free(x->recs);
	free(x->cks);
	json_decref(x->events);
	kj_mtree_free(x->tree);
}

int kj_evidence_export(const char *state_dir, const char *job,
		       const char *out_path)
{
	struct xport x = { .dir = state_dir };
	json_t *doc = NULL;
	char *text = NULL;
	int rc;

	x.tree = kj_mtree_new();
	x.events = json_array();
	if (!x.tree || !x.events) {
		rc = -ENOMEM;
		goto out;
	}
	KJ_TRY_GOTO(rc, load(&x, job), out);
	KJ_TRY_GOTO(rc, build(&x, job, &doc), out);
	text = json_dumps(doc, JSON_COMPACT);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	KJ_TRY_GOTO(rc, kj_write_file_atomic(out_path, text, strlen(text),
					     0644), out);
	kj_info("%s: evidence of job `%s': %zu records, %s", out_path, job,
		x.n_recs, "written");
	rc = 0;
out:
	if (rc == -ENOMEM)
		kj_err("%s: out of memory building the evidence", out_path);
	free(text);
	json_decref(doc);
	xport_free(&x);
	return rc;
}
