/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside kinject sim (sim.h): the connection and loop state shared by
 * sim.c (event loop, connecting), sim_site.c (one device as a site plays
 * it, PROTOCOL.md "Sequence") and sim_conn.c (timers and plumbing under
 * both).  Not for other modules.
 */
#ifndef KINJECT_SIM_INT_H
#define KINJECT_SIM_INT_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "base/log.h"
#include "wire/proto.h"
#include "wire/readback.h"
#include "sim.h"

#define RX_BUF (256 * 1024)
#define SLOW_READ_BYTES 4096
#define OUT_CAP 1024
#define GARBAGE_BYTES 1024
#define RECONNECT_MS 20
#define RETRY_MS 50
#define CONNECT_LINE_MS 2 /* the head of the connect line retries */
#define SIM_ABORT_MSG "kinject sim: simulated programming failure"

/*
 * When a device passed each step, by the wall clock (the journal's
 * time_ms is one too), for the device log's "t_us": where a device's
 * latency went can be read against the keeper's reservation and record
 * times and the checkpoints' (tests/bench/stages.py).
 */
enum { KJ_SIM_T_HELLO, KJ_SIM_T_OFFER, KJ_SIM_T_READBACK, KJ_SIM_T_COMMIT,
       KJ_SIM_STAMPS };

enum conn_state {
	C_IDLE,	       /* no connection; a T_CONNECT timer is pending */
	C_CONNECTING,  /* non-blocking connect in progress */
	C_TLS,	       /* TLS handshake in progress (sim_tls.c) */
	C_PARKED,      /* connected, no device: the COMMIT budget is taken */
	C_WAIT_OFFER,  /* HELLO sent */
	C_DATA,	       /* receiving DATA */
	C_PROGRAM,     /* all bytes in, simulated programming time */
	C_WAIT_RESULT, /* READBACK sent */
	C_HOSTILE,     /* attack sent, waiting for the appliance to react */
	C_SILENT,      /* half-open: never looked at again */
	C_DONE,	       /* socket finished */
};

enum fault {
	F_NONE,
	F_WRONG_HWREV,
	F_DUPLICATE,
	F_DISCONNECT,
	F_SITE_ABORT,
	F_BAD_READBACK,
	F_COUNTERFEIT,
};

enum timer_kind {
	T_NONE,
	T_CONNECT,
	T_PROGRAM,
	T_SLOW_READ,
	T_DRIBBLE,
	T_RETRY, /* HELLO again after QUOTA */
};

/*
 * After QUOTA a socket asks again this often (plus jitter): a device in
 * flight elsewhere may still fail and free its unit (PROTOCOL.md
 * "Quantity"); the socket stops when the appliance closes at job end.
 */
#define QUOTA_RETRY_MS 500

struct conn {
	int fd;
	uint32_t idx;
	uint8_t state, fault, timer_kind;
	bool hostile;	  /* one of the last --hostile-sockets */
	bool slow;	  /* one of the first --slow-sockets */
	uint64_t retry_until_ms; /* refused connects retried until then */
	bool in_device;	  /* a device attempt is open */
	bool offered;	  /* ... and got its OFFER */
	bool closed_unanswered; /* last connection closed on our HELLO */
	bool surprise;	  /* appliance accepted what it should refuse */
	bool reacted;	  /* hostile: appliance reacted this attempt */
	bool parked_listed;
	bool registered;  /* fd is in the epoll set */
	uint32_t events;  /* current epoll interest */
	uint32_t timer_gen;
	uint32_t dev_seq;
	uint64_t t_hello_us;
	uint64_t t_wall_us[KJ_SIM_STAMPS]; /* device log only */
	uint64_t last_progress_ms;
	uint64_t attempt;
	uint32_t fw_size, cred_size, fw_got, cred_got;
	uint64_t cut_at;
	uint8_t uid_len;
	uint8_t uid[KJ_UID_MAX];
	uint8_t digest[KJ_DIGEST_LEN];
	uint16_t out_len, out_off;
	uint8_t out[OUT_CAP];
	char serial[KJ_STR8_MAX + 1];
	struct kj_readback rb;
	struct kj_frame_parser parser;
	/* sim_dev.c: this device's key and, inject mode, its cred_blob */
	struct evp_pkey_st *dev_key;
	struct ssl_st *ssl; /* tls: the connection's TLS, else NULL */
	uint32_t tls_want;  /* C_TLS: the epoll event the handshake waits for */
	uint8_t *cred;
	uint32_t cred_cap;
};

