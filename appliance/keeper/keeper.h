/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keeper side of `kinject run` (SPEC.md §2, PROTOCOL.md, docs/ENGINE.md):
 * forks the injector workers, serves their requests from a dispatch table,
 * applies the per-device policy, writes the journal with group commit, and
 * starts a fresh injector when one dies (its devices in flight are recorded
 * `internal`).  No network I/O happens in this process.
 *
 * The caller (cmd_run.c) loads and checks the inputs, fills the arena, opens
 * the journal and begins the job (kj_journal_job_begin), parses the --listen
 * values, then calls kj_keeper_run().  Per device the keeper:
 *   HELLO  -> sites (UNAUTHORIZED), hwrev (LOCKED_OUT), uid done or in
 *             flight (DUPLICATE), stop/quantity/max_failed (STOPPED/QUOTA)
 *             -> refusal record, or kj_journal_reserve();
 *             commit; then OFFER (or ABORT) to the injector;
 *   READBACK -> expected digest (precomputed firmware part) vs the site's
 *             -> device record ok or readback; commit; [checkpoint hook];
 *             then COMMIT (or ABORT READBACK);
 *   failure after OFFER -> device record with its result.
 */
#ifndef KINJECT_KEEPER_H
#define KINJECT_KEEPER_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "injector/listen.h"
#include "inputs/creds.h"
#include "inputs/issuer.h"
#include "inputs/product.h"
#include "inputs/sites.h"
#include "inputs/tls_key.h"
#include "inputs/workorder.h"
#include "journal/journal.h"
#include "journal/record.h"
#include "secret/arena.h"
#include "wire/readback.h"

/*
 * A line of 10,000 programming sockets is served at the default; a slot
 * costs address space only until a connection uses it (docs/ENGINE.md
 * "Memory": about 4.5 KiB in the injector and 1 KiB in the keeper per
 * connection in use).
 */
#define KJ_MAX_CONNECTIONS_DEFAULT 4096u /* PROTOCOL.md "Limits" */

struct kj_keeper_limits {
	unsigned workers;	     /* injector processes; 0: one per core */
	unsigned max_connections;    /* total over workers; 0: 4096 */
	unsigned hello_timeout_ms;   /* 0: 600000 */
	unsigned program_timeout_ms; /* 0: 120000 */
	unsigned commit_interval_ms; /* min time between journal commits,
				      * bounds fsyncs/s; 0: 2 */
	unsigned progress_interval_ms; /* progress callback; 0: 250 */
	unsigned max_restarts;	     /* injector crashes tolerated; 0: 100 */
	unsigned tls_sign_rate;	     /* TLS signatures/s; 0: keeper_sign.h */
	unsigned tls_sign_burst;     /* at once; 0: keeper_sign.h */
};

/* A snapshot for progress displays and the summary. */
struct kj_keeper_stats {
	uint64_t quantity;
	uint64_t ok;		     /* job total, earlier runs included */
	uint64_t failed_after_offer; /* job total: counts against max_failed */
	uint64_t in_flight;	     /* OFFERed, not ended */
	uint64_t results[KJ_RES_COUNT_]; /* device records of this run */
	uint64_t run_ok;	     /* ok records of this run */
	uint64_t hellos;	     /* admit requests this run */
	uint64_t commits;	     /* journal commits this run */
	uint64_t injector_restarts;
	uint64_t sandbox_violations; /* injectors killed by seccomp (SIGSYS) */
	/* summed over the injectors' last COUNTERS */
	uint64_t conns_accepted, conns_open, pre_hello_failures, over_limit;
	uint64_t refusal_closed;     /* connections closed: refusal budget */
	uint64_t conns_accepted_max; /* by one injector's run: the spread */
	uint64_t bytes_sent;
	/* TLS listeners (docs/TLS.md): handshakes done with kTLS or with
	 * user-space records, refused (pre-HELLO, counted); CertificateVerify
	 * signatures made, refused over the rate limit */
	uint64_t tls_ktls, tls_user, tls_refused;
	uint64_t tls_signed, tls_sign_limited;
	uint64_t elapsed_ms;
	bool issuing;		     /* false once stop/quantity/max_failed */
};

