// SPDX-License-Identifier: Apache-2.0
/*
 * What the injector engine sends to a site: the small frames (COMMIT,
 * ABORT) from the connection's header buffer, and OFFER + DATA as iovecs
 * straight into the read-only arena, several frames per SENDMSG, resumed
 * after a short send.  Apart from the ring loop (engine.c) because the
 * firmware's path to the socket is here and nowhere else.
 */
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/ipc.h"
#include "wire/proto.h"
#include "engine_int.h"

#define ABORT_SEND_TIMEOUT_MS 2000

/* Send one small frame (COMMIT or ABORT) from hbuf. */
void kj_eng_send_frame(struct kj_engine *e, struct conn *c, int len,
		       bool close_after)
{
	if (len < 0) {
		kj_eng_conn_close(e, c);
		return;
	}
	c->state = S_REPLY;
	c->close_after = close_after;
	c->iov[0].iov_base = c->hbuf;
	c->iov[0].iov_len = (size_t)len;
	c->iov_cnt = 1;
	kj_eng_send_arm(e, c, close_after ? ABORT_SEND_TIMEOUT_MS :
			e->cfg.program_timeout_ms);
}

void kj_eng_send_abort(struct kj_engine *e, struct conn *c, unsigned code,
		       const char *msg)
{
	bool close_after = code == KJ_ABORT_PROTOCOL ||
			   code == KJ_ABORT_TIMEOUT;

	kj_eng_send_frame(e, c,
			  kj_abort_build(c->hbuf, sizeof(c->hbuf), code, msg),
			  close_after);
}

/*
 * The job is ending (STOP): an idle connection gets the keeper's reason
 * (QUOTA or STOPPED, PROTOCOL.md) and is closed.
 */
void kj_eng_send_stop_abort(struct kj_engine *e, struct conn *c)
{
	kj_eng_send_frame(e, c, kj_abort_build(c->hbuf, sizeof(c->hbuf),
			  e->stop_reason, "the job is ending"),
			  true);
}

/* Fill iovecs with the next frames of the device's streams. */
void kj_eng_stream_fill(struct kj_engine *e, struct conn *c, size_t hoff)
{
	unsigned frames = 0, max = e->cfg.data_frames_per_send;
	uint8_t *h = c->hbuf + hoff;

	while (frames < max) {
		const uint8_t *src;
		uint32_t left, n, off;
		uint8_t stream;

		if (c->fw_next < e->cfg.fw_size) {
			stream = 0;
			off = c->fw_next;
			left = e->cfg.fw_size - off;
			src = e->cfg.arena + e->cfg.fw_off + off;
		} else if (c->cred_next < c->blob_len) {
			stream = 1;
			off = c->cred_next;
			left = c->blob_len - off;
			src = e->cfg.arena + c->blob_off + off;
		} else {
			break;
		}
		n = left < KJ_DATA_PAYLOAD_MAX ? left : KJ_DATA_PAYLOAD_MAX;
		if (kj_data_hdr_build(h, stream, off, n) < 0)
			break;
		c->iov[c->iov_cnt].iov_base = h;
		c->iov[c->iov_cnt++].iov_len = KJ_DATA_HDR_LEN;
		c->iov[c->iov_cnt].iov_base = (void *)src;
		c->iov[c->iov_cnt++].iov_len = n;
		h += KJ_DATA_HDR_LEN;
		if (stream == 0)
			c->fw_next += n;
		else
			c->cred_next += n;
		frames++;
	}
}

static bool stream_done(const struct kj_engine *e, const struct conn *c)
{
	return c->fw_next >= e->cfg.fw_size && c->cred_next >= c->blob_len;
}

void kj_eng_on_send(struct kj_engine *e, struct conn *c,
		    const struct io_uring_cqe *cqe)
{
	size_t total = 0, done;

	for (unsigned i = 0; i < c->iov_cnt; i++)
		total += c->iov[i].iov_len;
	if (cqe->res < 0 || (size_t)cqe->res > total) {
		if (c->state == S_STREAM)
			kj_eng_outcome(e, c, cqe->res == -ECANCELED ?
				       KJ_OUT_TIMEOUT : KJ_OUT_DISCONNECTED, 0,
				       NULL);
		if (c->state == S_CHALLENGE)
			kj_eng_proof_missing(e, c, KJ_PROOF_DISCONNECTED);
		kj_eng_conn_close(e, c);
		return;
	}
	e->cnt.bytes_sent += (uint64_t)cqe->res;
	if ((size_t)cqe->res < total) {
		/* Short send: go on from where the socket stopped. */
		unsigned i = 0, k = 0;

		done = (size_t)cqe->res;
		while (done >= c->iov[i].iov_len) {
			done -= c->iov[i].iov_len;
			i++;
		}
		for (; i < c->iov_cnt; i++, k++)
			c->iov[k] = c->iov[i];
		c->iov[0].iov_base = (uint8_t *)c->iov[0].iov_base + done;
		c->iov[0].iov_len -= done;
		c->iov_cnt = k;
		kj_eng_send_arm(e, c, e->cfg.program_timeout_ms);
		return;
	}
	if (c->state == S_STREAM) {
		if (stream_done(e, c)) {
			kj_eng_enter_readback(e, c);
			return;
		}
		c->iov_cnt = 0;
		kj_eng_stream_fill(e, c, 0);
		kj_eng_send_arm(e, c, e->cfg.program_timeout_ms);
		return;
	}
	if (c->state == S_CHALLENGE) {
		kj_eng_enter_proof(e, c);
		return;
	}
	if (c->state == S_REPLY) {
		if (c->close_after)
			kj_eng_conn_close(e, c);
		else
			kj_eng_enter_hello(e, c);
	}
}
