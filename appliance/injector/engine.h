/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The injector's io_uring engine (issue 5 item 3, docs/ENGINE.md): one ring
 * per worker process, multishot accept on every listener, receives into a
 * provided buffer ring, the firmware sent straight from the read-only arena
 * mapping in DATA frames (SENDMSG: small per-connection header buffer +
 * arena iovecs, no copy of the image), absolute deadlines for the HELLO
 * idle limit and the READBACK limit (a sweep, engine_deadline.c), at
 * most max_conns connections, one operation in flight per connection
 * (write backpressure is the socket's own: a slow site only delays
 * itself).
 *
 * Split in two so the sandbox can sit in between (sandbox.h):
 *   kj_engine_init()   allocates, creates the restricted ring and the
 *                      buffer ring (needs io_uring_setup and mmap);
 *   kj_sandbox_enter();
 *   kj_engine_run()    the event loop, until the keeper says STOP or the
 *                      keeper channel closes.
 */
#ifndef KINJECT_ENGINE_H
#define KINJECT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "wire/proto.h"

struct kj_engine;
struct kj_tls_server;

/* Refusals (ABORT before OFFER) in a row after which a connection is
 * closed: each one is a journal record (docs/ENGINE.md). */
#define KJ_REFUSAL_BUDGET 32

struct kj_engine_cfg {
	unsigned worker;
	/* The arena as this process sees it (read-only). */
	const uint8_t *arena;
	size_t arena_size;
	size_t fw_off;
	uint32_t fw_size;
	/* OFFER fields that are the same for every device of the job. */
	char fw_version[KJ_STR8_MAX + 1];
	uint8_t fw_sha256[32];
	/* Open listening sockets (non-blocking) and the keeper channel. */
	const int *listen_fds;
	unsigned n_listen;
	/* Bit i: listen_fds[i] is tls: (docs/TLS.md), served with tls,
	 * which the injector made before its sandbox. */
	uint64_t listen_tls;
	struct kj_tls_server *tls;
	bool ktls;		/* the kernel has kTLS: use it */
	int ipc_fd;
	unsigned max_conns;	    /* connection slots of this worker */
	/*
	 * Accepts pause at this many open connections (this worker's share
	 * of --max-connections; 0: max_conns).  A multishot accept takes the
	 * whole backlog in one go before its cancel lands, so the keeper
	 * gives every worker max_conns = --max-connections slots: what a
	 * burst brings in is served, not reset (docs/ENGINE.md).
	 */
	unsigned accept_limit;
	unsigned workers;	    /* the job's injectors: the accept spread */
	unsigned hello_timeout_ms;  /* PROTOCOL.md Limits: 600 s */
	unsigned program_timeout_ms; /* READBACK after the last DATA: 120 s */
	unsigned ring_entries;	    /* 0: default */
	unsigned data_frames_per_send; /* DATA frames per SENDMSG, 0: 16 */
};

/* Allocate everything, create the ring (restricted) and the buffer ring. */
KJ_MUST_CHECK int kj_engine_init(const struct kj_engine_cfg *cfg,
				 struct kj_engine **out);

/*
 * Run the loop.  0 after a STOP from the keeper (listeners and sockets
 * closed), -EPIPE when the keeper channel closed, another -errno on a ring
 * failure (logged).
 */
KJ_MUST_CHECK int kj_engine_run(struct kj_engine *e);

void kj_engine_free(struct kj_engine *e);

#endif
