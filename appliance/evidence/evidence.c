// SPDX-License-Identifier: Apache-2.0
/*
 * `kinject evidence export`: the bundle of EVIDENCE.md §5 for one job, from
 * the journal (read-only) and the state dir's key files.  The Merkle tree is
 * rebuilt from the journal's records and checked against every stored
 * checkpoint root before any proof is made from it.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "evidence.h"
#include "attest/attest.h"
#include "attest/checkpoint.h"
#include "attest/measure.h"
#include "base/array.h"
#include "base/log.h"
#include "base/util.h"
#include "journal/journal.h"
#include "evidence_int.h"

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

/*
 * Memory stays bounded for big jobs: the tree of the whole log is kept in
 * temporary files next to --out (kj_mtree_new_file: 64 bytes a record on
 * disk, a few windows in memory), the checkpoints and the event log are
 * held; the job's records are streamed from the journal (one read snapshot
 * for the whole export) to the file.
 */
struct xport {
	const char *dir;
	const char *job;
	struct kj_journal *j;
	struct kj_mtree *tree;
	uint64_t n_recs, lo, hi;       /* the job's records, first/last seq */
	struct kj_journal_checkpoint *cks;
	size_t n_cks, cap_cks;
	size_t first, last;            /* included checkpoints */
	json_t *events;
	FILE *f;
	uint64_t written;
	char *line;                    /* one record element */
	size_t line_cap;
};

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

static int count_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct xport *x = ctx;

	(void)jcs, (void)len;
	if (!x->n_recs++)
		x->lo = seq;
	x->hi = seq;
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
	struct kj_journal_checkpoint *k;

	if (kj_grow(&x->cks, &x->cap_cks, x->n_cks + 1, 64))
		return -ENOMEM;
	k = &x->cks[x->n_cks];
	*k = *c;
	k->quote_attest = dup_bytes(c->quote_attest, c->attest_len);
	k->quote_sig = dup_bytes(c->quote_sig, c->sig_len);
	if (!k->quote_attest || !k->quote_sig) {
		free((void *)k->quote_attest);
		free((void *)k->quote_sig);
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
		const struct kj_journal_checkpoint *c = &x->cks[i];

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

/* Included checkpoints: [first, last] (EVIDENCE.md §5). */
static int pick(struct xport *x)
{
	size_t i;

	if (!x->n_recs) {
		kj_err("%s: no record of job `%s' in the journal", x->dir,
		       x->job);
		return -ENOENT;
	}
	for (i = 0; i < x->n_cks && x->cks[i].tree_size <= x->lo; i++)
		;
	x->first = i;
	for (; i < x->n_cks && x->cks[i].tree_size <= x->hi; i++)
		;
	if (i == x->n_cks) {
		kj_err("%s: job `%s': no checkpoint covers its record %" PRIu64 " yet (take one: it is taken at job end and every checkpoint interval)",
		       x->dir, x->job, x->hi);
		return -EAGAIN;
	}
	x->last = i;
	return 0;
}

static int load(struct xport *x)
{
	KJ_TRY(kj_journal_foreach_record(x->j, 0, NULL, tree_cb, x));
	KJ_TRY(kj_journal_foreach_record(x->j, 0, x->job, count_cb, x));
	KJ_TRY(kj_journal_foreach_checkpoint(x->j, 0, ckpt_cb, x));
	KJ_TRY(kj_journal_foreach_event(x->j, event_cb, x));
	KJ_TRY(check_roots(x));
	return pick(x);
}

/* ---- the appliance block ------------------------------------------------------ */

static json_t *file_text(const char *dir, const char *name, bool optional,
			 int *rc, size_t max)
{
	char path[PATH_MAX];
	uint8_t *buf;
	size_t len;
	json_t *v;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (optional && access(path, F_OK) < 0)
		return json_null();
	*rc = kj_read_file(path, max, &buf, &len);
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

/* §5 appliance.tpm_orderly_count, as kinject run recorded it. */
static int orderly_count(struct kj_journal *j, uint64_t *v)
{
	uint8_t *val;
	size_t len;
	int rc;

	rc = kj_journal_meta_get(j, KJ_META_TPM_ORDERLY, &val, &len);
	if (rc == -ENOENT) {
		kj_err("journal: no %s recorded (a state made before the ORDERLY NV counter): its evidence cannot be exported in this format",
		       KJ_META_TPM_ORDERLY);
		return -EBADMSG;
	}
	if (rc < 0)
		return rc;
	rc = kj_parse_u64((const char *)val, 0, UINT32_MAX,
			  "journal meta " KJ_META_TPM_ORDERLY, v);
	free(val);
	return rc < 0 ? -EBADMSG : 0;
}

static json_t *appliance(struct xport *x, int *rc)
{
	json_t *o = NULL, *smv = NULL, *pem = NULL, *ek = NULL, *tr = NULL;
	json_t *cer = NULL, *cbv = NULL;
	uint8_t *pub = NULL, *sm = NULL, *cb = NULL;
	char path[PATH_MAX];
	size_t len, sm_len, cb_len;
	uint64_t orderly = 0;
	struct kj_ak ak;

	memset(&ak, 0, sizeof(ak));
	snprintf(path, sizeof(path), "%s/ak.pub", x->dir);
	if ((*rc = kj_read_file(path, KJ_TPM_PUB_MAX, &pub, &len)) < 0)
		return NULL;
	if ((*rc = kj_ak_parse(pub, len, &ak, NULL)) < 0)
		goto out;
	*rc = kj_journal_meta_get(x->j, KJ_META_SECRET_MEMORY, &sm, &sm_len);
	if (*rc < 0 && *rc != -ENOENT)
		goto out;
	smv = *rc == -ENOENT ? json_null() : json_stringn((char *)sm, sm_len);
	*rc = orderly_count(x->j, &orderly);
	if (*rc < 0)
		goto out;
	*rc = kj_journal_meta_get(x->j, KJ_META_CODE_BY, &cb, &cb_len);
	if (*rc < 0 && *rc != -ENOENT)
		goto out;
	cbv = *rc == -ENOENT ? json_null() : json_stringn((char *)cb, cb_len);
	*rc = 0;
	if (!(pem = file_text(x->dir, "ak.pem", false, rc,
			      KJ_EVIDENCE_PEM_MAX)) ||
	    !(ek = file_text(x->dir, "ek.pem", true, rc,
			     KJ_EVIDENCE_PEM_MAX)) ||
	    !(tr = file_text(x->dir, "transport.pem", true, rc,
			     KJ_EVIDENCE_PEM_MAX)) ||
	    !(cer = file_text(x->dir, "ceremony/transcript.json", true, rc,
			      KJ_EVIDENCE_TRANSCRIPT_MAX)))
		goto out;
	/* "o" steals the references, also when json_pack fails. */
	o = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I}",
		      "ak_public_pem", pem, "ak_public", b64_json(pub, len),
		      "ak_name", hex_json(ak.name, KJ_TPM_NAME_LEN),
		      "ek_certificate_pem", ek, "transport_cert_pem", tr,
		      "secret_memory", smv, "code_measured_by", cbv,
		      "ceremony_transcript", cer,
		      "tpm_orderly_count", (json_int_t)orderly);
	pem = ek = tr = smv = cbv = cer = NULL;
out:
	json_decref(cbv);
	free(cb);
	json_decref(pem);
	json_decref(ek);
	json_decref(tr);
	json_decref(smv);
	json_decref(cer);
	if (!o && !*rc)
		*rc = -ENOMEM;
	kj_ak_free(&ak);
	free(pub);
	free(sm);
	return o;
}

