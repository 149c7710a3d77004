/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key ceremony (SPEC.md §5, docs/CEREMONY.md): what `kinject ceremony
 * init' does, and the state it leaves.  An appliance is initialised when
 * DIR/ceremony/transcript.json carries the quorum of officer signatures
 * over the init request (DIR/ceremony/init.req): `init' writes the keys and
 * the transcript without them, `apply init.req SIG...' adds them.
 */
#ifndef KINJECT_CEREMONY_H
#define KINJECT_CEREMONY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "base/kinject.h"
#include "officers.h"

#define KJ_CEREMONY_INIT_REQ "ceremony/init.req"
#define KJ_CEREMONY_TRANSCRIPT "ceremony/transcript.json"
/* The appliance's TLS certificate (its key in the HSM), PROTOCOL.md "TLS". */
#define KJ_CEREMONY_TLS_CERT "tls.pem"

/* What a restore (backup.c) hands to init instead of a new key. */
struct kj_restore {
	const uint8_t *kek;		/* the rebuilt backup key, arena */
	const uint8_t *wrapped;		/* the wrapped transport key */
	size_t wrapped_len;
	const char *cert_pem;		/* the backup's transport.pem */
	struct kj_officers *set;	/* the backup's officer set */
	const char *set_pem;		/* the same as PEM */
	const unsigned *who;		/* the restore request's signers */
	unsigned nsig;
	char manifest_sha[65], request_sha[65];
};

struct kj_ceremony_init_args {
	const char *state, *hsm_uri, *pin_source, *tcti;
	const char *const *officers;
	unsigned n_officers, threshold;
	bool backup_capable;	/* transport key wrappable (backup.h) */
	const struct kj_restore *restore; /* NULL: a new appliance */
};

/* kinject ceremony init (prints what it did and what the officers do). */
KJ_MUST_CHECK int kj_ceremony_init(const struct kj_ceremony_init_args *a);

/*
 * For `apply' of the init request: add the officers' signatures (DER files,
 * who[i] the officer of sigs[i]) to the transcript.
 */
KJ_MUST_CHECK int kj_ceremony_sign_transcript(const char *state,
					      const struct kj_officers *set,
					      const char *const *sigs,
					      const unsigned *who,
					      unsigned nsig);

/*
 * 0 if state is an initialised appliance; else -EPERM, logged for `cmd'
 * saying what is missing and which command does it.
 */
KJ_MUST_CHECK int kj_ceremony_check_initialised(const char *state,
						const char *cmd);

/* The transcript (DIR/ceremony/transcript.json) as bytes; malloc'd. */
KJ_MUST_CHECK int kj_ceremony_transcript(const char *state, uint8_t **buf,
					 size_t *len);

#endif
