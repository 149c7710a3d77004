/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the keeper: the state keeper.c shares with keeper_answer.c,
 * keeper_inj.c, keeper_record.c and keeper_request.c, so that each of
 * them can hold one job of the keeper.  Not for other modules.
 */
#ifndef KINJECT_KEEPER_INT_H
#define KINJECT_KEEPER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/log.h"
#include "inputs/creds.h"
#include "journal/journal.h"
#include "journal/record.h"
#include "secret/arena.h"
#include "wire/ipc.h"
#include "wire/proto.h"
#include "keeper.h"
#include "keeper_sign.h"

#define MAX_WORKERS 64

/* Injector states: which requests are permitted (keeper_request.c). */
enum { I_DEAD = 0, I_START, I_RUN, I_STOPPING };
#define IS(s) (1u << (s))

/* Slot states, per injector connection tag.  K_CHALLENGED: CHALLENGE
 * sent (device authenticity), the PROOF entry not yet in. */
enum { K_FREE = 0, K_REFUSING, K_RESERVED, K_DECIDED, K_CHALLENGED };

struct kslot {
	uint8_t state;
	bool offer_sent;
	uint8_t uid_len;
	uint16_t socket;
	struct kslot *hnext; /* in-flight uid hash chain */
	uint64_t uid_hash;
	uint8_t uid[KJ_UID_MAX];
	char site[KJ_STR8_MAX + 1];
	char hwrev[KJ_STR8_MAX + 1];
	struct kj_reservation res;
	uint64_t blob_off;
	uint32_t blob_len;
	uint32_t pool1;	    /* issue mode: its pool blob + 1; 0 none */
	uint8_t pubkey_len; /* HELLO device_pubkey: 0 or 65 */
	uint8_t pubkey[KJ_PUBKEY_LEN];
	uint8_t nonce[KJ_NONCE_LEN]; /* K_CHALLENGED */
};

struct opkt {
	struct opkt *next;
	struct kj_ipc_buf b;
	uint8_t data[KJ_IPC_MSG_MAX];
};

struct inj {
	unsigned worker;
	uint32_t gen;	/* incremented per start: stale answers dropped */
	int state;
	pid_t pid;
	int fd;
	unsigned max_conns;	/* slots: --max-connections (engine.h) */
	unsigned share;		/* of --max-connections */
	struct kslot *slots;
	struct opkt *cur;	   /* being filled */
	struct opkt *qhead, *qtail; /* full, EAGAIN on send */
	struct kj_ipc_counters cnt;
	struct kj_ipc_load load_sent; /* the last LOAD, if load_ok */
	bool load_ok;
};

/* An answer waiting for durability (and maybe a checkpoint). */
struct reply {
	unsigned inj;
	uint32_t gen;
	uint16_t type;
	uint32_t tag;
	uint64_t cover; /* COMMIT: tree size that must be attested */
	union {
		struct kj_ipc_refuse refuse;
		struct kj_ipc_verdict verdict;
		struct {
			struct kj_ipc_offer o;
			char serial[KJ_STR8_MAX];
		} offer;
	} u;
};

struct rqueue {
	struct reply *v;
	size_t head, n, cap;
};

/*
 * The keeper's own copy of one credential's place in the arena, taken
 * before any injector exists: what it decides with never comes from
 * memory an injector can map.
 */
struct kcred {
	uint64_t index;
	uint64_t blob_off;
	uint32_t blob_len;
};

