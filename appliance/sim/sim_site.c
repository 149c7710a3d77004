// SPDX-License-Identifier: Apache-2.0
/*
 * kinject sim: one device as a site plays it (PROTOCOL.md "Sequence"),
 * with the fault knobs and hostile modes of sim.h, and the bookkeeping
 * that classifies every outcome as intended or unexpected.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/util.h"
#include "wire/proto.h"
#include "wire/readback.h"
#include "sim_int.h"

/* ---- outcomes ---- */

static void json_str(FILE *f, const char *str)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void log_device(struct sim *s, struct conn *c, const char *outcome,
		       bool intended, const struct kj_commit *cm)
{
	FILE *f = s->o->device_log;
	char hex[2 * KJ_UID_MAX + 1];

	if (!f)
		return;
	flockfile(f); /* one line at a time among the workers */
	kj_hex_encode(c->uid, c->uid_len, hex);
	fprintf(f, "{\"socket\":%u,\"uid\":\"%s\",\"outcome\":\"%s\","
		   "\"intended\":%s", s->o->socket_base + c->idx, hex, outcome,
		intended ? "true" : "false");
	if (c->attempt || cm) {
		fprintf(f, ",\"attempt\":%llu,\"serial\":",
			(unsigned long long)c->attempt);
		json_str(f, c->serial);
	}
	if (cm) {
		kj_hex_encode(c->digest, KJ_DIGEST_LEN, hex);
		fprintf(f, ",\"leaf_index\":%llu,\"digest\":\"%s\"",
			(unsigned long long)cm->leaf_index, hex);
		kj_sim_stamp(s, c, KJ_SIM_T_COMMIT);
		fputs(",\"t_us\":[", f);
		for (unsigned i = 0; i < KJ_SIM_STAMPS; i++)
			fprintf(f, "%s%llu", i ? "," : "",
				(unsigned long long)c->t_wall_us[i]);
		fputc(']', f);
		kj_sim_dev_log(s, c, f);
	}
	fputs("}\n", f);
	funlockfile(f);
}

/* Wake a parked socket when a device failed and the budget allows. */
void kj_sim_wake_parked(struct sim *s)
{
	while (s->n_parked &&
	       (!s->o->devices ||
		atomic_load(&s->sh->reserved) < s->o->devices)) {
		struct conn *c = &s->conns[s->parked[--s->n_parked]];

		c->parked_listed = false;
		if (c->state == C_PARKED && c->fd >= 0)
			kj_sim_start_device(s, c);
	}
}

/*
 * Close the open device attempt: count it, log it.  The caller decides
 * what the socket does next.
 */
static void end_device(struct sim *s, struct conn *c, const char *outcome,
		       bool intended, const struct kj_commit *cm)
{
	struct kj_sim_result *r = s->r;

	if (!c->in_device)
		return;
	c->in_device = false;
	kj_readback_wipe(&c->rb);
	if (c->surprise)
		intended = false;
	if (c->hostile) {
		kj_sim_hostile_answered(s, intended);
	} else {
		if (c->offered && !--s->offered)
			kj_sim_busy_end(s);
		c->offered = false;
		if (intended)
			r->intended++;
		else
			r->unexpected++;
	}
	log_device(s, c, outcome, intended, cm);
	kj_sim_dev_end(c);
	if (!cm && !c->hostile)
		kj_sim_put_unit(s);
}

/* Unexpected outcome: a real site stops and calls the operator. */
void kj_sim_fail_device(struct sim *s, struct conn *c, const char *outcome)
{
	end_device(s, c, outcome, false, NULL);
	kj_sim_finish_socket(s, c, true);
}

/* The appliance broke PROTOCOL.md: say so to it, as a site would. */
static void appliance_bad(struct sim *s, struct conn *c, const char *why)
{
	uint8_t b[KJ_ABORT_FRAME_MAX];
	int n = kj_abort_build(b, sizeof(b), KJ_ABORT_PROTOCOL, why);

	kj_log_ratelimited(&s->rl, KJ_LOG_ERR,
			   "sim: socket %u: appliance broke the protocol: %s",
			   s->o->socket_base + c->idx, why);
	s->r->err_appliance++;
	if (n > 0 && c->fd >= 0)
		(void)!kj_sim_send(c, b, (size_t)n);
	if (c->hostile && !c->in_device)
		kj_sim_hostile_answered(s, false);
	kj_sim_fail_device(s, c, "appliance_protocol_error");
}

