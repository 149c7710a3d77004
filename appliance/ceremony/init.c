// SPDX-License-Identifier: Apache-2.0
/*
 * kinject ceremony init (ceremony.h, SPEC.md §5): the transport key in the
 * HSM, the AK in the TPM with its residency proof, the officer set saved,
 * journalled and measured into PCR 14, and the transcript: the init
 * request (everything that was done, as the bytes the officers sign) and a
 * TPM quote over its hash.  The officers' signatures come after, through
 * `apply' like any approval, so init alone leaves the appliance pending:
 * no one person can set it up.
 *
 * Everything is checked before the first key is made (state empty, officer
 * set valid, HSM and TPM reachable), because a key made cannot be unmade:
 * a second init on the same token is refused by the HSM (-EEXIST).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ceremony.h"
#include "attest/measure.h"
#include "attest/tpm.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "hsm/hsm.h"
#include "journal/journal.h"
#include "ceremony_int.h"
#include "officers.h"
#include "request.h"

struct init {
	const struct kj_ceremony_init_args *a;
	struct kj_officers set;
	struct kj_hsm *hsm;
	struct kj_tpm *tpm;
	struct kj_journal *j;
	struct kj_tpm_residency res;
	char *transport_pem, *ek_pem, *officers_pem, *tls_pem;
	uint8_t officers_sha[32];
};

static int any_ckpt(void *ctx, const struct kj_journal_checkpoint *c)
{
	(void)c;
	*(bool *)ctx = true;
	return 1;
}

/*
 * A journal is allowed only when it holds nothing but the image's boot
 * measurement (`kinject measure' ran before this first ceremony): no
 * record, no checkpoint, no officer set.
 */
static int journal_is_boot_only(const char *state, bool *ok)
{
	struct kj_journal *j;
	bool ck = false;
	uint8_t *v = NULL;
	size_t len;
	int rc;

	*ok = false;
	KJ_TRY(kj_journal_open(state, KJ_JOURNAL_RDONLY, &j));
	rc = kj_journal_meta_get(j, "ceremony.officers", &v, &len);
	free(v);
	if (rc == -ENOENT) { /* no officer set: any checkpoint, record? */
		rc = kj_journal_foreach_checkpoint(j, 0, any_ckpt, &ck);
		*ok = rc >= 0 && !ck && !kj_journal_record_count(j);
	}
	kj_journal_close(j);
	return rc < 0 ? rc : 0;
}

static int refuse_existing(const char *state)
{
	static const char *const what[] = {
		KJ_CEREMONY_TRANSCRIPT, KJ_CEREMONY_INIT_REQ, "transport.pem",
		KJ_CEREMONY_TLS_CERT,
		"ak.priv", KJ_OFFICERS_JSON, KJ_JOURNAL_FILE,
	};
	char path[PATH_MAX];
	bool boot_only;

	for (size_t i = 0; i < KJ_ARRAY_SIZE(what); i++) {
		KJ_TRY(kj_cer_path(path, state, what[i]));
		if (!strcmp(what[i], KJ_JOURNAL_FILE) &&
		    access(path, F_OK) == 0) {
			KJ_TRY(journal_is_boot_only(state, &boot_only));
			if (boot_only)
				continue;
		}
		if (access(path, F_OK) == 0) {
			kj_err("%s: exists: the appliance in %s is initialised "
			       "already (or an init is pending); init runs "
			       "once per appliance", path, state);
			return -EEXIST;
		}
	}
	return 0;
}

/* The restored key: unwrapped into the token, the backup's certificate. */
static int restored(struct init *c, X509 **x)
{
	const struct kj_restore *r = c->a->restore;
	BIO *b = BIO_new_mem_buf(r->cert_pem, -1);
	uint8_t pt[65];
	EVP_PKEY *k;

	*x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	k = *x ? X509_get0_pubkey(*x) : NULL;
	if (!k || EVP_PKEY_get_octet_string_param(k, "encoded-pub-key", pt,
						  sizeof(pt), NULL) != 1)
		return kj_err_ssl("backup: transport_cert: not an EC P-256 "
				  "certificate");
	return kj_hsm_unwrap_transport(c->hsm, r->kek, r->wrapped,
				       r->wrapped_len, pt, sizeof(pt));
}

