/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the bundle parser: the parts of evidence_parse.c that the
 * streaming loader (evidence_stream.c) applies to the members it reads,
 * so both check exactly the same things.
 */
#ifndef KINJECT_EVIDENCE_INT_H
#define KINJECT_EVIDENCE_INT_H

#include <stdio.h>
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

/*
 * evidence_fast.c: records[i] in the plain form export writes, without
 * jansson: 0 (r filled, as kj_ev_parse_record would), 1 for anything
 * else (r empty: parse it with jansson and kj_ev_parse_record).
 */
KJ_MUST_CHECK int kj_ev_fast_record(const uint8_t *p, size_t len,
				    size_t n_ck, struct kj_ev_record *r);

/*
 * evidence_write.c: records[] element (a comma first unless first) to f,
 * byte for byte what json_dumpf(JSON_COMPACT) wrote; *buf (of *cap bytes)
 * is reused between calls, grown as needed.  0, -ENOMEM or -EIO.
 */
KJ_MUST_CHECK int kj_ev_write_record(FILE *f, bool first, uint64_t seq,
				     uint64_t ck, const uint8_t *jcs,
				     size_t len, const uint8_t (*proof)[32],
				     int n, char **buf, size_t *cap);

#endif