/* ---- one device ---- */

static enum fault draw_fault(struct sim *s, struct conn *c)
{
	const struct kj_sim_opts *o = s->o;
	double x;

	if (c->hostile)
		return o->hostile == KJ_SIM_VANISH ? F_DISCONNECT : F_NONE;
	x = kj_sim_rnd_unit(s);
	if ((x -= o->wrong_hwrev_rate) < 0)
		return F_WRONG_HWREV;
	if ((x -= o->duplicate_rate) < 0)
		return s->have_last_uid ? F_DUPLICATE : F_NONE;
	if ((x -= o->disconnect_rate) < 0)
		return F_DISCONNECT;
	if ((x -= o->site_abort_rate) < 0)
		return F_SITE_ABORT;
	if ((x -= o->bad_readback_rate) < 0)
		return F_BAD_READBACK;
	if ((x -= o->counterfeit_rate) < 0)
		return F_COUNTERFEIT;
	return F_NONE;
}

static void count_fault(struct kj_sim_result *r, enum fault f)
{
	switch (f) {
	case F_WRONG_HWREV:
		r->wrong_hwrevs++;
		break;
	case F_DUPLICATE:
		r->duplicates++;
		break;
	case F_DISCONNECT:
		r->disconnects++;
		break;
	case F_SITE_ABORT:
		r->site_aborts++;
		break;
	case F_BAD_READBACK:
		r->bad_readbacks++;
		break;
	case F_COUNTERFEIT:
		r->counterfeits++;
		break;
	default:
		break;
	}
}

/* uid = seed:8 || socket:u32be || device number on the socket:u32be */
static void make_uid(struct sim *s, struct conn *c)
{
	if (c->fault == F_DUPLICATE) {
		memcpy(c->uid, s->last_uid, s->last_uid_len);
		c->uid_len = s->last_uid_len;
		return;
	}
	kj_put_u64be(c->uid, s->o->uid_seed);
	kj_put_u32be(c->uid + 8, s->o->socket_base + c->idx);
	kj_put_u32be(c->uid + 12, c->dev_seq);
	c->uid_len = 16;
}

void kj_sim_start_device(struct sim *s, struct conn *c)
{
	struct kj_hello h = { .version = KJ_PROTO_VERSION };
	uint8_t b[KJ_HELLO_FRAME_MAX];

	if (!c->hostile && !kj_sim_take_unit(s)) {
		c->state = C_PARKED;
		kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
		if (!c->parked_listed) {
			c->parked_listed = true;
			s->parked[s->n_parked++] = c->idx;
		}
		kj_sim_update_events(s, c);
		return;
	}
	c->dev_seq++;
	c->fault = (uint8_t)draw_fault(s, c);
	c->surprise = false;
	c->attempt = 0;
	c->serial[0] = '\0';
	make_uid(s, c);
	if (!c->hostile)
		count_fault(s->r, c->fault);
	if (c->hostile) {
		s->r->hostile_attempts++;
	} else {
		s->r->attempted++;
	}
	c->in_device = true;
	c->t_hello_us = kj_sim_now_us();
	kj_sim_stamp(s, c, KJ_SIM_T_HELLO);
	snprintf(h.site_id, sizeof(h.site_id), "%s", s->o->site);
	snprintf(h.hwrev, sizeof(h.hwrev), "%s",
		 c->fault == F_WRONG_HWREV ? "sim-wrong-hwrev" : s->o->hwrev);
	h.socket = (uint16_t)(s->o->socket_base + c->idx);
	h.uid_len = c->uid_len;
	memcpy(h.uid, c->uid, c->uid_len);
	if (!c->hostile && kj_sim_dev_begin(s, c, &h) < 0)
		return kj_sim_halt(s);
	c->state = C_WAIT_OFFER;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_OFFER) |
					       KJ_MSG_BIT(KJ_MSG_ABORT) |
					       KJ_MSG_BIT(KJ_MSG_CHALLENGE));
	if (kj_sim_queue_out(c, b, kj_hello_build(b, sizeof(b), &h)) < 0) {
		kj_err("sim: cannot build HELLO (--site/--hwrev too long?)");
		return kj_sim_halt(s);
	}
	kj_sim_flush(s, c);
}

