// SPDX-License-Identifier: Apache-2.0
/* Keeper <-> injector packet framing and per-type size rules (ipc.h). */
#include <string.h>

#include "ipc.h"

const char *kj_ipc_type_name(unsigned type)
{
	switch (type) {
	case KJ_IPC_READY: return "READY";
	case KJ_IPC_ADMIT: return "ADMIT";
	case KJ_IPC_OUTCOME: return "OUTCOME";
	case KJ_IPC_COUNTERS: return "COUNTERS";
	case KJ_IPC_PROOF: return "PROOF";
	case KJ_IPC_OFFER: return "OFFER";
	case KJ_IPC_REFUSE: return "REFUSE";
	case KJ_IPC_VERDICT: return "VERDICT";
	case KJ_IPC_STOP: return "STOP";
	case KJ_IPC_CHALLENGE: return "CHALLENGE";
	case KJ_IPC_SIGN: return "SIGN";
	case KJ_IPC_SIGNED: return "SIGNED";
	case KJ_IPC_LOAD: return "LOAD";
	default: return "unknown";
	}
}

int kj_ipc_put(struct kj_ipc_buf *b, unsigned type, const void *a,
	       size_t alen, const void *c, size_t clen)
{
	size_t len = alen + clen, need = kj_ipc_ent_size(len);
	struct kj_ipc_ent ent = { .type = (uint16_t)type,
				  .len = (uint16_t)len };
	uint8_t *p;

	if (len > UINT16_MAX || need > KJ_IPC_MSG_MAX - b->len)
		return -ENOSPC;
	p = b->p + b->len;
	memcpy(p, &ent, sizeof(ent));
	p += sizeof(ent);
	memcpy(p, a, alen);
	if (clen)
		memcpy(p + alen, c, clen);
	memset(p + len, 0, need - sizeof(ent) - len);
	b->len += need;
	b->n++;
	return 0;
}

/* The exact body size an entry of this type must have, or 0 if unknown. */
static size_t body_size(unsigned type, const uint8_t *body, size_t len)
{
	switch (type) {
	case KJ_IPC_READY:
		return sizeof(struct kj_ipc_ready);
	case KJ_IPC_OUTCOME:
		return sizeof(struct kj_ipc_outcome);
	case KJ_IPC_COUNTERS:
		return sizeof(struct kj_ipc_counters);
	case KJ_IPC_REFUSE:
		return sizeof(struct kj_ipc_refuse);
	case KJ_IPC_VERDICT:
		return sizeof(struct kj_ipc_verdict);
	case KJ_IPC_STOP:
		return sizeof(struct kj_ipc_stop);
	case KJ_IPC_LOAD:
		return sizeof(struct kj_ipc_load);
	case KJ_IPC_CHALLENGE:
		return sizeof(struct kj_ipc_challenge);
	case KJ_IPC_PROOF: {
		struct kj_ipc_proof p;

		if (len < sizeof(p))
			return sizeof(p);
		memcpy(&p, body, sizeof(p));
		if (p.status > KJ_PROOF_STATUS_MAX_ ||
		    (p.status == KJ_PROOF_GIVEN) !=
			    (p.cert_len >= 1 && p.cert_len <= KJ_PROOF_CERT_MAX))
			return SIZE_MAX;
		return sizeof(p) + p.cert_len;
	}
	case KJ_IPC_ADMIT: {
		struct kj_ipc_admit a;

		if (len < sizeof(a))
			return sizeof(a);
		memcpy(&a, body, sizeof(a));
		if (a.uid_len < 1 || a.uid_len > KJ_UID_MAX ||
		    (a.pubkey_len != 0 && a.pubkey_len != KJ_PUBKEY_LEN))
			return SIZE_MAX;
		return sizeof(a) + a.site_len + a.uid_len + a.hwrev_len +
		       a.pubkey_len + a.cn_len;
	}
	case KJ_IPC_SIGN: {
		struct kj_ipc_sign g;

		if (len < sizeof(g))
			return sizeof(g);
		memcpy(&g, body, sizeof(g));
		if (g.len < 1 || g.len > KJ_IPC_SIGN_IN_MAX)
			return SIZE_MAX;
		return sizeof(g) + g.len;
	}
	case KJ_IPC_SIGNED: {
		struct kj_ipc_signed g;

		if (len < sizeof(g))
			return sizeof(g);
		memcpy(&g, body, sizeof(g));
		return g.sig_len > KJ_IPC_SIG_MAX ? SIZE_MAX : sizeof(g);
	}
	case KJ_IPC_OFFER: {
		struct kj_ipc_offer o;

		if (len < sizeof(o))
			return sizeof(o);
		memcpy(&o, body, sizeof(o));
		if (o.serial_len < 1)
			return SIZE_MAX;
		return sizeof(o) + o.serial_len;
	}
	default:
		return 0;
	}
}

int kj_ipc_next(struct kj_ipc_iter *it, unsigned *type, const uint8_t **body,
		size_t *len, const char **why)
{
	struct kj_ipc_ent ent;
	size_t left = it->len - it->off, want;

	if (left == 0)
		return 0;
	if (left < sizeof(ent)) {
		*why = "truncated entry header";
		return -EBADMSG;
	}
	memcpy(&ent, it->p + it->off, sizeof(ent));
	if (ent.reserved != 0) {
		*why = "reserved header bits set";
		return -EBADMSG;
	}
	if (kj_ipc_ent_size(ent.len) > left) {
		*why = "entry longer than the packet";
		return -EBADMSG;
	}
	*body = it->p + it->off + sizeof(ent);
	want = body_size(ent.type, *body, ent.len);
	if (want == 0) {
		*why = "unknown entry type";
		return -EBADMSG;
	}
	if (want != ent.len) {
		*why = "entry size wrong for its type";
		return -EBADMSG;
	}
	*type = ent.type;
	*len = ent.len;
	it->off += kj_ipc_ent_size(ent.len);
	return 1;
}
