/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The journal (EVIDENCE.md §1): SQLite in DIR/journal.db, WAL mode,
 * synchronous=FULL.  Records, credential reservations, jobs, the PCR event
 * log, TPM checkpoints and a small key/value table.  Never key material or
 * firmware: a credential appears as its index and cert_sha256 only.
 *
 * Writes are grouped: every write call joins the open transaction, and
 * nothing it wrote is durable until kj_journal_commit() returned 0 (one
 * transaction, one WAL fsync, covering everything since the previous
 * commit).  The keeper therefore:
 *   - sends no byte of a credential before a commit covering its
 *     kj_journal_reserve() returned;
 *   - sends COMMIT to a site only after a commit covering the device's
 *     kj_journal_append_record() returned;
 *   - quotes a checkpoint only over a tree of committed records.
 * Any write or commit failure (SQLITE_FULL: -ENOSPC; else -EIO) rolls the
 * open transaction back and poisons the handle: every later write fails
 * with the same error, in-memory counters may be ahead of the disk, and
 * the caller must stop issuing and exit; a rerun resumes from what was
 * committed.  docs/JOURNAL.md has the schema and the durability argument.
 *
 * One thread uses a handle.  Read-write opens are exclusive per state dir
 * (flock on DIR/journal.lock): only the keeper writes.  A read-only handle
 * (audit, evidence export, possibly during a job) sees one snapshot, the
 * journal as committed when it was opened, for all its reads.
 */
#ifndef KINJECT_JOURNAL_H
#define KINJECT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "record.h"

#define KJ_JOURNAL_FILE "journal.db"
#define KJ_JOURNAL_SCHEMA 3       /* PRAGMA user_version (1, 2 migrated) */
#define KJ_SERIAL_MAX 256         /* OFFER str8: prefix + decimal + NUL */
#define KJ_JOURNAL_PCR_COUNT 24

struct kj_journal;

enum kj_journal_flags {
	KJ_JOURNAL_RDONLY = 1u << 0, /* audit, evidence export: no lock */
};

/*
 * Open (read-write: create if missing) DIR/journal.db.  Read-write also
 * takes the state dir's lock (-EBUSY, logged, if another keeper holds it)
 * and burns reservations left open by a crash (`reserved', no record):
 * each becomes a `device' record with result `interrupted' (its attempt,
 * serial, credential and HELLO fields kept), committed before this
 * returns.
 */
KJ_MUST_CHECK int kj_journal_open(const char *dir, unsigned flags,
				  struct kj_journal **out);
/* Rolls back anything not committed.  NULL is fine. */
void kj_journal_close(struct kj_journal *j);

/* ---- jobs --------------------------------------------------------------- */

/* One credential of the batch: its index and SHA-256 of its cert DER. */
struct kj_cred_ref {
	uint64_t index;
	uint8_t cert_sha256[32];
};

struct kj_job_desc {
	const char *job; /* work order "id" */
	const char *customer;
	const char *product;
	const char *batch;
	const char *operator_id; /* --operator of this run */
	uint8_t work_order_sha256[32];
	uint64_t quantity;
	const char *fw_version;
	uint8_t fw_sha256[32];
	const char *serial_prefix;
	uint64_t serial_start;
	/* SHA-256 of the batch as brought (CREDS.cms): a resumed job must
	 * bring the same one. */
	uint8_t creds_sha256[32];
	/* The batch in file order; borrowed until kj_journal_close.  A
	 * credential whose cert_sha256 any other job of this journal has
	 * reserved is skipped: a credential is used once, ever. */
	const struct kj_cred_ref *creds;
	size_t n_creds;
};

struct kj_job_state {
	bool resumed;            /* the job had started in an earlier run */
	bool ended;              /* its job_end record exists */
	enum kj_result end_result; /* completed|failed when ended */
	uint64_t ok_count;       /* device records with result ok */
	uint64_t other_count;    /* every other device record */
	uint64_t failed_after_offer; /* the ones counted against max_failed */
	uint64_t next_serial;    /* number the next reservation gets */
	uint64_t next_job_seq;
	uint64_t creds_used;     /* indexes reserved or done, ever */
	uint64_t creds_left;     /* batch entries never reserved */
	uint64_t open_reservations; /* reserved by this handle, no record yet:
				     * must be 0 before a clean exit, else the
				     * next open burns them as interrupted */
};