/* The next device on this connection, after an intended outcome. */
static void next_device(struct sim *s, struct conn *c)
{
	if (s->stop || c->state == C_DONE)
		return;
	if (c->hostile && s->o->hostile == KJ_SIM_HALF_OPEN)
		return;
	kj_sim_start_device(s, c);
}

void kj_sim_send_readback(struct sim *s, struct conn *c)
{
	uint8_t b[KJ_ABORT_FRAME_MAX];
	int n;

	kj_readback_final(&c->rb, c->digest);
	kj_sim_stamp(s, c, KJ_SIM_T_READBACK);
	if (c->fault == F_SITE_ABORT) {
		n = kj_abort_build(b, sizeof(b), KJ_ABORT_INTERNAL,
				   SIM_ABORT_MSG);
		(void)!kj_sim_queue_out(c, b, n);
		end_device(s, c, "site_abort", true, NULL);
		next_device(s, c);
		if (c->fd >= 0 && c->state != C_WAIT_OFFER)
			kj_sim_flush(s, c);
		return;
	}
	if (c->fault == F_BAD_READBACK)
		c->digest[0] ^= 0x01;
	n = kj_readback_build(b, sizeof(b), c->digest);
	(void)!kj_sim_queue_out(c, b, n);
	c->state = C_WAIT_RESULT;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_COMMIT) |
					       KJ_MSG_BIT(KJ_MSG_ABORT));
	kj_sim_flush(s, c);
}

static void data_done(struct sim *s, struct conn *c)
{
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
	if (kj_sim_dev_cred_check(s, c) < 0) {
		kj_log_ratelimited(&s->rl, KJ_LOG_ERR, "sim: socket %u: the "
				   "cred_blob does not open with the device "
				   "key", s->o->socket_base + c->idx);
		s->r->err_appliance++;
		return kj_sim_fail_device(s, c, "cred_blob_unreadable");
	}
	if (s->o->program_delay_ms) {
		c->state = C_PROGRAM;
		kj_sim_arm(s, c, T_PROGRAM, s->o->program_delay_ms);
		kj_sim_update_events(s, c);
		return;
	}
	kj_sim_send_readback(s, c);
}

static void on_offer(struct sim *s, struct conn *c, const struct kj_frame *f)
{
	struct kj_offer o;
	const char *why;
	uint64_t total;

	kj_sim_stamp(s, c, KJ_SIM_T_OFFER);
	if (kj_offer_parse(f->body, f->len, &o, &why) < 0)
		return appliance_bad(s, c, why);
	/* It should have refused this device before OFFER. */
	if (c->fault == F_WRONG_HWREV || c->fault == F_DUPLICATE ||
	    c->fault == F_COUNTERFEIT)
		c->surprise = true;
	c->attempt = o.attempt;
	if (!c->hostile && !c->offered) {
		c->offered = true;
		if (!s->offered++)
			kj_sim_busy_begin(s);
	}
	memcpy(c->serial, o.serial, sizeof(c->serial));
	c->fw_size = o.fw_size;
	c->cred_size = o.cred_size;
	c->fw_got = c->cred_got = 0;
	kj_readback_begin(&c->rb);
	if (!c->fw_size)
		kj_readback_add_uid(&c->rb, c->uid, c->uid_len);
	if (c->hostile && s->o->hostile == KJ_SIM_HALF_OPEN) {
		/* Stop reading and writing for good, keep the socket. */
		epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
		c->registered = false;
		c->state = C_SILENT;
		s->socket_ended = true;
		end_device(s, c, "half_open", true, NULL);
		return;
	}
	total = (uint64_t)o.fw_size + o.cred_size;
	c->cut_at = total ? kj_sim_rnd(s) % total : 0;
	c->state = C_DATA;
	kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_DATA) |
					       KJ_MSG_BIT(KJ_MSG_ABORT));
	if (c->fault == F_DISCONNECT && !total) {
		end_device(s, c, "disconnected", true, NULL);
		return kj_sim_reconnect(s, c, true, RECONNECT_MS);
	}
	if (!total)
		data_done(s, c);
}

