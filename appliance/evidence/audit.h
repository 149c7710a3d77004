/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `kinject audit verify`: the appliance's own check of its journal against
 * its transparency log and TPM checkpoints (SPEC.md §4): every record
 * canonical and gap-free (seq, and job_seq per job, job_end counts), the
 * Merkle tree rebuilt from the leaves matches every checkpoint root,
 * nv_counter strictly increases, and, with the AK public area, every quote
 * verifies against the replayed event log.
 */
#ifndef KINJECT_AUDIT_H
#define KINJECT_AUDIT_H

#include <stdio.h>

#include "base/kinject.h"
#include "journal/journal.h"

/*
 * Run the checks on j, printing one line per check to out.  ak_pub: a
 * marshalled TPM2B_PUBLIC (DIR/ak.pub) or NULL to skip the quotes.
 * Returns 0 if every check passed, -EBADMSG if one failed, or another
 * negative errno (logged) if the journal could not be read.
 */
KJ_MUST_CHECK int kj_audit_verify(struct kj_journal *j, const uint8_t *ak_pub,
				  size_t ak_pub_len, FILE *out);

#endif