/*
 * Make d the handle's job.  New job: its row and its job_start record
 * (job_seq 0) are written (durable at the next commit).  Known job: the
 * work order hash must match (-EEXIST, logged, else); the state is loaded.
 * Either way *st (may be NULL) tells where the job stands.  d's strings are
 * copied; d->creds is borrowed.
 */
KJ_MUST_CHECK int kj_journal_job_begin(struct kj_journal *j,
				       const struct kj_job_desc *d,
				       struct kj_job_state *st);
/* The current job's counts (after every append so far, committed or not). */
void kj_journal_job_state(const struct kj_journal *j, struct kj_job_state *st);

/* True if uid already has an `ok` device record in the current job
 * (DUPLICATE).  <0 on a database error. */
KJ_MUST_CHECK int kj_journal_uid_done(struct kj_journal *j, const uint8_t *uid,
				      size_t uid_len);

/* ---- reservations and records ------------------------------------------- */

struct kj_reservation {
	uint64_t attempt;         /* OFFER attempt, unique per state dir */
	uint64_t cred_index;
	size_t cred_pos;          /* position in d->creds */
	uint8_t cert_sha256[32];
	uint64_t serial_no;
	char serial[KJ_SERIAL_MAX]; /* prefix + decimal serial_no */
};

/*
 * Reserve the next never-used credential of the batch, the next serial and
 * a fresh attempt id for the device that sent HELLO (hello: site, socket,
 * uid, uid_len, hwrev; kept so a crash can record it as `interrupted`).
 * -ENOBUFS (logged) when the batch is exhausted.  Durable after the next
 * kj_journal_commit(): send nothing before.
 */
KJ_MUST_CHECK int kj_journal_reserve(struct kj_journal *j,
				     const struct kj_record *hello,
				     struct kj_reservation *out);

/* Copy a reservation's attempt, serial and credential into a device
 * record (r->serial then points into res). */
void kj_record_set_reservation(struct kj_record *r,
			       const struct kj_reservation *res);

/*
 * Append a `device` record of the current job in completion order.  The
 * journal fills seq, job_seq, time_ms (if 0) and the job's fields (job,
 * customer, product, batch, operator, fw_version, fw_sha256); the caller
 * fills the device fields.  A record with has_attempt closes its
 * reservation (which must be open, of this job, with the same serial and
 * credential).  *jcs / *len (may be NULL) get the JCS bytes, valid until
 * the next call on j: the leaf for the Merkle tree.  Durable after the
 * next commit: send COMMIT only then.
 */
KJ_MUST_CHECK int kj_journal_append_record(struct kj_journal *j,
					   struct kj_record *r,
					   const uint8_t **jcs, size_t *len);

/*
 * `withdrawn` (EVIDENCE.md §2): append the second record of attempt, the
 * current job's `ok` record with its fields and result `withdrawn`: its
 * COMMIT was never sent.  -ENOENT (logged) if the attempt has no `ok`
 * record in the job, -EALREADY (logged) if it is withdrawn already.
 * *jcs / *len as kj_journal_append_record; out (may be NULL) gets seq.
 */
KJ_MUST_CHECK int kj_journal_withdraw(struct kj_journal *j, uint64_t attempt,
				      uint64_t *seq, const uint8_t **jcs,
				      size_t *len);

/*
 * Resume after a crash (§2): every `ok` record of the current job at a
 * seq >= tree_size (beyond the last durable checkpoint) and not withdrawn
 * yet was certainly never COMMITted: append its `withdrawn` record.  *n
 * gets how many; committed before it returns.
 */
KJ_MUST_CHECK int kj_journal_withdraw_beyond(struct kj_journal *j,
					     uint64_t tree_size, uint64_t *n);

/*
 * Append the current job's job_end record: result completed when ok_count
 * equals the quantity, else failed; counts from the journal.  Call once
 * the last device record is appended; then commit.
 */
KJ_MUST_CHECK int kj_journal_job_end(struct kj_journal *j,
				     struct kj_record *out_rec,
				     const uint8_t **jcs, size_t *len);

/* ---- group commit -------------------------------------------------------- */

/* Make everything written since the last commit durable (one transaction,
 * one WAL fsync).  0 with nothing pending is a no-op. */
KJ_MUST_CHECK int kj_journal_commit(struct kj_journal *j);
/* Writes (reservations, records, …) waiting for the next commit. */
size_t kj_journal_pending(const struct kj_journal *j);

