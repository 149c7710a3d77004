// SPDX-License-Identifier: Apache-2.0
/*
 * `--listen tls:` in the injector engine (docs/TLS.md): each connection's
 * TLS 1.3 handshake, the keeper's CertificateVerify signature, and the
 * user-space record path where the kernel has no kTLS.  Apart from the
 * rest of the engine because only here do site bytes pass through
 * OpenSSL before the frame parser sees them.
 *
 * Why POLL_ADD and not a memory BIO: OpenSSL runs the handshake (and,
 * without kTLS, the records) on the connection's own non-blocking fd, so
 * the ring only has to say when the fd is ready.  A memory BIO would need
 * a ciphertext buffer per connection in each direction and a copy of
 * every DATA byte into it, where POLL_ADD keeps the socket's own buffers
 * as the only ones (per-connection memory stays bounded, a slow site
 * still only delays itself).  Each readiness poll carries the deadline
 * of the receive or send it stands for (engine_deadline.c's sweep): the
 * HELLO deadline during the handshake and before HELLO, the programming
 * limit for a send.
 * With kTLS (kj_tls_ktls() == 1) none of this runs after the handshake:
 * the fd reads and writes plaintext and the engine's RECV and SENDMSG of
 * DATA from the arena are used unchanged.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "wire/ipc.h"
#include "engine_int.h"
#include "tls.h"

void kj_eng_tls_free(struct conn *c)
{
	kj_tls_conn_free(c->tls);
	c->tls = NULL;
	c->tls_user = false;
}

static void refused(struct kj_engine *e, struct conn *c, const char *why)
{
	/* Before HELLO: counted and logged, never a journal record. */
	e->cnt.tls_refused++;
	kj_log_ratelimited(&e->rl, KJ_LOG_WARN,
			   "injector %u: connection %u: TLS handshake "
			   "refused: %s", e->cfg.worker,
			   kj_eng_conn_slot(e, c), why);
	kj_eng_conn_close(e, c);
}

static void done(struct kj_engine *e, struct conn *c)
{
	int rc = 0;

	if (e->cfg.ktls)
		rc = kj_tls_ktls(c->tls);
	else
		rc = kj_tls_user_records(c->tls);
	if (rc < 0) {
		refused(e, c, "the record layer could not be set up");
		return;
	}
	c->tls_user = rc == 0;
	if (c->tls_user)
		e->cnt.tls_user++;
	else
		e->cnt.tls_ktls++;
	if (!e->tls_said) {
		e->tls_said = true;
		kj_info("injector %u: TLS 1.3 with site %s: records %s",
			e->cfg.worker, kj_tls_peer_cn(c->tls),
			c->tls_user ? "in user space (the kernel offers no "
			"kTLS: no `tls' TCP ULP)" : "in the kernel (kTLS)");
	}
	kj_eng_enter_hello(e, c);
}

/* Drive the handshake as far as it goes without waiting. */
static void step(struct kj_engine *e, struct conn *c)
{
	struct kj_ipc_sign m = { .tag = kj_eng_conn_slot(e, c) };
	const uint8_t *in;
	size_t n;

	switch (kj_tls_handshake(c->tls)) {
	case KJ_TLS_WANT_READ:
		kj_eng_poll_arm(e, c, POLLIN, OP_TLS, 0);
		return;
	case KJ_TLS_WANT_WRITE:
		kj_eng_poll_arm(e, c, POLLOUT, OP_TLS, 0);
		return;
	case KJ_TLS_WANT_SIGN:
		in = kj_tls_sign_input(c->tls, &n);
		if (!n || n > KJ_IPC_SIGN_IN_MAX) {
			refused(e, c, "OpenSSL asked to sign an input the "
				"keeper cannot be sent");
			return;
		}
		m.len = (uint16_t)n;
		c->keeper_busy = true;
		c->tls_signing = true;
		kj_eng_ipc_queue(e, KJ_IPC_SIGN, &m, sizeof(m), in, n);
		return;
	case KJ_TLS_DONE:
		done(e, c);
		return;
	case KJ_TLS_FAILED:
	default:
		refused(e, c, kj_tls_failure(c->tls));
		return;
	}
}

void kj_eng_tls_start(struct kj_engine *e, struct conn *c)
{
	if (e->stop_swept || kj_tls_conn_new(e->cfg.tls, c->fd, &c->tls) < 0) {
		kj_eng_conn_close(e, c);
		return;
	}
	c->state = S_TLS;
	/* The HELLO limit covers the handshake too. */
	c->deadline_ns = kj_eng_mono_ns() +
			 (uint64_t)e->cfg.hello_timeout_ms * 1000000ull;
	step(e, c);
}

