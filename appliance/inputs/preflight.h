/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every check of a job's customer inputs (SPEC.md §3), in the order that
 * decrypts nothing before the signed policy allows the job: work order and
 * product matrix signatures, their policy (kj_order_check), then the HSM,
 * then firmware and credentials decrypted into one secret arena and
 * verified.  Used by `kinject check' (the pre-flight) and by `kinject run'.
 */
#ifndef KINJECT_PREFLIGHT_H
#define KINJECT_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "secret/arena.h"
#include "creds.h"
#include "issuer.h"
#include "product.h"
#include "tls_key.h"
#include "workorder.h"

struct kj_hsm;
typedef struct x509_st X509;

struct kj_preflight_args {
	const char *work_order, *work_order_sig;
	const char *product, *product_sig;
	const char *firmware, *credentials;
	const char *hsm_uri, *pin_source;
	const char *state_dir;	      /* default "./kinject-state" */
	const char *transport_cert;   /* NULL: STATE/transport.pem if present */
	bool print;		      /* print each verified fact to stdout */
	unsigned max_connections;     /* issue mode's arena room; 0: 4096 */
	bool tls;		      /* a --listen tls: (docs/TLS.md) */
};

/*
 * Issue mode: arena room for this many issued cred_blobs per connection
 * slot (the keeper's pool: --max-connections plus one per worker).
 */
#define KJ_ISSUE_BLOB_MAX (8 + KJ_ISSUED_CERT_MAX)
#define KJ_ISSUE_POOL_EXTRA 64

struct kj_preflight {
	struct kj_work_order wo;
	struct kj_product pm;
	X509 *release_cert;	/* STATE/customers/<customer>/release.pem */
	X509 *transport_cert;	/* NULL when none was found */
	struct kj_hsm *hsm;	/* during the checks; NULL (closed) after */
	struct kj_arena arena;	/* firmware + credential table */
	const uint8_t *fw;	/* the verified image, in the arena */
	size_t fw_len;
	struct kj_creds creds;	/* parsed into the arena */
	struct kj_issuer issuer; /* credential_mode issue; else ca == NULL */
	/* args tls: tls.pem, its HSM key, site CAs; else cert == NULL */
	struct kj_tls_key tls;
	uint8_t creds_sha256[32]; /* of the --credentials file as read */
	uint64_t first_index, last_index;
};

/*
 * Harden this process first (not dumpable, no core, the arena wiped on
 * fatal signals, RLIMIT_MEMLOCK raised), then run every check; on success p holds everything (free with
 * kj_preflight_free).  On failure the error was logged, everything
 * decrypted so far is wiped and released, and p needs no freeing.
 * -EINVAL/-EBADMSG/-EPERM/-ENOKEY: bad input; other: the HSM/system.
 */
KJ_MUST_CHECK int kj_preflight_run(const struct kj_preflight_args *args,
				   struct kj_preflight *p);

/* Wipe and destroy the arena, close the HSM, free the parsed inputs. */
void kj_preflight_free(struct kj_preflight *p);

#endif