struct keeper {
	struct kj_job *job;
	/* Keeper-private: credential places, the firmware midstate. */
	struct kcred *creds;
	size_t n_creds;
	struct kj_arena priv;	/* owner-only locked memory, fd closed */
	int exe_fd;		/* O_PATH /proc/self/exe: what injectors exec */
	int share_fd;		/* the arena as injectors get it */
	struct kj_keeper_stats st;
	struct inj inj[MAX_WORKERS];
	unsigned n_inj;
	int *lfds;
	const struct kj_readback *fw_rb; /* in priv */
	uint64_t quantity, max_failed;
	uint64_t ok_total, failed_total;
	uint64_t in_flight;
	bool issuing;
	uint16_t refuse_reason; /* QUOTA or STOPPED once not issuing */
	int end;		/* enum kj_keeper_end once decided */
	uint64_t last_commit_ms, last_progress_ms, start_ms;
	uint64_t covered;
	bool tpm_lost;	      /* hooks.committed said so: no more COMMITs */
	bool hsm_lost;	      /* issue mode: the issuer's HSM is gone */
	struct rqueue pend;   /* waiting for the next commit */
	struct rqueue cover;  /* COMMITs waiting for a checkpoint */
	struct kj_ipc_counters gone; /* counters of injectors that ended */
	struct kslot **uid_tab;
	size_t uid_tab_n;
	int err;
	/* keeper_auth.c: device authenticity; NULL: no device_ca */
	struct x509_store_st *dev_store;
	struct kj_ratelimit rl;
	/* keeper_cred.c: issue mode's blobs, a pool in the arena */
	uint64_t pool_off;
	uint32_t *pool_free, pool_nfree;
	/* keeper_tls.c: the TLS key's signatures (job->tls) */
	struct kj_sign_limit sign;
};

/* keeper_answer.c: the answers and when they may leave. */
int kj_kp_rq_push(struct rqueue *q, const struct reply *r);
int kj_kp_inj_put(struct inj *in, unsigned type, const void *a, size_t alen,
		  const void *b, size_t blen);
int kj_kp_inj_flush(struct keeper *k, struct inj *in);
/* Free an injector's unsent packets; their COMMITs are withdrawn. */
void kj_kp_opkt_free_all(struct keeper *k, struct inj *in);
int kj_kp_commit(struct keeper *k);

/* keeper_record.c: a device's records and its uid while in flight. */
bool kj_kp_uid_in_flight(struct keeper *k, const uint8_t *uid, size_t n);
void kj_kp_uid_add(struct keeper *k, struct kslot *s);
void kj_kp_device_record(const struct kslot *s, struct kj_record *r,
			 enum kj_result res);
int kj_kp_append(struct keeper *k, struct kj_record *r);
int kj_kp_close_attempt(struct keeper *k, struct kslot *s, enum kj_result res,
			uint16_t site_code, const uint8_t *readback);
int kj_kp_withdraw(struct keeper *k, uint64_t attempt);

/* keeper_request.c: the policy and the dispatch table. */
const struct kcred *kj_kp_cred_find(const struct keeper *k, uint64_t index);
void kj_kp_update_issuing(struct keeper *k);
int kj_kp_on_packet(struct keeper *k, struct inj *in, const uint8_t *p,
		    size_t len);

/* keeper_auth.c: device authenticity (PROTOCOL.md CHALLENGE/PROOF). */
int kj_kp_auth_setup(struct keeper *k);
void kj_kp_auth_teardown(struct keeper *k);
int kj_kp_challenge(struct keeper *k, struct inj *in, uint32_t tag,
		    struct kslot *s);
int kj_kp_proof_check(struct keeper *k, const struct kslot *s,
		      const uint8_t *cert, size_t len, const uint8_t *sig,
		      const char **why);

/* keeper_cred.c: the cred_blob a device gets, per credential_mode. */
int kj_kp_cred_setup(struct keeper *k, unsigned slots);
void kj_kp_cred_teardown(struct keeper *k);
int kj_kp_cred_blob(struct keeper *k, struct kslot *s,
		    const struct kcred *c);
void kj_kp_cred_release(struct keeper *k, struct kslot *s);
/* kj_kp_cred_blob said -ENODEV: stop issuing, say so once. */
void kj_kp_hsm_lost(struct keeper *k);

/* keeper_tls.c: TLS listeners (docs/TLS.md). */
int kj_kp_on_sign(struct keeper *k, struct inj *in, const uint8_t *b,
		  size_t len);
int kj_kp_site_cn_check(struct keeper *k, const struct kslot *s,
			const uint8_t *cn, size_t cn_len);
int kj_kp_tls_boot(const struct keeper *k, int fd, unsigned worker);

/* keeper_inj.c: an injector process's start and end. */
int kj_kp_inj_start(struct keeper *k, struct inj *in);
int kj_kp_inj_dead(struct keeper *k, struct inj *in, bool restart);
int kj_kp_inj_read(struct keeper *k, struct inj *in, uint8_t *buf);
void kj_kp_inj_load(struct keeper *k);

#endif