static int transport(struct init *c)
{
	char path[PATH_MAX];
	X509 *x = NULL;
	int rc;

	if (c->a->restore) {
		rc = restored(c, &x);
	} else {
		rc = kj_hsm_generate_ec_p256(c->hsm, c->a->backup_capable);
		if (rc >= 0)
			rc = kj_hsm_transport_cert(c->hsm, "kinject transport",
						   3650, &x);
	}
	if (rc >= 0)
		rc = kj_cer_cert_pem(x, &c->transport_pem);
	X509_free(x);
	if (rc < 0)
		return rc;
	KJ_TRY(kj_cer_path(path, c->a->state, "transport.pem"));
	return kj_write_file_atomic(path, c->transport_pem,
				    strlen(c->transport_pem), 0644);
}

/* The TLS server key (PROTOCOL.md "TLS"): new on every init and restore. */
static int tls(struct init *c)
{
	char path[PATH_MAX];
	unsigned long key;
	uint8_t pt[65];
	X509 *x = NULL;
	int rc;

	rc = kj_hsm_generate_tls_key(c->hsm, pt, &key);
	if (rc >= 0)
		rc = kj_hsm_tls_cert(c->hsm, key, pt, "kinject appliance",
				     3650, &x);
	if (rc >= 0)
		rc = kj_cer_cert_pem(x, &c->tls_pem);
	X509_free(x);
	if (rc < 0)
		return rc;
	KJ_TRY(kj_cer_path(path, c->a->state, KJ_CEREMONY_TLS_CERT));
	return kj_write_file_atomic(path, c->tls_pem, strlen(c->tls_pem),
				    0644);
}

static int ak(struct init *c)
{
	bool boot;
	int rc = kj_measure_code_by_boot(c->tpm, c->j, &boot);

	if (rc < 0)
		return rc;
	if (boot) { /* in the image: the AK quotes only in this boot chain */
		kj_info("the image's init measured the code: the AK is bound to PCRs %u and %u",
			KJ_PCR_BOOT_KERNEL, KJ_PCR_BOOT_INITRD);
		kj_tpm_ak_bind_boot(c->tpm);
	}
	rc = kj_tpm_ak_setup(c->tpm, c->a->state);
	if (rc < 0)
		return rc;
	if (rc != 1) {
		kj_err("%s: an AK was there already", c->a->state);
		return -EEXIST;
	}
	KJ_TRY(kj_tpm_save_ek_pem(c->tpm, c->a->state));
	rc = kj_tpm_ek_cert_pem(c->tpm, &c->ek_pem);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	return kj_tpm_ak_residency(c->tpm, &c->res);
}

/* Saved, journalled, measured into PCR 14 (what job starts measure). */
static int officers(struct init *c)
{
	struct kj_measure_out mo;
	uint8_t *buf;
	size_t len;
	char path[PATH_MAX];
	int rc;

	KJ_TRY(kj_officers_save(c->a->state, &c->set));
	KJ_TRY(kj_officers_pem(&c->set, &c->officers_pem));
	KJ_TRY(kj_cer_path(path, c->a->state, KJ_OFFICERS_JSON));
	KJ_TRY(kj_read_file(path, 1 << 20, &buf, &len));
	rc = kj_journal_meta_set(c->j, "ceremony.officers", buf, len);
	free(buf);
	if (rc >= 0)
		rc = kj_journal_commit(c->j);
	if (rc < 0)
		return rc;
	kj_sha256(c->officers_pem, strlen(c->officers_pem), c->officers_sha);
	KJ_TRY(kj_measure_epoch(c->tpm, c->j, KJ_PCR_DEFAULT_MASK, &mo));
	return kj_measure_extend(c->tpm, c->j, mo.epoch, KJ_PCR_POLICY,
				 KJ_EV_OFFICERS, c->officers_sha);
}