void kj_eng_tls_on_poll(struct kj_engine *e, struct conn *c,
			const struct io_uring_cqe *cqe)
{
	if (c->state != S_TLS)
		return;
	if (cqe->res == -ECANCELED || cqe->res == -ETIME) {
		e->cnt.pre_hello_timeout++;
		refused(e, c, "no handshake within the HELLO limit");
		return;
	}
	if (cqe->res < 0) {
		refused(e, c, strerror(-cqe->res));
		return;
	}
	step(e, c);
}

/* SIGNED: the keeper's answer to a handshake's SIGN. */
int kj_eng_tls_on_signed(struct kj_engine *e, const uint8_t *body)
{
	struct kj_ipc_signed m;
	struct conn *c;

	memcpy(&m, body, sizeof(m));
	if (m.tag >= e->cfg.max_conns)
		return -EPROTO;
	c = &e->conns[m.tag];
	if (!c->keeper_busy || !c->tls ||
	    (c->state != S_TLS && c->state != S_CLOSING))
		return -EPROTO;
	c->keeper_busy = false;
	c->tls_signing = false;
	if (c->state == S_CLOSING) {
		/* Closed meanwhile (the job's end): finish the paused job,
		 * refused, on the shut-down fd; then the fd is closed. */
		kj_tls_signed(c->tls, NULL, 0);
		(void)kj_tls_handshake(c->tls);
		kj_eng_conn_maybe_free(e, c);
		return 0;
	}
	kj_tls_signed(c->tls, m.sig, m.sig_len);
	step(e, c);
	return 0;
}

/* ---- user-space records (the kernel has no kTLS) ------------------------ */

void kj_eng_tls_recv_arm(struct kj_engine *e, struct conn *c)
{
	/* A record OpenSSL already holds raises no POLLIN: a NOP instead. */
	kj_eng_poll_arm(e, c, kj_tls_pending(c->tls) ? 0 : POLLIN, OP_RECV, 0);
}

void kj_eng_tls_on_recv(struct kj_engine *e, struct conn *c,
			const struct io_uring_cqe *cqe)
{
	struct io_uring_cqe end = { .res = 0 };
	ssize_t n;

	if (cqe->res < 0) {
		kj_eng_on_recv(e, c, cqe); /* the deadline, or an error */
		return;
	}
	if (c->state != S_HELLO && c->state != S_READBACK &&
	    c->state != S_PROOF)
		return;
	n = kj_tls_read(c->tls, e->tls_buf, RBUF_SIZE);
	if (n == -EAGAIN) {
		kj_eng_recv_arm(e, c); /* a partial record */
		return;
	}
	if (n > 0) {
		kj_eng_on_site_bytes(e, c, e->tls_buf, (size_t)n);
		return;
	}
	/* close_notify, EOF, a bad record: as an EOF on a plain socket. */
	end.res = n == 0 ? 0 : -EIO;
	kj_eng_on_recv(e, c, &end);
}

void kj_eng_tls_send_arm(struct kj_engine *e, struct conn *c,
			 unsigned tmo_ms)
{
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = c->iov_cnt;
	kj_eng_poll_arm(e, c, POLLOUT, OP_SEND, tmo_ms);
}

/*
 * The socket has room: write records from the iovecs (the frames'
 * headers and the arena's bytes) until it has none, then let
 * kj_eng_on_send() account for the bytes taken as for a short SENDMSG:
 * the next write starts exactly where OpenSSL stopped, as it requires.
 */
void kj_eng_tls_on_send(struct kj_engine *e, struct conn *c,
			const struct io_uring_cqe *cqe)
{
	struct io_uring_cqe r = { .res = -EPIPE };
	size_t took = 0;
	ssize_t n = 1;

	if (cqe->res < 0 || c->state == S_CLOSING) {
		kj_eng_on_send(e, c, cqe->res < 0 ? cqe : &r);
		return;
	}
	for (unsigned i = 0; i < c->iov_cnt && n > 0; i++) {
		const uint8_t *p = c->iov[i].iov_base;
		size_t off = 0;

		while (off < c->iov[i].iov_len) {
			n = kj_tls_write(c->tls, p + off,
					 c->iov[i].iov_len - off);
			if (n <= 0)
				break;
			off += (size_t)n;
			took += (size_t)n;
		}
	}
	/* n: > 0 all written, -EAGAIN no room; 0 or another < 0: gone */
	r.res = n > 0 || n == -EAGAIN ? (int)took : -EPIPE;
	kj_eng_on_send(e, c, &r);
}