struct timer {
	uint64_t at_ms;
	uint32_t idx, gen;
};

/*
 * What the workers of one run share (sim_workers.c): the COMMIT budget and
 * the end conditions, so N loops end and count as one.  reserved is
 * committed + normal devices in flight: a device starts only by taking a
 * unit of it (kj_sim_take_unit), so the workers never start more than
 * --devices between them.
 */
struct sim_shared {
	atomic_uint_fast64_t committed;	   /* normal devices COMMITted */
	atomic_uint_fast64_t wave_us;	   /* when committed reached the
					    * normal sockets' count */
	atomic_uint_fast64_t tail_us;	   /* when it reached --devices
					    * minus that: the last wave */
	atomic_uint_fast64_t reserved;	   /* committed + in flight */
	atomic_uint_fast64_t hostile_done; /* hostile attempts answered */
	atomic_uint normal_live;	   /* normal sockets not C_DONE */
	atomic_bool appliance_ending;	   /* a QUOTA or STOPPED was seen */
	atomic_bool stop;		   /* a worker hit a fatal error */
	unsigned normal_sockets;	   /* over all workers */
	unsigned n_workers;
	struct sim *workers;
};

/* A time span with a device between OFFER and its end (busy_seconds). */
struct busy_span {
	uint64_t from_us, to_us;
};

struct sim {
	const struct kj_sim_opts *o;	/* this worker's share (sim_workers.c) */
	struct sim_shared *sh;
	unsigned worker;
	int wake_fd;	/* eventfd: another worker or a signal wants a look */
	struct kj_sim_result *r;
	int ep;
	struct conn *conns;
	uint8_t *rx;
	struct timer *heap;
	size_t n_heap, cap_heap;
	uint32_t *parked;
	size_t n_parked;
	uint32_t *line;	/* waiting for backlog room (sim.c), a ring */
	size_t line_head, n_line;
	uint64_t line_at_ms;
	unsigned line_ms; /* the head's next try: full backlog or refused */
	size_t cap_latency;
	uint64_t rng;
	uint64_t t0_ms, t0_us;
	uint64_t offered;	/* normal devices between OFFER and end */
	uint64_t busy_since_us;	/* offered went 0 -> 1 */
	uint64_t busy_us;	/* one worker: the spans' sum */
	struct busy_span *busy;	/* more: the spans, merged at the end */
	size_t n_busy, cap_busy;
	unsigned normal_sockets;
	bool stop;
	bool socket_ended; /* re-check the end condition now */
	bool have_last_uid;
	uint8_t last_uid_len;
	uint8_t last_uid[KJ_UID_MAX];
	struct kj_ratelimit rl;
	struct ssl_ctx_st *tls; /* o->tls: the client context */
};

/* sim_conn.c: clock, randomness, timers, connection plumbing */
uint64_t kj_sim_now_us(void);
void kj_sim_stamp(const struct sim *s, struct conn *c, unsigned which);
uint64_t kj_sim_rnd(struct sim *s);
double kj_sim_rnd_unit(struct sim *s);
void kj_sim_arm(struct sim *s, struct conn *c, enum timer_kind kind,
		unsigned ms);
/* The earliest timer, taken off the heap (s->n_heap > 0). */
struct timer kj_sim_timer_pop(struct sim *s);
void kj_sim_update_events(struct sim *s, struct conn *c);
void kj_sim_close_fd(struct sim *s, struct conn *c, bool reset);
/* Drop the connection and connect again after delay_ms. */
void kj_sim_reconnect(struct sim *s, struct conn *c, bool reset,
		      unsigned delay_ms);
