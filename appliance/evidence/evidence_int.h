/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the bundle parser: the parts of evidence_parse.c that the
 * streaming loader (evidence_stream.c) applies to the members it reads,
 * so both check exactly the same things.
 */
#ifndef KINJECT_EVIDENCE_INT_H
#define KINJECT_EVIDENCE_INT_H

#include <jansson.h>

#include "evidence.h"

/* The top level's keys and version, appliance, event_log, checkpoints. */
KJ_MUST_CHECK int kj_ev_parse_head(const json_t *root, const char *file,
				   struct kj_evidence *ev);
/* "consistency" (after the head: it needs n_checkpoints). */
KJ_MUST_CHECK int kj_ev_parse_tail(const json_t *root, const char *file,
				   struct kj_evidence *ev);
/* records[i] of a bundle with n_ck checkpoints. */
KJ_MUST_CHECK int kj_ev_parse_record(const json_t *o, const char *file,
				     size_t i, size_t n_ck,
				     struct kj_ev_record *r);

#endif
