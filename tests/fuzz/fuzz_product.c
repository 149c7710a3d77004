// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer: product matrix parser, the lock-out check against a fixed
 * work order, and the version/rule grammar on the raw input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inputs/product.h"
#include "inputs/semver.h"
#include "inputs/workorder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char wo_json[] =
	"{\"kinject_work_order\": 1, \"id\": \"WO-1\", \"customer\": \"acme\","
	" \"product\": \"acme-sensor\", \"batch\": \"L\", \"quantity\": 1, "
	"\"max_failed\": 0, \"hardware_revisions\": [\"B\", \"C\"], "
	"\"firmware\": {\"version\": \"3.1.5\", \"sha256\": "
	"\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"},"
	" \"serial\": {\"prefix\": \"AS\", \"start\": 0}}";

static void fuzz_grammar(const uint8_t *data, size_t size)
{
	struct kj_semver_range r;
	struct kj_semver v;
	char s[300];

	if (size >= sizeof(s))
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	if (kj_semver_parse(s, "v", &v) == 0) {
		char back[KJ_SEMVER_STR_MAX];

		/* Accepted versions are canonical: they print back the same. */
		kj_semver_format(&v, back);
		if (strcmp(back, s))
			abort();
	}
	if (kj_semver_range_parse(s, "r", &r) == 0) {
		if (!r.n || r.n > KJ_RANGE_MAX)
			abort();
		v = r.c[0].v;
		(void)kj_semver_range_match(&r, &v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kj_work_order wo;
	static int have_wo;
	struct kj_product *pm = malloc(sizeof(*pm));

	if (!have_wo) {
		if (kj_work_order_parse((const uint8_t *)wo_json,
					strlen(wo_json), "WO", &wo))
			abort();
		have_wo = 1;
	}
	fuzz_grammar(data, size);
	if (!pm)
		return 0;
	if (kj_product_parse(data, size, "P.json", pm) == 0) {
		if (!pm->n_hw || pm->n_hw > KJ_PRODUCT_MAX_HW)
			abort();
		(void)kj_order_check(&wo, pm);
		kj_product_free(pm);
	}
	free(pm);
	return 0;
}
