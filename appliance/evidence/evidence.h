/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The evidence bundle of EVIDENCE.md §5: export from a state dir, and the
 * strict parser `kinject verify` (and its fuzz target) uses.
 *
 * Export (`kinject evidence export --state DIR --job ID --out FILE`):
 *   appliance   ak_public_pem (DIR/ak.pem), ak_public (DIR/ak.pub, base64
 *               TPM2B_PUBLIC), ak_name (DIR/ak.name, hex),
 *               ek_certificate_pem (DIR/ek.pem or null),
 *               transport_cert_pem (DIR/transport.pem or null),
 *               secret_memory (journal meta KJ_META_SECRET_MEMORY, which
 *               the keeper sets at run start; null if never set),
 *               code_measured_by ("boot": the image's init measured the
 *               code, the quotes cover PCRs 4 and 9 too; "self": the job
 *               measured its own binary; journal meta KJ_META_CODE_BY,
 *               null if never set),
 *               ceremony_transcript (DIR/ceremony/transcript.json as
 *               written, keys sorted and compact; null before a ceremony)
 *               tpm_orderly_count (journal meta KJ_META_TPM_ORDERLY, the
 *               TPM's TPM_PT_ORDERLY_COUNT read at run start; required)
 *   event_log   every entry (all epochs; "void": true only when voided)
 *   checkpoints the consecutive checkpoints from the first whose tree
 *               covers the job's first record (tree_size > its seq) to the
 *               first that covers its last record
 *   records     every record of the job in job_seq order, each with an
 *               inclusion proof against the first included checkpoint
 *               that covers it ("checkpoint" = index into checkpoints[])
 *   consistency {from: i, to: i + 1} for consecutive included checkpoints
 * The Merkle tree is rebuilt from the journal's records; a checkpoint
 * whose root differs from the rebuilt tree fails the export (-EBADMSG).
 * A job record no checkpoint covers yet fails too (-EAGAIN: take one).
 *
 * Parsing: jansson with JSON_REJECT_DUPLICATES, exactly the keys above, the
 * sizes bounded below, hex lowercase of exact length, base64 canonical.
 */
#ifndef KINJECT_EVIDENCE_H
#define KINJECT_EVIDENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/eventlog.h"
#include "attest/mtree.h"
#include "attest/tpm_defs.h"
#include "base/kinject.h"

#define KJ_EVIDENCE_VERSION 1               /* "kinject_evidence" */
/* bytes of a bundle parsed in memory (kj_evidence_parse), and of one
 * member of a streamed one (kj_evidence_load has no limit on the file) */
#define KJ_EVIDENCE_FILE_MAX (1024u << 20)
#define KJ_EVIDENCE_MAX_RECORDS 20000000u
#define KJ_EVIDENCE_MAX_CHECKPOINTS 10000000u
#define KJ_EVIDENCE_MAX_EVENTS 65536u
#define KJ_EVIDENCE_PEM_MAX 65536u
/* The ceremony transcript: up to 32 officers' certificates, twice. */
#define KJ_EVIDENCE_TRANSCRIPT_MAX (1u << 20)
#define KJ_EVIDENCE_ATTEST_MAX 2048u        /* marshalled TPMS_ATTEST */
#define KJ_EVIDENCE_SIG_MAX 1024u           /* marshalled TPMT_SIGNATURE */
/* journal meta key of the arena backend: "memfd_secret|kmod|mlock" */
#define KJ_META_SECRET_MEMORY "secret_memory"

struct kj_ev_checkpoint {
	uint64_t tree_size;
	uint8_t root[32];
	uint64_t nv_counter;
	uint32_t epoch;
	uint64_t event_log_length;
	uint8_t *attest;
	size_t attest_len;
	uint8_t *sig;
	size_t sig_len;
	uint32_t pcr_mask;                  /* the keys of "pcrs" */
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32];
};

struct kj_ev_record {
	uint64_t leaf_index;
	uint64_t checkpoint;                /* index into checkpoints[] */
	char *jcs;                          /* the record's JCS bytes + NUL */
	size_t jcs_len;
	uint8_t (*proof)[32];
	size_t proof_len;
};

struct kj_ev_consistency {
	uint64_t from, to;                  /* indexes into checkpoints[] */
	uint8_t (*proof)[32];
	size_t proof_len;
};

struct kj_ev_stream;

struct kj_evidence {
	char *ak_public_pem;
	uint8_t *ak_public;                 /* marshalled TPM2B_PUBLIC */
	size_t ak_public_len;
	uint8_t ak_name[KJ_TPM_NAME_LEN];
	size_t ak_name_len;
	char *ek_cert_pem;                  /* NULL: null */
	char *transport_cert_pem;           /* NULL: null */
	char *secret_memory;                /* NULL: null */
	char *code_measured_by;             /* "boot", "self"; NULL: null */
	char *ceremony_transcript;          /* NULL: null (transcript text) */
	uint64_t tpm_orderly_count;         /* §4: the counter's jump bound */
	struct kj_event *events;
	size_t n_events;
	struct kj_ev_checkpoint *checkpoints;
	size_t n_checkpoints;
	struct kj_ev_record *records;
	size_t n_records;
	struct kj_ev_consistency *consistency;
	size_t n_consistency;
	/* kj_evidence_load: the records stay in the file (records is NULL,
	 * n_records 0) and kj_evidence_next_record reads them one by one. */
	struct kj_ev_stream *stream;
};

/* Base64 (RFC 4648, padded, one line): malloc'd string, NULL on ENOMEM. */
char *kj_base64_encode(const uint8_t *in, size_t len);
/* Canonical base64 only (what kj_base64_encode writes); -EINVAL (silent). */
KJ_MUST_CHECK int kj_base64_decode(const char *in, size_t len, uint8_t **out,
				   size_t *out_len);

/* Write the bundle of job to out_path (atomically).  Logs on failure. */
KJ_MUST_CHECK int kj_evidence_export(const char *state_dir, const char *job,
				     const char *out_path);

/*
 * Parse a bundle strictly (structure, types, sizes, encodings; not the
 * cryptography: that is verify.h).  file names it in messages.  -EBADMSG
 * (logged, naming the JSON path) or -ENOMEM.  Free with kj_evidence_free.
 */
KJ_MUST_CHECK int kj_evidence_parse(const uint8_t *buf, size_t len,
				    const char *file, struct kj_evidence *ev);
/*
 * The same from a file, streamed (evidence_stream.c): everything but the
 * records is parsed now; the records are read one at a time by
 * kj_evidence_next_record, so memory does not grow with the bundle.  A
 * bundle whose "records" come before "checkpoints" is read twice (the
 * records skipped, then sought back to).
 */
KJ_MUST_CHECK int kj_evidence_load(const char *path, struct kj_evidence *ev);
/*
 * The next record of a loaded bundle into r (free with
 * kj_ev_record_release): 1, 0 after the last one (the rest of the file is
 * then parsed: "consistency" may follow the records), or -EBADMSG /
 * -ENOMEM / -EIO (logged, naming the record).
 */
KJ_MUST_CHECK int kj_evidence_next_record(struct kj_evidence *ev,
					  struct kj_ev_record *r);
void kj_ev_record_release(struct kj_ev_record *r);
void kj_ev_stream_close(struct kj_ev_stream *s);
void kj_evidence_free(struct kj_evidence *ev);

#endif