static json_t *body(struct init *c)
{
	const struct kj_tpm_residency *r = &c->res;
	const uint8_t *pub;
	size_t plen;
	uint8_t name[KJ_TPM_NAME_LEN];
	char tfp[65];
	json_t *req = NULL, *set = json_array();

	if (kj_tpm_ak_public(c->tpm, &pub, &plen) < 0 ||
	    kj_tpm_ak_name(c->tpm, name) < 0 ||
	    kj_cer_appliance_id(c->a->state, tfp) < 0 ||
	    kj_request_new(c->a->state, "init", &req) < 0 || !set) {
		json_decref(set);
		return NULL;
	}
	for (unsigned i = 0; i < c->set.n; i++)
		json_array_append_new(set, json_pack("{s:s,s:s}", "sha256",
						     c->set.fp[i], "subject",
						     c->set.subject[i]));
	json_object_set_new(req, "actions", json_pack("[s,s,s,s,s,s]",
		c->a->restore ? "transport key unwrapped into the HSM from a "
		"backup" : "transport key generated in the HSM",
		"transport.pem signed by the transport key in the HSM",
		"TLS key generated in the HSM, tls.pem signed by it",
		"AK created under the EK", "AK residency proven with "
		"MakeCredential/ActivateCredential",
		"officer set journalled and measured into PCR 14"));
	json_object_set_new(req, "officers", json_string(c->officers_pem));
	json_object_set_new(req, "threshold", json_integer(c->set.threshold));
	json_object_set_new(req, "officer_set", set);
	json_object_set_new(req, "transport", json_pack(
		"{s:s,s:s,s:s,s:b,s:b,s:s}", "sha256", tfp, "cert",
		c->transport_pem, "key", "EC P-256", "extractable",
		c->a->backup_capable || c->a->restore,
		"sensitive", 1, "hsm", kj_hsm_uri(c->hsm)));
	json_object_set_new(req, "tls", json_pack(
		"{s:s,s:s,s:b,s:b}", "cert", c->tls_pem, "key", "EC P-256",
		"extractable", 0, "sensitive", 1));
	json_object_set_new(req, "ak", json_pack("{s:o,s:o}", "name",
		kj_cer_hex(name, sizeof(name)), "public",
		kj_cer_b64(pub, plen)));
	json_object_set_new(req, "ek", json_pack("{s:o,s:o,s:o}",
		"certificate", c->ek_pem ? json_string(c->ek_pem) :
		json_null(), "public", kj_cer_b64(r->ek_public,
						   r->ek_public_len),
		"name", kj_cer_hex(r->ek_name, sizeof(r->ek_name))));
	json_object_set_new(req, "residency", json_pack(
		"{s:o,s:o,s:o,s:o,s:o}",
		"ak_name", kj_cer_hex(r->ak_name, sizeof(r->ak_name)),
		"credential_blob", kj_cer_b64(r->blob, r->blob_len),
		"encrypted_secret", kj_cer_b64(r->secret, r->secret_len),
		"challenge_sha256", kj_cer_hex(r->challenge_sha256, 32),
		"activated_sha256", kj_cer_hex(r->activated_sha256, 32)));
	if (c->a->restore)
		json_object_set_new(req, "restored_from", json_pack(
			"{s:s,s:s}", "backup_manifest_sha256",
			c->a->restore->manifest_sha, "restore_request_sha256",
			c->a->restore->request_sha));
	json_object_set_new(req, "pcr14_officers_sha256",
			    kj_cer_hex(c->officers_sha, 32));
	return req;
}

static int transcript(struct init *c)
{
	uint8_t qd[32], pcrs[KJ_TPM_PCR_COUNT][32], *att = NULL, *sig = NULL;
	size_t alen, slen;
	char path[PATH_MAX], *bytes = NULL, *out = NULL;
	json_t *req = body(c), *t = NULL;
	int rc = -ENOMEM;

	if (!req)
		goto out;
	KJ_TRY_GOTO(rc, kj_request_bytes(req, &bytes), out);
	KJ_TRY_GOTO(rc, kj_cer_path(path, c->a->state, KJ_CEREMONY_INIT_REQ),
		    out);
	KJ_TRY_GOTO(rc, kj_write_file_atomic(path, bytes, strlen(bytes),
					     0644), out);
	/* The quote's qualifyingData is the transcript body's hash, so
	 * tpm2_checkquote -q <sha256 of init.req> checks it. */
	kj_sha256(bytes, strlen(bytes), qd);
	KJ_TRY_GOTO(rc, kj_tpm_quote(c->tpm, KJ_PCR_DEFAULT_MASK, qd, &att,
				     &alen, &sig, &slen), out);
	KJ_TRY_GOTO(rc, kj_tpm_pcr_read(c->tpm, KJ_PCR_DEFAULT_MASK, pcrs),
		    out);
	t = json_pack("{s:i,s:s,s:o,s:{s:o,s:o,s:{s:o,s:o}},s:[]}",
		      "kinject_ceremony_transcript", 1, "request", bytes,
		      "request_sha256", kj_cer_hex(qd, 32), "quote",
		      "attest", kj_cer_b64(att, alen), "signature",
		      kj_cer_b64(sig, slen), "pcrs",
		      "13", kj_cer_hex(pcrs[KJ_PCR_CODE], 32),
		      "14", kj_cer_hex(pcrs[KJ_PCR_POLICY], 32),
		      "signatures");
	out = t ? json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	rc = -ENOMEM;
	if (!out)
		goto out;
	KJ_TRY_GOTO(rc, kj_cer_path(path, c->a->state,
				    KJ_CEREMONY_TRANSCRIPT), out);
	rc = kj_write_file_atomic(path, out, strlen(out), 0644);
out:
	json_decref(req);
	json_decref(t);
	free(bytes);
	free(out);
	free(att);
	free(sig);
	return rc;
}

