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

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "base/kinject.h"
#include "officers.h"

#define KJ_CEREMONY_INIT_REQ "ceremony/init.req"
#define KJ_CEREMONY_TRANSCRIPT "ceremony/transcript.json"

struct kj_ceremony_init_args {
	const char *state, *hsm_uri, *pin_source, *tcti;
	const char *const *officers;
	unsigned n_officers, threshold;
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