/* ---- writing ------------------------------------------------------------------ */

static json_t *ckpt_json(const struct kj_journal_checkpoint *c)
{
	json_t *pcrs = json_object();
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
	return json_pack("{s:I,s:o,s:I,s:I,s:I,s:o,s:o,s:o}",
			 "tree_size", (json_int_t)c->tree_size,
			 "root", hex_json(c->root, 32),
			 "nv_counter", (json_int_t)c->nv_counter,
			 "epoch", (json_int_t)c->epoch,
			 "event_log_length", (json_int_t)c->event_log_length,
			 "quote_attest",
			 b64_json(c->quote_attest, c->attest_len),
			 "quote_signature", b64_json(c->quote_sig, c->sig_len),
			 "pcrs", pcrs);
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

/* Write v (stolen) compactly, after a comma unless first. */
static int put(struct xport *x, json_t *v, bool first)
{
	int rc = 0;

	if (!v)
		return -ENOMEM;
	if ((!first && fputc(',', x->f) == EOF) ||
	    json_dumpf(v, x->f, JSON_COMPACT) < 0)
		rc = -EIO;
	json_decref(v);
	return rc;
}

static int put_str(struct xport *x, const char *s)
{
	return fputs(s, x->f) == EOF ? -EIO : 0;
}

static int record_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	uint8_t proof[KJ_MTREE_MAX_PROOF][32];
	struct xport *x = ctx;
	size_t k = x->first;
	int n;

	/* The first included checkpoint that covers it: proofs are made
	 * against old tree sizes, the tree keeps every level. */
	while (k <= x->last && x->cks[k].tree_size <= seq)
		k++;
	if (k > x->last || seq > x->hi)
		return -EBADMSG; /* pick() and one snapshot rule this out */
	n = kj_mtree_inclusion_proof(x->tree, seq, x->cks[k].tree_size, proof);
	if (n < 0)
		return n;
	KJ_TRY(kj_ev_write_record(x->f, x->written == 0, seq, k - x->first,
				  jcs, len, (const uint8_t (*)[32])proof, n,
				  &x->line, &x->line_cap));
	x->written++;
	return 0;
}