/* PROTOCOL.md: contiguous offsets from 0, firmware before credential. */
static void on_data(struct sim *s, struct conn *c, const struct kj_frame *f)
{
	if (f->stream == 0) {
		if (f->offset != c->fw_got ||
		    f->len > c->fw_size - c->fw_got)
			return appliance_bad(s, c, "firmware DATA out of "
						   "order or beyond fw_size");
		kj_readback_update(&c->rb, f->body, f->len);
		c->fw_got += f->len;
		if (c->fw_got == c->fw_size)
			kj_readback_add_uid(&c->rb, c->uid, c->uid_len);
	} else {
		if (c->fw_got != c->fw_size || f->offset != c->cred_got ||
		    f->len > c->cred_size - c->cred_got)
			return appliance_bad(s, c, "credential DATA out of "
						   "order or beyond cred_size");
		kj_readback_update(&c->rb, f->body, f->len);
		if (kj_sim_dev_cred(c, f) < 0)
			return appliance_bad(s, c, "credential DATA beyond "
						   "cred_size");
		c->cred_got += f->len;
	}
	if (c->fault == F_DISCONNECT &&
	    (uint64_t)c->fw_got + c->cred_got > c->cut_at) {
		end_device(s, c, "disconnected", true, NULL);
		return kj_sim_reconnect(s, c, true, RECONNECT_MS);
	}
	if (c->fw_got == c->fw_size && c->cred_got == c->cred_size)
		data_done(s, c);
}

static void on_commit(struct sim *s, struct conn *c, const struct kj_frame *f)
{
	struct kj_sim_result *r = s->r;
	struct kj_commit cm;
	const char *why;

	if (kj_commit_parse(f->body, f->len, &cm, &why) < 0)
		return appliance_bad(s, c, why);
	if (cm.attempt != c->attempt)
		return appliance_bad(s, c, "COMMIT attempt differs from "
					   "OFFER attempt");
	if (c->fault == F_BAD_READBACK) {
		kj_log_ratelimited(&s->rl, KJ_LOG_ERR,
				   "sim: socket %u: appliance COMMITted a "
				   "wrong readback digest",
				   s->o->socket_base + c->idx);
		r->err_appliance++;
		return kj_sim_fail_device(s, c, "committed_bad_readback");
	}
	if (c->surprise)
		return kj_sim_fail_device(s, c, "committed_refusable");
	if (!c->hostile) {
		uint64_t n = atomic_fetch_add(&s->sh->committed, 1) + 1,
			 now = kj_sim_now_us();

		r->committed++;
		if (n == s->sh->normal_sockets)
			atomic_store(&s->sh->wave_us, now);
		if (n + s->sh->normal_sockets == s->o->devices)
			atomic_store(&s->sh->tail_us, now);
		if (n == s->o->devices)
			kj_sim_poke_all(s); /* the other workers end too */
		if (r->n_latency < s->cap_latency) {
			uint64_t us = now - c->t_hello_us;

			if (us >= KJ_SIM_LAT_FIRST)
				us = KJ_SIM_LAT_FIRST - 1;
			r->latency_us[r->n_latency++] = (uint32_t)us |
				(c->dev_seq == 1 ? KJ_SIM_LAT_FIRST : 0);
		}
		memcpy(s->last_uid, c->uid, c->uid_len);
		s->last_uid_len = c->uid_len;
		s->have_last_uid = true;
	}
	end_device(s, c, "committed", true, &cm);
	next_device(s, c);
}

static bool abort_intended(struct sim *s, struct conn *c, unsigned code)
{
	if (s->o->expect_mask & (1u << code))
		return true;
	switch (code) {
	case KJ_ABORT_QUOTA:
	case KJ_ABORT_STOPPED:
		return true; /* the job is ending: not a device failure */
	case KJ_ABORT_LOCKED_OUT:
		return c->fault == F_WRONG_HWREV;
	case KJ_ABORT_DUPLICATE:
		return c->fault == F_DUPLICATE;
	case KJ_ABORT_READBACK:
		return c->fault == F_BAD_READBACK;
	case KJ_ABORT_COUNTERFEIT:
		return c->fault == F_COUNTERFEIT;
	case KJ_ABORT_TIMEOUT:
	case KJ_ABORT_PROTOCOL:
		return c->hostile; /* what an attack should get */
	default:
		return false;
	}
}