void kj_sim_finish_socket(struct sim *s, struct conn *c, bool failed);
int kj_sim_queue_out(struct conn *c, const uint8_t *b, int n);
/* A unit of the shared COMMIT budget for a normal device: false when
 * --devices are committed or in flight.  kj_sim_put_unit gives it back
 * (the device ended without COMMIT) and wakes parked sockets anywhere. */
bool kj_sim_take_unit(struct sim *s);
void kj_sim_put_unit(struct sim *s);
/* A hostile attempt answered, as intended or not. */
void kj_sim_hostile_answered(struct sim *s, bool intended);
/* Stop this run's workers: a fatal error (e.g. out of memory). */
void kj_sim_halt(struct sim *s);
/* Wake every worker's loop (the end of the run may have come). */
void kj_sim_poke_all(struct sim *s);
/* The offered count went 0 -> 1 or 1 -> 0 (busy_seconds). */
void kj_sim_busy_begin(struct sim *s);
void kj_sim_busy_end(struct sim *s);

/* sim_dev.c: the device's own key (PROTOCOL.md device authenticity,
 * inject mode) */
int kj_sim_dev_begin(struct sim *s, struct conn *c, struct kj_hello *h);
void kj_sim_dev_end(struct conn *c);
int kj_sim_dev_proof(struct sim *s, struct conn *c, const uint8_t *body,
		     size_t len);
int kj_sim_dev_cred(struct conn *c, const struct kj_frame *f);
int kj_sim_dev_cred_check(struct sim *s, struct conn *c);
/* Issue mode: `,"cert":"<base64 DER>"' for the device log. */
void kj_sim_dev_log(struct sim *s, struct conn *c, FILE *f);

/* sim_site.c: the device protocol, over the socket's reads and writes */
void kj_sim_start_device(struct sim *s, struct conn *c);
/* Unexpected outcome: a real site stops and calls the operator. */
void kj_sim_fail_device(struct sim *s, struct conn *c, const char *outcome);
/* The appliance closed (err 0) or reset (err = errno) the connection. */
void kj_sim_on_eof(struct sim *s, struct conn *c, int err);
void kj_sim_do_read(struct sim *s, struct conn *c);
/* After the programming delay: READBACK (or the site's ABORT). */
void kj_sim_send_readback(struct sim *s, struct conn *c);
/* Write what is pending; slow-loris sockets dribble one byte per tick. */
void kj_sim_flush(struct sim *s, struct conn *c);

/* Parked sockets take the budget a failed device freed. */
void kj_sim_wake_parked(struct sim *s);

/* sim.c: connected (and, with TLS, handshaken): park or attack. */
void kj_sim_ready(struct sim *s, struct conn *c);
/* One worker's loop over its share of the sockets (s->o): set up, run
 * until the run ends, leave r filled; then kj_sim_worker_free. */
int kj_sim_worker_run(struct sim *s);
void kj_sim_worker_free(struct sim *s);
/* Set by SIGINT/SIGTERM (sim_workers.c installs the handler). */
extern volatile sig_atomic_t kj_sim_signalled;

/* sim_tls.c: the socket's bytes, through TLS when c->ssl (recv/send
 * semantics: -1 with errno EAGAIN when it would block). */
ssize_t kj_sim_recv(struct conn *c, void *buf, size_t len);
ssize_t kj_sim_send(struct conn *c, const void *buf, size_t len);
/* C_TLS: drive the handshake; on success kj_sim_ready. */
void kj_sim_tls_step(struct sim *s, struct conn *c);
/* A handshake the appliance refused (or we did): counted in err_tls,
 * logged, the device (if one was open) fails, the socket ends. */
void kj_sim_tls_failed(struct sim *s, struct conn *c);
/* The connection failed (EOF, reset, EPIPE): was it an alert the
 * appliance sent first?  TLS 1.3 refuses a client certificate after the
 * client's Finished, so the site may be writing HELLO when the alert and
 * the close arrive; the alert still waits in the socket. */
bool kj_sim_tls_alert_pending(struct conn *c);
/* Free the connection's TLS (before its fd closes). */
void kj_sim_tls_end(struct conn *c);

#endif
