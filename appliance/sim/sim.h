/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Simulated programming sockets (SPEC.md §4 `kinject sim`): one epoll loop
 * per worker thread drives its share of N connections (one loop unless
 * opts.workers says more), each behaving as a real site of PROTOCOL.md:
 * HELLO with a unique uid, OFFER + DATA received, readback digest computed
 * over the bytes actually received, READBACK, then COMMIT or ABORT, next
 * device.  Fault knobs make chosen devices fail in chosen ways; hostile
 * modes make chosen connections attack the appliance.  Every outcome is
 * classified as intended (what the knobs asked for) or unexpected.
 */
#ifndef KINJECT_SIM_H
#define KINJECT_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "base/kinject.h"
#include "wire/proto.h"

/* Connection-level behaviour of the hostile sockets (--hostile-sockets). */
enum kj_sim_hostile {
	KJ_SIM_HOSTILE_NONE = 0,
	KJ_SIM_GARBAGE,	   /* random bytes instead of frames */
	KJ_SIM_HUGE_LENGTH, /* a frame header announcing 4 GiB */
	KJ_SIM_SLOW_LORIS,  /* HELLO dribbled one byte per interval */
	KJ_SIM_VANISH,	    /* every device: connection dropped mid-stream */
	KJ_SIM_HALF_OPEN,   /* HELLO, then never reads nor writes again */
};

#define KJ_SIM_WORKERS_MAX 64

struct kj_sim_opts {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	const char *connect; /* as given, for messages */
	unsigned sockets;
	/*
	 * Site loops, one thread each (sim_workers.c), 0 or 1 = one; each
	 * takes a contiguous share of the sockets, all share --devices.
	 */
	unsigned workers;
	uint64_t devices;     /* COMMITs to reach */
	const char *hwrev;
	const char *site;
	unsigned socket_base; /* HELLO socket = base + index */
	uint64_t uid_seed;    /* first 8 uid bytes: unique per run */
	uint64_t rng_seed;    /* fault draws, reproducible */
	/* per-device fault rates, 0..1, sum < 1 */
	double bad_readback_rate;
	double disconnect_rate;
	double wrong_hwrev_rate;
	double duplicate_rate;
	double site_abort_rate;
	unsigned program_delay_ms;
	unsigned slow_read_ms;	 /* read 4 KiB per this many ms */
	unsigned slow_sockets;	 /* the first K sockets read slowly */
	enum kj_sim_hostile hostile;
	unsigned hostile_sockets; /* the last K sockets are hostile */
	unsigned slow_loris_ms;
	uint32_t expect_mask;	  /* bit c: ABORT code c counts as intended */
	unsigned timeout_s;	  /* no progress for this long: error */
	unsigned connect_wait_s;  /* retry refused connects at start */
	/*
	 * Appliance restarts (crash tests): a connection closed or reset
	 * mid-device ends that device (counted in err_closed, not as
	 * unexpected) and the socket connects again, retrying refused
	 * connects for connect_wait_s.
	 */
	bool reconnect;
	FILE *device_log;	  /* JSON Lines, one per device, or NULL */
	/*
	 * The device's own key (sim_dev.c): every device gets a fresh P-256
	 * key, sent as HELLO device_pubkey; with a device CA (PEM files) it
	 * also gets a factory certificate and answers CHALLENGE with PROOF.
	 */
	bool device_keys;
	/*
	 * tls:HOST:PORT (sim_tls.h): TLS 1.3 with the site certificate and
	 * key, the appliance's tls.pem pinned.  Not with --slow-sockets
	 * (OpenSSL holds a read record the poll cannot see).
	 */
	bool tls;
	const char *tls_cert, *tls_key, *tls_ca;
	const char *device_ca_cert, *device_ca_key;
	double counterfeit_rate;  /* fault: a proof that must be refused */
	/* "inject": open every cred_blob with the device key and check it */
	bool check_inject;
	/* "issue": the cred_blob is a certificate for the device key by this
	 * CA (PEM file) */
	const char *issuing_ca;
};