static void on_abort(struct sim *s, struct conn *c, const struct kj_frame *f)
{
	struct kj_abort a;
	const char *why;
	bool intended;
	char outcome[32];

	if (kj_abort_parse(f->body, f->len, &a, &why) < 0)
		return appliance_bad(s, c, why);
	s->r->aborts[a.code]++;
	if (c->state == C_PARKED && a.code == KJ_ABORT_TIMEOUT) {
		/* HELLO idle limit while parked: fine, connect again. */
		return kj_sim_reconnect(s, c, false, RECONNECT_MS);
	}
	intended = abort_intended(s, c, a.code);
	if (a.code == KJ_ABORT_QUOTA || a.code == KJ_ABORT_STOPPED)
		atomic_store(&s->sh->appliance_ending, true);
	if (!intended)
		kj_log_ratelimited(&s->rl, KJ_LOG_WARN,
				   "sim: socket %u: ABORT %s: %s",
				   s->o->socket_base + c->idx,
				   kj_abort_name(a.code), a.message);
	if (c->state == C_HOSTILE) {
		if (!c->reacted) {
			c->reacted = true;
			kj_sim_hostile_answered(s, intended);
		}
		return; /* the appliance closes next */
	}
	snprintf(outcome, sizeof(outcome), "abort_%s", kj_abort_name(a.code));
	end_device(s, c, outcome, intended, NULL);
	switch (a.code) {
	case KJ_ABORT_QUOTA:
		c->state = C_PARKED;
		kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_ABORT));
		kj_sim_arm(s, c, T_RETRY,
			   QUOTA_RETRY_MS + (unsigned)(kj_sim_rnd(s) % 250));
		return kj_sim_update_events(s, c);
	case KJ_ABORT_STOPPED:
	case KJ_ABORT_UNAUTHORIZED:
		/* Refusals for good: this socket is done. */
		return kj_sim_finish_socket(s, c, !intended);
	case KJ_ABORT_PROTOCOL:
	case KJ_ABORT_TIMEOUT:
		/* The appliance closes after these (PROTOCOL.md). */
		if (!intended)
			return kj_sim_finish_socket(s, c, true);
		return kj_sim_reconnect(s, c, false, RECONNECT_MS);
	default:
		if (!intended)
			return kj_sim_finish_socket(s, c, true);
		next_device(s, c);
	}
}

static void on_frame(struct sim *s, struct conn *c, const struct kj_frame *f)
{
	switch (f->type) {
	case KJ_MSG_OFFER:
		return on_offer(s, c, f);
	case KJ_MSG_DATA:
		return on_data(s, c, f);
	case KJ_MSG_COMMIT:
		return on_commit(s, c, f);
	case KJ_MSG_ABORT:
		return on_abort(s, c, f);
	case KJ_MSG_CHALLENGE:
		if (c->state != C_WAIT_OFFER ||
		    kj_sim_dev_proof(s, c, f->body, f->len) < 0)
			return appliance_bad(s, c, "CHALLENGE this device "
						   "cannot answer (no "
						   "--device-ca?)");
		kj_frame_parser_expect(&c->parser, KJ_MSG_BIT(KJ_MSG_OFFER) |
						       KJ_MSG_BIT(KJ_MSG_ABORT));
		return;
	default:
		return appliance_bad(s, c, "unexpected frame type");
	}
}

