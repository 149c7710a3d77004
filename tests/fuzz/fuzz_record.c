// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer: the strict JCS record parser (the verifier's view of a leaf).
 * Invariant: whatever it accepts re-serialises to exactly the same bytes,
 * so two different byte strings never parse to the same record.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "journal/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char out[KJ_RECORD_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kj_record r;
	uint64_t ms;
	int n;

	(void)kj_record_parse_time((const char *)data, size, &ms);
	if (kj_record_parse(data, size, &r) < 0)
		return 0;
	n = kj_record_serialize(&r, out, sizeof(out));
	if (n < 0 || (size_t)n != size || memcmp(out, data, size))
		abort();
	kj_record_release(&r);
	return 0;
}