/* Why kj_keeper_run returned (>= 0). */
enum kj_keeper_end {
	KJ_KEEPER_COMPLETED = 0, /* quantity reached; job_end written */
	KJ_KEEPER_MAX_FAILED,	 /* max_failed exceeded; job_end written */
	KJ_KEEPER_STOPPED,	 /* *stop was set: resumable, no job_end */
	KJ_KEEPER_EXHAUSTED,	 /* the credential batch ran out: no job_end */
	KJ_KEEPER_TPM_LOST,	 /* hooks.committed: KJ_KEEPER_ATTEST_LOST;
				  * waiting COMMITs withdrawn, no job_end */
	KJ_KEEPER_HSM_LOST,	 /* issue mode: the HSM went away (-ENODEV
				  * from the issuer): no job_end */
};

/*
 * hooks.committed returns this when the attestation is gone for good (the
 * TPM stopped answering or failed; already logged, naming it).  The keeper
 * then sends ABORT INTERNAL to every device whose `ok` record no
 * checkpoint covers, appends their `withdrawn` records (EVIDENCE.md §2),
 * issues no more, lets what is in flight end the same way and returns
 * KJ_KEEPER_TPM_LOST.
 */
#define KJ_KEEPER_ATTEST_LOST (-ENODEV)

struct kj_keeper_hooks {
	void *ctx;
	/* Every record appended (JCS bytes, seq = leaf index), in order, so
	 * the caller can extend its Merkle tree.  < 0 stops the job. */
	int (*record)(void *ctx, uint64_t seq, const uint8_t *jcs,
		      size_t len);
	/*
	 * After each journal commit: records [0, tree_size) are durable.
	 * Set *covered to the size of the tree a checkpoint already attests
	 * (commit_after_checkpoint, EVIDENCE.md §4); COMMITs are sent only
	 * for records below it.  NULL: covered = tree_size.  Also called
	 * with no new records when COMMITs are waiting, so the caller can
	 * take its checkpoint on its own cadence.  KJ_KEEPER_ATTEST_LOST:
	 * see above; other < 0 stops the job at once.
	 */
	int (*committed)(void *ctx, uint64_t tree_size, uint64_t *covered);
	/* Progress, every progress_interval_ms and once at the end. */
	void (*progress)(void *ctx, const struct kj_keeper_stats *st);
	/* A device got its reservation (OFFER follows): hello holds its
	 * site and socket, for the operator's screen.  May be NULL. */
	void (*offered)(void *ctx, const struct kj_record *hello);
};

struct kj_job {
	/* Secrets: firmware and the credential table live in the arena. */
	struct kj_arena *arena;
	size_t fw_off;
	uint32_t fw_size;
	/* Read once, before the first injector starts: the keeper copies
	 * each credential's place and the firmware's readback midstate into
	 * its private memory and decides with those only. */
	const struct kj_creds *creds;

	/* Policy. */
	const struct kj_work_order *wo;
	const struct kj_product *product; /* device_ca; NULL: none */
	const struct kj_issuer *issuer;	  /* credential_mode issue */
	const struct kj_sites *sites; /* NULL: no --sites, any site */
	struct kj_journal *journal;   /* open, job begun */

	/* Network: parsed --listen values.  listen_fds: already bound and
	 * listening, one per value (the caller binds them before its first
	 * write, SPEC.md §4); the keeper takes them over and closes them.
	 * NULL: the keeper opens them itself. */
	const struct kj_listen *listen;
	const int *listen_fds;
	size_t n_listen;
	/* A tls: listener's tls.pem and site CAs (sent to the injectors),
	 * and the key in the HSM the keeper signs handshakes with
	 * (keeper_sign.h); NULL: no tls: listener. */
	const struct kj_tls_key *tls;

	struct kj_keeper_limits limits;
	struct kj_keeper_hooks hooks;

	/* Set from a SIGINT/SIGTERM handler: stop issuing, finish what is
	 * in flight, return KJ_KEEPER_STOPPED. */
	volatile sig_atomic_t *stop;
};

/*
 * Run the job to its end.  Returns an enum kj_keeper_end, or a negative
 * errno (logged: journal failure, cannot start an injector, too many
 * injector crashes); st (may be NULL) gets the final snapshot.
 */
KJ_MUST_CHECK int kj_keeper_run(struct kj_job *job,
				struct kj_keeper_stats *st);

#endif