static int write_consistency(struct xport *x)
{
	uint8_t proof[KJ_MTREE_MAX_PROOF][32];
	int n;

	for (size_t i = x->first; i < x->last; i++) {
		n = kj_mtree_consistency_proof(x->tree, x->cks[i].tree_size,
					       x->cks[i + 1].tree_size, proof);
		if (n < 0)
			return n;
		KJ_TRY(put(x, json_pack("{s:I,s:I,s:o}", "from",
					(json_int_t)(i - x->first), "to",
					(json_int_t)(i + 1 - x->first), "proof",
					proof_json((const uint8_t (*)[32])proof,
						   n)),
			   i == x->first));
	}
	return 0;
}

/* The bundle, EVIDENCE.md §5, key order as the spec shows it. */
static int write_bundle(struct xport *x)
{
	json_t *app;
	int rc = 0;

	app = appliance(x, &rc);
	if (!app)
		return rc;
	KJ_TRY(put_str(x, "{\"kinject_evidence\":1,\"appliance\":"));
	KJ_TRY(put(x, app, true));
	KJ_TRY(put_str(x, ",\"event_log\":"));
	KJ_TRY(put(x, json_incref(x->events), true));
	KJ_TRY(put_str(x, ",\"checkpoints\":["));
	for (size_t i = x->first; i <= x->last; i++)
		KJ_TRY(put(x, ckpt_json(&x->cks[i]), i == x->first));
	KJ_TRY(put_str(x, "],\"records\":["));
	KJ_TRY(kj_journal_foreach_record(x->j, 0, x->job, record_cb, x));
	if (x->written != x->n_recs) {
		kj_err("%s: job `%s': %" PRIu64 " records on the second read, %" PRIu64 " on the first",
		       x->dir, x->job, x->written, x->n_recs);
		return -EBADMSG;
	}
	KJ_TRY(put_str(x, "],\"consistency\":["));
	KJ_TRY(write_consistency(x));
	return put_str(x, "]}\n");
}

/* ---- the file ---------------------------------------------------------------- */

static int open_tmp(const char *out, char *tmp, size_t size, FILE **f)
{
	int fd;

	if ((size_t)snprintf(tmp, size, "%s.XXXXXX", out) >= size)
		return -ENAMETOOLONG;
	fd = mkstemp(tmp);
	if (fd < 0) {
		fd = -errno;
		kj_err("%s: cannot create: %s", tmp, strerror(errno));
		return fd;
	}
	(void)fchmod(fd, 0644);
	*f = fdopen(fd, "w");
	if (!*f) {
		close(fd);
		unlink(tmp);
		return -ENOMEM;
	}
	return 0;
}

/* The directory out is in. */
static void out_dir(const char *out, char *dir, size_t size)
{
	char *slash;

	snprintf(dir, size, "%s", out);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	else
		snprintf(dir, size, ".");
}

/* fsync the file, rename over out, fsync the directory: durable. */
static int commit_tmp(FILE *f, const char *tmp, const char *out)
{
	char dir[PATH_MAX];
	int dfd, rc = 0;

	if (fflush(f) == EOF || fsync(fileno(f)) < 0)
		rc = -errno;
	if (fclose(f) == EOF && !rc)
		rc = -errno;
	if (!rc && rename(tmp, out) < 0)
		rc = -errno;
	if (rc) {
		kj_err("%s: cannot write: %s", out, strerror(-rc));
		unlink(tmp);
		return rc;
	}
	out_dir(out, dir, sizeof(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

static void xport_free(struct xport *x)
{
	for (size_t i = 0; i < x->n_cks; i++) {
		free((void *)x->cks[i].quote_attest);
		free((void *)x->cks[i].quote_sig);
	}
	free(x->cks);
	free(x->line);
	json_decref(x->events);
	kj_mtree_free(x->tree);
	kj_journal_close(x->j);
}

int kj_evidence_export(const char *state_dir, const char *job,
		       const char *out_path)
{
	struct xport x = { .dir = state_dir, .job = job };
	char tmp[PATH_MAX];
	int rc;

	/* The tree's files go where the bundle goes: there is room there. */
	out_dir(out_path, tmp, sizeof(tmp));
	x.tree = kj_mtree_new_file(tmp);
	x.events = json_array();
	if (!x.tree || !x.events) {
		rc = -ENOMEM;
		goto out;
	}
	/* One read snapshot for everything below (journal.h). */
	KJ_TRY_GOTO(rc, kj_journal_open(state_dir, KJ_JOURNAL_RDONLY, &x.j),
		    out);
	KJ_TRY_GOTO(rc, load(&x), out);
	KJ_TRY_GOTO(rc, open_tmp(out_path, tmp, sizeof(tmp), &x.f), out);
	rc = write_bundle(&x);
	if (rc < 0) {
		if (rc == -EIO)
			kj_err("%s: write failed: %s", tmp, strerror(errno));
		fclose(x.f);
		unlink(tmp);
		goto out;
	}
	KJ_TRY_GOTO(rc, commit_tmp(x.f, tmp, out_path), out);
	kj_info("%s: evidence of job `%s': %" PRIu64 " records, %zu checkpoints",
		out_path, job, x.n_recs, x.last - x.first + 1);
	rc = 0;
out:
	if (rc == -ENOMEM)
		kj_err("%s: out of memory building the evidence", out_path);
	xport_free(&x);
	return rc;
}
