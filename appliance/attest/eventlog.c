// SPDX-License-Identifier: Apache-2.0
/*
 * PCR event-log replay and the epoch rules of EVIDENCE.md §4.  Pure
 * computation: the journal stores the entries, tpm.c reads and extends.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "eventlog.h"
#include "base/log.h"
#include "base/util.h"

void kj_pcr_extend_sw(uint8_t pcr[32], const uint8_t digest[32])
{
	uint8_t buf[64];

	/* EVIDENCE.md §4: PCR_new = SHA-256(PCR_old ‖ digest) */
	memcpy(buf, pcr, 32);
	memcpy(buf + 32, digest, 32);
	kj_sha256(buf, sizeof(buf), pcr);
}

static int check_entry(const struct kj_event *e, size_t i)
{
	if (e->pcr >= KJ_TPM_PCR_COUNT) {
		kj_err("event log: entry %zu (%s): PCR %u does not exist", i,
		       e->name, e->pcr);
		return -EINVAL;
	}
	return 0;
}

int kj_eventlog_replay(const struct kj_event *ev, size_t n, uint32_t epoch,
		       uint8_t pcrs[KJ_TPM_PCR_COUNT][32])
{
	memset(pcrs, 0, KJ_TPM_PCR_COUNT * 32);
	for (size_t i = 0; i < n; i++) {
		if (ev[i].epoch != epoch || ev[i].is_void)
			continue;
		KJ_TRY(check_entry(&ev[i], i));
		kj_pcr_extend_sw(pcrs[ev[i].pcr], ev[i].digest);
	}
	return 0;
}

const char *kj_epoch_decision_name(enum kj_epoch_decision d)
{
	switch (d) {
	case KJ_EPOCH_CONTINUE: return "continue";
	case KJ_EPOCH_CONTINUE_VOID: return "continue (last entry void)";
	case KJ_EPOCH_NEW: return "new epoch";
	case KJ_EPOCH_BROKEN: return "broken";
	default: return "unknown";
	}
}

static bool pcrs_equal(uint32_t mask, const uint8_t a[KJ_TPM_PCR_COUNT][32],
		       const uint8_t b[KJ_TPM_PCR_COUNT][32])
{
	for (unsigned i = 0; i < KJ_TPM_PCR_COUNT; i++)
		if ((mask & KJ_PCR_BIT(i)) && CRYPTO_memcmp(a[i], b[i], 32))
			return false;
	return true;
}

static bool pcrs_zero(uint32_t mask, const uint8_t p[KJ_TPM_PCR_COUNT][32])
{
	static const uint8_t zero[32];

	for (unsigned i = 0; i < KJ_TPM_PCR_COUNT; i++)
		if ((mask & KJ_PCR_BIT(i)) && memcmp(p[i], zero, 32))
			return false;
	return true;
}

int kj_eventlog_decide(const struct kj_event *ev, size_t n, uint32_t mask,
		       const uint8_t pcrs[KJ_TPM_PCR_COUNT][32],
		       enum kj_epoch_decision *decision, uint32_t *epoch,
		       size_t *void_index)
{
	uint8_t replay[KJ_TPM_PCR_COUNT][32];
	uint32_t cur = n ? ev[n - 1].epoch : 0;
	size_t last = n;

	for (size_t i = 0; i < n; i++) {
		KJ_TRY(check_entry(&ev[i], i));
		if (i && ev[i].epoch < ev[i - 1].epoch) {
			kj_err("event log: entry %zu: epoch %u after epoch %u",
			       i, ev[i].epoch, ev[i - 1].epoch);
			return -EINVAL;
		}
	}
	*epoch = cur;
	/* Zero first: a reset also explains zero PCRs after a one-entry
	 * epoch, and voiding an entry that was quoted would break replay. */
	if (pcrs_zero(mask, pcrs)) {
		*decision = KJ_EPOCH_NEW;
		*epoch = n ? cur + 1 : 0;
		return 0;
	}
	if (!n)
		goto broken;
	KJ_TRY(kj_eventlog_replay(ev, n, cur, replay));
	if (pcrs_equal(mask, pcrs, replay)) {
		*decision = KJ_EPOCH_CONTINUE;
		return 0;
	}
	/* The last live entry of the current epoch may never have reached
	 * the TPM (crash between the durable entry and its extend). */
	for (size_t i = n; i-- > 0 && ev[i].epoch == cur;) {
		if (!ev[i].is_void) {
			last = i;
			break;
		}
	}
	if (last < n) {
		KJ_TRY(kj_eventlog_replay(ev, last, cur, replay));
		if (pcrs_equal(mask, pcrs, replay)) {
			*decision = KJ_EPOCH_CONTINUE_VOID;
			if (void_index)
				*void_index = last;
			return 0;
		}
	}
broken:
	*decision = KJ_EPOCH_BROKEN;
	kj_err("event log: the PCRs read (mask 0x%06x) are neither zero nor the replay of epoch %u (%zu entries): the measurement chain is broken",
	       mask, cur, n);
	return 0;
}

int kj_measure_file(const char *path, uint8_t digest[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t buf[65536];
	int fd, rc = 0;
	ssize_t r;

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return kj_err_ssl("%s: cannot hash", path);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		kj_err("%s: cannot open for measurement: %s", path,
		       strerror(errno));
		goto out;
	}
	while ((r = read(fd, buf, sizeof(buf))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			kj_err("%s: read failed: %s", path, strerror(errno));
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)r);
	}
	if (!EVP_DigestFinal_ex(ctx, digest, NULL))
		rc = kj_err_ssl("%s: cannot hash", path);
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(ctx);
	return rc;
}