struct kj_journal_stats {
	uint64_t commits;      /* transactions committed */
	uint64_t fsyncs;       /* xSync calls SQLite made (WAL, db, dir) */
	uint64_t records;      /* records appended by this handle */
	uint64_t reservations; /* reservations made by this handle */
	uint64_t flushes;      /* bulk flushes (journal_bulk.c) */
	uint64_t ok_uids_held; /* ok records' uids held until the next flush */
	uint64_t ok_uids_bytes; /* the memory they take */
};
void kj_journal_stats(const struct kj_journal *j, struct kj_journal_stats *st);

/*
 * Records between two bulk flushes inside the group commit (docs/JOURNAL.md
 * "Schema": reservations closed, uid_seen filled), so that the uids of
 * the running job's ok records held in memory meanwhile stay bounded (16
 * bytes each, the table under half full: 8 MiB).  0: the default.
 */
#define KJ_JOURNAL_FLUSH_RECORDS 262144
void kj_journal_set_flush(struct kj_journal *j, uint64_t records);

/* ---- reading ------------------------------------------------------------ */

/* Records in the log (the next seq = the Merkle tree size), including
 * uncommitted ones of this handle. */
uint64_t kj_journal_record_count(const struct kj_journal *j);

/* cb returns 0 to go on, > 0 to stop (foreach returns it), < 0 to fail. */
typedef int (*kj_journal_record_cb)(void *ctx, uint64_t seq,
				    const uint8_t *jcs, size_t len);
/* Records with seq >= from_seq in seq order; job NULL: all jobs.  The jcs
 * pointer is valid during the callback only. */
KJ_MUST_CHECK int kj_journal_foreach_record(struct kj_journal *j,
					    uint64_t from_seq, const char *job,
					    kj_journal_record_cb cb, void *ctx);

/* ---- PCR event log (EVIDENCE.md §4) ------------------------------------- */

/* Append an entry; *index (may be NULL) = its position, from 0.  Commit
 * before sending the extend. */
KJ_MUST_CHECK int kj_journal_add_event(struct kj_journal *j, uint32_t epoch,
				       uint32_t pcr, const char *name,
				       const uint8_t digest[32],
				       uint64_t *index);
/* Mark entry index void (its extend never reached the TPM). */
KJ_MUST_CHECK int kj_journal_void_event(struct kj_journal *j, uint64_t index);
uint64_t kj_journal_event_count(const struct kj_journal *j);

typedef int (*kj_journal_event_cb)(void *ctx, uint64_t index, uint32_t epoch,
				   uint32_t pcr, const char *name,
				   const uint8_t digest[32], bool is_void);
KJ_MUST_CHECK int kj_journal_foreach_event(struct kj_journal *j,
					   kj_journal_event_cb cb, void *ctx);

/* ---- TPM checkpoints (EVIDENCE.md §4) ------------------------------------ */

struct kj_journal_checkpoint {
	uint64_t id;               /* position, from 0; filled on add */
	uint64_t tree_size;
	uint8_t root[32];
	uint64_t nv_counter;
	uint32_t epoch;
	uint64_t event_log_length;
	const uint8_t *quote_attest; /* TPMS_ATTEST as marshalled */
	size_t attest_len;
	const uint8_t *quote_sig;    /* TPMT_SIGNATURE as marshalled */
	size_t sig_len;
	uint32_t pcr_mask;           /* SHA-256 bank */
	uint8_t pcrs[KJ_JOURNAL_PCR_COUNT][32]; /* indexed by PCR, in mask */
	uint64_t time_ms;            /* 0: now */
};

/* Append a checkpoint (fills c->id).  nv_counter must exceed the last
 * one's (-EINVAL, logged, else). */
KJ_MUST_CHECK int kj_journal_add_checkpoint(struct kj_journal *j,
					    struct kj_journal_checkpoint *c);
uint64_t kj_journal_checkpoint_count(const struct kj_journal *j);

/* Checkpoints with id >= from_id in order; pointers valid during cb. */
typedef int (*kj_journal_checkpoint_cb)(void *ctx,
				const struct kj_journal_checkpoint *c);
KJ_MUST_CHECK int kj_journal_foreach_checkpoint(struct kj_journal *j,
						uint64_t from_id,
						kj_journal_checkpoint_cb cb,
						void *ctx);

/* ---- small key/value state (ceremony, appliance) ----------------------- */

KJ_MUST_CHECK int kj_journal_meta_set(struct kj_journal *j, const char *key,
				      const void *val, size_t len);
/* *val malloc'd (free it); -ENOENT (silent) if absent. */
KJ_MUST_CHECK int kj_journal_meta_get(struct kj_journal *j, const char *key,
				      uint8_t **val, size_t *len);

#endif
