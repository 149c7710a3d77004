/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quorum requests (SPEC.md §5, docs/CEREMONY.md): every privileged act is a
 * file of bytes the officers sign, applied once with M signatures.
 *
 * A request is one JSON object, keys sorted, no whitespace, ending in a
 * newline:
 *   {"appliance":"<SHA-256 of transport.pem's DER>","kind":"...",
 *    "kinject_request":1,"nonce":"<128-bit hex>","time":"<RFC 3339>", ...}
 * "appliance" binds it to one appliance (a request signed for another is
 * refused), "nonce" makes two requests with the same content distinct.
 * Per kind:
 *   init              the transcript body (init.c)
 *   enrol-customer    name, cert (the release certificate, PEM)
 *   enrol-site-ca     name, cert
 *   enrol-issuing-ca  name, cert
 *   set-officers      officers (PEM), threshold
 *   set-policy        name, content (base64), sha256
 *   reset-journal     reason
 *   restore           backup (the backup's manifest, JSON text)
 *
 * Applying one records {time, kind, request_sha256, officers, what} in the
 * journal (meta KJ_CEREMONY_META_APPROVALS, a JSON array), and a request
 * whose SHA-256 is there already is refused.
 */
#ifndef KINJECT_REQUEST_H
#define KINJECT_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "base/kinject.h"

#define KJ_CEREMONY_META_APPROVALS "ceremony.approvals"
/*
 * Set by an applied reset-journal request to its SHA-256 (hex): the
 * officers allow this (fresh) journal on a TPM whose NV counter is already
 * in use.  The checkpointer's "allow a fresh journal" flag comes from here
 * (kj_ceremony_fresh_journal_approved).
 */
#define KJ_CEREMONY_META_RESET_JOURNAL "ceremony.reset_journal"

struct kj_journal;

struct kj_request_args {
	const char *name;	/* enrol-*, set-policy */
	const char *cert;	/* enrol-*: PEM file */
	const char *const *officers; /* set-officers: PEM files */
	unsigned n_officers, threshold;
	const char *policy;	/* set-policy: the file */
	const char *reason;	/* reset-journal */
	const char *backup;	/* restore: the backup directory */
};

/* A new request object with the common fields for state's appliance. */
KJ_MUST_CHECK int kj_request_new(const char *state, const char *kind,
				 json_t **out);
/* Build a request of kind from args (logged errors name the flag). */
KJ_MUST_CHECK int kj_request_build(const char *state, const char *kind,
				   const struct kj_request_args *a,
				   json_t **out);
/* The bytes officers sign: JSON, sorted keys, compact, "\n".  malloc'd. */
KJ_MUST_CHECK int kj_request_bytes(const json_t *req, char **out);
/* Write the request's bytes to path (0644, atomically). */
KJ_MUST_CHECK int kj_request_write(const json_t *req, const char *path);

/*
 * kinject ceremony apply: read the request at path, check it names this
 * appliance and was not applied before, check the signatures (sigs) are a
 * quorum of the officers, apply it, record the approval in the journal.
 */
KJ_MUST_CHECK int kj_request_apply(const char *state, const char *path,
				   const char *const *sigs, unsigned nsig);

/* Append an approval (who, what, when) to the journal and commit. */
struct kj_officers;
KJ_MUST_CHECK int kj_request_record(struct kj_journal *j, const char *kind,
				    const char *sha, const char *what,
				    const struct kj_officers *set,
				    const unsigned *who, unsigned nsig);

/* Has an approved reset-journal been recorded in j?  1/0, or < 0. */
KJ_MUST_CHECK int kj_ceremony_fresh_journal_approved(struct kj_journal *j);

/* The approvals recorded in the journal of state (a JSON array; read-only
 * open).  An empty array when there is no journal yet. */
KJ_MUST_CHECK int kj_request_approvals(const char *state, json_t **out);

#endif