/* The appliance closed (err 0) or reset (err = errno) the connection. */
void kj_sim_on_eof(struct sim *s, struct conn *c, int err)
{
	if (c->ssl && (err == EPROTO || kj_sim_tls_alert_pending(c)))
		return kj_sim_tls_failed(s, c);
	/* --reconnect: wait for the appliance to come back */
	if (s->o->reconnect)
		c->retry_until_ms = kj_now_ms() +
				    (uint64_t)s->o->connect_wait_s * 1000;
	switch (c->state) {
	case C_HOSTILE:
		if (!c->reacted) /* closed on the attacker */
			kj_sim_hostile_answered(s, true);
		c->reacted = true;
		return kj_sim_reconnect(s, c, false, RECONNECT_MS);
	case C_PARKED:
		/* After QUOTA, closing an idle connection ends the job. */
		if (atomic_load(&s->sh->appliance_ending) && !s->o->reconnect)
			return kj_sim_finish_socket(s, c, false);
		/* Otherwise (an appliance restart): connect again. */
		return kj_sim_reconnect(s, c, false, RECONNECT_MS);
	case C_WAIT_OFFER:
		if (c->hostile && s->o->hostile == KJ_SIM_SLOW_LORIS) {
			end_device(s, c, "slow_loris_dropped", true, NULL);
			return kj_sim_reconnect(s, c, false, RECONNECT_MS);
		}
		break;
	default:
		break;
	}
	if (!c->in_device) {
		/* Between devices (after ABORT PROTOCOL/TIMEOUT it closes). */
		return kj_sim_reconnect(s, c, false, RECONNECT_MS);
	}
	if (!c->offered && !c->hostile) {
		/*
		 * Closed with our HELLO unanswered: nothing was offered, so no
		 * device failed (an appliance stopping, a HELLO asking again
		 * after QUOTA meeting the job's end).  Connect again; if that
		 * is refused, the socket ends quietly.
		 */
		end_device(s, c, "closed_before_offer", true, NULL);
		if (atomic_load(&s->sh->appliance_ending) && !s->o->reconnect)
			return kj_sim_finish_socket(s, c, false);
		c->closed_unanswered = true;
		return kj_sim_reconnect(s, c, false, RECONNECT_MS);
	}
	kj_log_ratelimited(&s->rl, KJ_LOG_ERR,
			   "sim: socket %u: appliance %s the connection "
			   "mid-device%s%s", s->o->socket_base + c->idx,
			   err ? "reset" : "closed", err ? ": " : "",
			   err ? strerror(err) : "");
	s->r->err_closed++;
	if (!s->o->reconnect)
		return kj_sim_fail_device(s, c, "closed_by_appliance");
	end_device(s, c, "closed_by_appliance", true, NULL);
	kj_sim_reconnect(s, c, false, RECONNECT_MS);
}

void kj_sim_do_read(struct sim *s, struct conn *c)
{
	size_t cap = c->slow ? SLOW_READ_BYTES : RX_BUF, pos = 0;
	int fd = c->fd;
	ssize_t n = kj_sim_recv(c, s->rx, cap);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			kj_sim_on_eof(s, c, errno);
		return;
	}
	if (n == 0)
		return kj_sim_on_eof(s, c, 0);
	s->r->bytes_received += (uint64_t)n;
	c->last_progress_ms = kj_now_ms();
	while (pos < (size_t)n && c->fd == fd && c->state != C_SILENT) {
		struct kj_frame f;
		size_t used;
		int rc = kj_frame_feed(&c->parser, s->rx + pos,
				       (size_t)n - pos, &used, &f);

		pos += used;
		if (rc < 0)
			return appliance_bad(s, c, c->parser.why);
		if (rc == KJ_FEED_MORE)
			break;
		on_frame(s, c, &f);
	}
	if (c->fd == fd && c->slow && s->o->slow_read_ms &&
	    c->state == C_DATA) {
		kj_sim_arm(s, c, T_SLOW_READ, s->o->slow_read_ms);
		kj_sim_update_events(s, c);
	}
}

/* Write what is pending; slow-loris sockets dribble one byte per tick. */
void kj_sim_flush(struct sim *s, struct conn *c)
{
	bool dribble = c->hostile && s->o->hostile == KJ_SIM_SLOW_LORIS &&
		       c->state == C_WAIT_OFFER;

	while (c->fd >= 0 && c->out_off < c->out_len) {
		size_t n = dribble ? 1 : (size_t)(c->out_len - c->out_off);
		ssize_t w = kj_sim_send(c, c->out + c->out_off, n);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			kj_sim_on_eof(s, c, errno);
			return;
		}
		c->out_off += (uint16_t)w;
		c->last_progress_ms = kj_now_ms();
		if (dribble && c->out_off < c->out_len) {
			kj_sim_arm(s, c, T_DRIBBLE, s->o->slow_loris_ms);
			break;
		}
	}
	kj_sim_update_events(s, c);
}
