// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer: the streamed bundle reader `kinject verify` uses (issue 12)
 * must accept exactly what the in-memory parser accepts, with the same
 * records and proofs: its own scanner and the fast record reader only
 * decide where values end and take the plain form, the rest is the
 * parser's.  Abort on any difference.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "evidence/evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The streamed reading of the file: 0 and *n records, or < 0. */
static int stream(const char *path, const struct kj_evidence *mem,
		  size_t *n)
{
	struct kj_evidence ev;
	struct kj_ev_record r;
	int rc;

	*n = 0;
	if (kj_evidence_load(path, &ev) < 0)
		return -1;
	while ((rc = kj_evidence_next_record(&ev, &r)) > 0) {
		const struct kj_ev_record *m;

		if (mem) {
			if (*n >= mem->n_records)
				abort();
			m = &mem->records[*n];
			if (r.leaf_index != m->leaf_index ||
			    r.checkpoint != m->checkpoint ||
			    r.jcs_len != m->jcs_len ||
			    memcmp(r.jcs, m->jcs, r.jcs_len) ||
			    r.proof_len != m->proof_len ||
			    (r.proof_len &&
			     memcmp(r.proof, m->proof, 32 * r.proof_len)))
				abort();
		}
		kj_ev_record_release(&r);
		(*n)++;
	}
	if (!rc && mem && (ev.n_checkpoints != mem->n_checkpoints ||
			   ev.n_consistency != mem->n_consistency ||
			   ev.n_events != mem->n_events))
		abort();
	kj_evidence_free(&ev);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kj_evidence mem;
	bool parsed;
	char path[64];
	size_t n;
	int fd, rc;

	fd = memfd_create("bundle", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	parsed = kj_evidence_parse(data, size, "evidence.json", &mem) == 0;
	rc = stream(path, parsed ? &mem : NULL, &n);
	if (parsed != (rc == 0) || (parsed && n != mem.n_records))
		abort();
	if (parsed)
		kj_evidence_free(&mem);
	close(fd);
	return 0;
}