struct kj_sim_result {
	uint64_t attempted;	/* devices that sent a HELLO (normal sockets) */
	uint64_t committed;
	uint64_t intended;	/* ended as the knobs asked (incl. committed) */
	uint64_t unexpected;	/* ended otherwise */
	uint64_t aborts[KJ_ABORT_MAX + 1]; /* ABORTs received, by code */
	/* faults injected */
	uint64_t bad_readbacks, disconnects, wrong_hwrevs, duplicates,
		site_aborts, counterfeits;
	uint64_t proofs;	/* PROOFs sent */
	uint64_t creds_opened;	/* cred_blobs opened (inject) or issued
				 * certificates checked (issue) */
	/* hostile connections */
	uint64_t hostile_attempts, hostile_intended, hostile_unexpected;
	/* errors, each also counted in unexpected where it ended a device */
	uint64_t err_connect;	 /* refused, reset before HELLO, ... */
	uint64_t err_tls;	 /* TLS handshakes that failed */
	uint64_t err_closed;	 /* appliance closed mid-device */
	uint64_t err_appliance;	 /* appliance broke PROTOCOL.md */
	uint64_t err_stalled;	 /* no progress within --timeout */
	unsigned sockets_ended;	 /* STOPPED, UNAUTHORIZED, gone after QUOTA */
	unsigned sockets_failed; /* gave up after an unexpected outcome */
	bool interrupted;	 /* SIGINT/SIGTERM */
	uint64_t bytes_received;
	double seconds;		/* the whole run */
	/*
	 * Time with at least one device of a normal socket between OFFER and
	 * its end: the rate's denominator, so idle waits (connecting, QUOTA
	 * retries, the job's end held up by a hostile site) do not dilute
	 * devices/s.
	 */
	double busy_seconds;
	double devices_per_s;	/* committed / busy_seconds */
	/*
	 * The rate between the first and the last wave: from the COMMIT that
	 * made as many as there are sockets to the one that left as many to
	 * go (0 without --devices, or with fewer than three times as many
	 * as sockets).  The start (every socket connecting, the appliance
	 * accepting them all, the pipeline filling) and the end (sockets
	 * running out of devices, the last COMMITs waiting for the job's
	 * final quote) are left out, as the pump's steady rate leaves out
	 * its own (tests/bench/pump.c), so the two compare the line in
	 * operation.
	 */
	double steady_devices_per_s;
	/*
	 * HELLO -> COMMIT latencies in microseconds, committed devices; the
	 * top bit (KJ_SIM_LAT_FIRST) marks a socket's first device, whose
	 * HELLO went out with every other socket's while the appliance
	 * accepted them all: the start-up, apart from the line's steady
	 * state (kj_sim_percentile_steady).
	 */
	uint32_t *latency_us;
	size_t n_latency;
};

#define KJ_SIM_LAT_FIRST 0x80000000u

/* Load the device CA of o (sim_dev.c); 0 or -errno (logged). */
KJ_MUST_CHECK int kj_sim_dev_load(const struct kj_sim_opts *o);
void kj_sim_dev_unload(void);

/* Parse unix:PATH or tcp:HOST:PORT (loopback only, no TLS yet). */
KJ_MUST_CHECK int kj_sim_parse_addr(const char *spec, struct kj_sim_opts *o);

/*
 * Run until `devices` COMMITs (or, when every socket is hostile, that many
 * hostile attempts), until every socket ended, or a signal.  Raises
 * RLIMIT_NOFILE for the sockets.  0, or a negative errno for a setup
 * failure (logged); outcomes are in r.  Free r with kj_sim_result_free.
 */
KJ_MUST_CHECK int kj_sim_run(const struct kj_sim_opts *o,
			     struct kj_sim_result *r);
void kj_sim_result_free(struct kj_sim_result *r);

/* p in 0..100 over r->latency_us (sorted in place); 0 when empty. */
uint32_t kj_sim_percentile(struct kj_sim_result *r, double p);
/* The same over the devices after each socket's first; *n: how many. */
uint32_t kj_sim_percentile_steady(struct kj_sim_result *r, double p,
				  size_t *n);

#endif