static int run(struct init *c)
{
	const struct kj_ceremony_init_args *a = c->a;
	char path[PATH_MAX];

	KJ_TRY(refuse_existing(a->state));
	if (a->restore)
		KJ_TRY(kj_officers_from_pem(a->restore->set_pem,
					    a->restore->set->threshold,
					    "backup: officers", &c->set));
	else
		KJ_TRY(kj_officers_from_files(a->officers, a->n_officers,
					      a->threshold, &c->set));
	/* Reach both devices before making anything. */
	KJ_TRY(kj_tpm_open(a->tcti, &c->tpm));
	KJ_TRY(kj_hsm_open(&c->hsm, a->hsm_uri, a->pin_source));
	KJ_TRY(kj_cer_path(path, a->state, "ceremony"));
	KJ_TRY(kj_mkdir_p(path, 0700));
	KJ_TRY(transport(c));
	KJ_TRY(tls(c));
	KJ_TRY(kj_journal_open(a->state, 0, &c->j));
	KJ_TRY(ak(c));
	KJ_TRY(officers(c));
	if (a->restore)
		KJ_TRY(kj_request_record(c->j, "restore",
					 a->restore->request_sha,
					 "restore: transport key from a backup",
					 a->restore->set, a->restore->who,
					 a->restore->nsig));
	return transcript(c);
}

int kj_ceremony_init(const struct kj_ceremony_init_args *a)
{
	struct init c = { .a = a };
	int rc = run(&c);

	if (rc >= 0) {
		printf("transport key generated in %s (EC P-256, sensitive, "
		       "never extractable): %s/transport.pem\n",
		       kj_hsm_uri(c.hsm), a->state);
		printf("TLS key generated in %s (EC P-256, sensitive, "
		       "never extractable): %s/%s\n", kj_hsm_uri(c.hsm),
		       a->state, KJ_CEREMONY_TLS_CERT);
		printf("AK created under the EK, residency proven "
		       "(MakeCredential/ActivateCredential): %s/ak.pem\n",
		       a->state);
		printf("officer set: %u of %u, measured into PCR 14\n",
		       c.set.threshold, c.set.n);
		printf("transcript quoted by the TPM: %s/%s\n", a->state,
		       KJ_CEREMONY_TRANSCRIPT);
		printf("\nnext: %u officers sign %s/%s\n"
		       "  openssl cms -sign -binary -in %s/%s -signer oN.pem "
		       "-inkey oN.key -outform DER -out init.N.sig\n"
		       "then: kinject ceremony apply --state %s %s/%s "
		       "init.1.sig ...\n", c.set.threshold, a->state,
		       KJ_CEREMONY_INIT_REQ, a->state, KJ_CEREMONY_INIT_REQ,
		       a->state, a->state, KJ_CEREMONY_INIT_REQ);
	}
	kj_journal_close(c.j);
	kj_hsm_close(c.hsm);
	kj_tpm_close(c.tpm);
	kj_officers_free(&c.set);
	free(c.transport_pem);
	free(c.tls_pem);
	free(c.ek_pem);
	free(c.officers_pem);
	return rc;
}
