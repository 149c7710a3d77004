// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the keeper <-> injector packet framing (ipc.h): the
 * keeper reads these from the sandboxed injector, which an attacker on the
 * network may have taken over.  Invariants (abort on violation): the
 * iterator stays inside the packet, every entry it returns has the exact
 * size its type demands, the variable lengths of ADMIT and OFFER add up.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static void check_entry(unsigned type, const uint8_t *body, size_t len)
{
	struct kj_ipc_admit a;
	struct kj_ipc_offer o;
	struct kj_ipc_proof pr;

	switch (type) {
	case KJ_IPC_ADMIT:
		check(len >= sizeof(a));
		memcpy(&a, body, sizeof(a));
		check(a.uid_len >= 1 && a.uid_len <= KJ_UID_MAX);
		check(a.pubkey_len == 0 || a.pubkey_len == KJ_PUBKEY_LEN);
		check(len == sizeof(a) + a.site_len + a.uid_len + a.hwrev_len +
				     a.pubkey_len + a.cn_len);
		check(len <= KJ_IPC_ADMIT_MAX);
		break;
	case KJ_IPC_OFFER:
		check(len >= sizeof(o));
		memcpy(&o, body, sizeof(o));
		check(o.serial_len >= 1 && len == sizeof(o) + o.serial_len);
		break;
	case KJ_IPC_READY:
		check(len == sizeof(struct kj_ipc_ready));
		break;
	case KJ_IPC_OUTCOME:
		check(len == sizeof(struct kj_ipc_outcome));
		break;
	case KJ_IPC_COUNTERS:
		check(len == sizeof(struct kj_ipc_counters));
		break;
	case KJ_IPC_REFUSE:
		check(len == sizeof(struct kj_ipc_refuse));
		break;
	case KJ_IPC_VERDICT:
		check(len == sizeof(struct kj_ipc_verdict));
		break;
	case KJ_IPC_STOP:
		check(len == sizeof(struct kj_ipc_stop));
		break;
	case KJ_IPC_CHALLENGE:
		check(len == sizeof(struct kj_ipc_challenge));
		break;
	case KJ_IPC_PROOF:
		check(len >= sizeof(pr));
		memcpy(&pr, body, sizeof(pr));
		check(pr.status <= KJ_PROOF_STATUS_MAX_);
		check(pr.status == KJ_PROOF_GIVEN ?
		      pr.cert_len >= 1 && pr.cert_len <= KJ_PROOF_CERT_MAX :
		      pr.cert_len == 0);
		check(len == sizeof(pr) + pr.cert_len);
		check(len <= KJ_IPC_PROOF_MAX);
		break;
	case KJ_IPC_SIGN:
		/* the bodies' own rules: fuzz_tls_ipc.c */
		check(len > sizeof(struct kj_ipc_sign) &&
		      len <= KJ_IPC_SIGN_MAX);
		break;
	case KJ_IPC_SIGNED:
		check(len == sizeof(struct kj_ipc_signed));
		break;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kj_ipc_iter it;
	const uint8_t *body;
	const char *why = NULL;
	unsigned type;
	size_t len;
	int rc;

	if (size > KJ_IPC_MSG_MAX)
		return 0;
	kj_ipc_iter_init(&it, data, size);
	while ((rc = kj_ipc_next(&it, &type, &body, &len, &why)) > 0) {
		check(body >= data && body + len <= data + size);
		check(it.off <= size);
		check_entry(type, body, len);
	}
	check(rc == 0 || (rc == -EBADMSG && why));
	return 0;
}
