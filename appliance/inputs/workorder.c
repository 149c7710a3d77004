// SPDX-License-Identifier: Apache-2.0
/* WO.json, SPEC.md §3.3: strict parse; decisions in docs/INPUT-FORMATS.md. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "workorder.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"

static const char *const top_keys[] = {
	"kinject_work_order", "id", "customer", "product", "batch",
	"quantity", "max_failed", "hardware_revisions", "firmware", "serial",
	"credential_mode", NULL
};
static const char *const fw_keys[] = { "version", "sha256", NULL };
static const char *const serial_keys[] = { "prefix", "start", NULL };

static int parse_hwrevs(const json_t *root, const char *file,
			struct kj_work_order *wo)
{
	const json_t *arr, *v;
	size_t i;

	arr = kj_json_get(root, file, "", "hardware_revisions", JSON_ARRAY);
	if (!arr)
		return -EINVAL;
	if (!json_array_size(arr) || json_array_size(arr) > KJ_WO_MAX_HWREV) {
		kj_err("%s: field \"hardware_revisions\": expected 1..%d "
		       "revisions, got %zu", file, KJ_WO_MAX_HWREV,
		       json_array_size(arr));
		return -EINVAL;
	}
	json_array_foreach(arr, i, v) {
		char path[64];

		snprintf(path, sizeof(path), "hardware_revisions[%zu]", i);
		if (!json_is_string(v)) {
			kj_err("%s: field \"%s\": expected a string", file,
			       path);
			return -EINVAL;
		}
		KJ_TRY(kj_json_check_str(json_string_value(v),
					 json_string_length(v), file, path,
					 KJ_STR_NAME, KJ_NAME_MAX));
		for (size_t j = 0; j < i; j++) {
			if (strcmp(wo->hwrev[j], json_string_value(v)))
				continue;
			kj_err("%s: field \"%s\": revision \"%s\" listed twice",
			       file, path, wo->hwrev[j]);
			return -EINVAL;
		}
		strcpy(wo->hwrev[i], json_string_value(v));
	}
	wo->n_hwrev = (unsigned)i;
	return 0;
}

static int parse_firmware(const json_t *root, const char *file,
			  struct kj_work_order *wo)
{
	const json_t *fw = kj_json_get(root, file, "", "firmware", JSON_OBJECT);
	char what[128], q[80];
	const json_t *h;

	if (!fw)
		return -EINVAL;
	KJ_TRY(kj_json_only_keys(fw, file, "firmware", fw_keys));
	KJ_TRY(kj_json_str(fw, file, "firmware", "version", KJ_STR_TEXT,
			   KJ_SEMVER_STR_MAX - 1, wo->fw_version_str));
	snprintf(what, sizeof(what), "%s: field \"firmware.version\"", file);
	KJ_TRY(kj_semver_parse(wo->fw_version_str, what, &wo->fw_version));
	h = kj_json_get(fw, file, "firmware", "sha256", JSON_STRING);
	if (!h)
		return -EINVAL;
	if (json_string_length(h) != 64 ||
	    kj_hex_decode(json_string_value(h), wo->fw_sha256, 32) < 0) {
		kj_err("%s: field \"firmware.sha256\": expected 64 hex digits, "
		       "got `%s'", file,
		       kj_json_printable(json_string_value(h),
					 json_string_length(h), q, sizeof(q)));
		return -EINVAL;
	}
	return 0;
}

static int parse_serial(const json_t *root, const char *file,
			struct kj_work_order *wo)
{
	const json_t *s = kj_json_get(root, file, "", "serial", JSON_OBJECT);

	if (!s)
		return -EINVAL;
	KJ_TRY(kj_json_only_keys(s, file, "serial", serial_keys));
	KJ_TRY(kj_json_str(s, file, "serial", "prefix", KJ_STR_NAME,
			   KJ_PREFIX_MAX, wo->serial_prefix));
	KJ_TRY(kj_json_u64(s, file, "serial", "start", 0,
			   KJ_WO_SERIAL_START_MAX, &wo->serial_start));
	return 0;
}

const char *kj_cred_mode_name(enum kj_cred_mode m)
{
	switch (m) {
	case KJ_CRED_PLAIN: return "plain";
	case KJ_CRED_INJECT: return "inject";
	case KJ_CRED_ISSUE: return "issue";
	default: return "?";
	}
}

static int parse_cred_mode(const json_t *root, const char *file,
			   struct kj_work_order *wo)
{
	char mode[16];

	wo->cred_mode = KJ_CRED_PLAIN;
	if (!json_object_get(root, "credential_mode"))
		return 0;
	KJ_TRY(kj_json_str(root, file, "", "credential_mode", KJ_STR_NAME,
			   sizeof(mode) - 1, mode));
	for (int m = KJ_CRED_PLAIN; m <= KJ_CRED_ISSUE; m++) {
		if (!strcmp(mode, kj_cred_mode_name((enum kj_cred_mode)m))) {
			wo->cred_mode = (enum kj_cred_mode)m;
			return 0;
		}
	}
	kj_err("%s: field \"credential_mode\": expected \"plain\", "
	       "\"inject\" or \"issue\", got `%s'", file, mode);
	return -EINVAL;
}

static int parse_root(const json_t *root, const char *file,
		      struct kj_work_order *wo)
{
	KJ_TRY(kj_json_only_keys(root, file, "", top_keys));
	KJ_TRY(kj_json_version(root, file, "kinject_work_order", 1));
	KJ_TRY(kj_json_str(root, file, "", "id", KJ_STR_LABEL, KJ_LABEL_MAX,
			   wo->id));
	KJ_TRY(kj_json_str(root, file, "", "customer", KJ_STR_NAME,
			   KJ_NAME_MAX, wo->customer));
	KJ_TRY(kj_json_str(root, file, "", "product", KJ_STR_NAME,
			   KJ_NAME_MAX, wo->product));
	KJ_TRY(kj_json_str(root, file, "", "batch", KJ_STR_LABEL,
			   KJ_LABEL_MAX, wo->batch));
	KJ_TRY(kj_json_u64(root, file, "", "quantity", 1, KJ_WO_QUANTITY_MAX,
			   &wo->quantity));
	KJ_TRY(kj_json_u64(root, file, "", "max_failed", 0,
			   KJ_WO_MAX_FAILED_MAX, &wo->max_failed));
	KJ_TRY(parse_hwrevs(root, file, wo));
	KJ_TRY(parse_firmware(root, file, wo));
	KJ_TRY(parse_serial(root, file, wo));
	KJ_TRY(parse_cred_mode(root, file, wo));
	return 0;
}

int kj_work_order_parse(const uint8_t *buf, size_t len, const char *name,
			struct kj_work_order *wo)
{
	json_t *root;
	int rc;

	memset(wo, 0, sizeof(*wo));
	if (len > KJ_WO_FILE_MAX) {
		kj_err("%s: %zu bytes, more than the limit of %d", name, len,
		       KJ_WO_FILE_MAX);
		return -EINVAL;
	}
	KJ_TRY(kj_json_load(buf, len, name, &root));
	rc = parse_root(root, name, wo);
	json_decref(root);
	if (rc < 0)
		goto fail;
	wo->raw = malloc(len ? len : 1);
	if (!wo->raw) {
		rc = -ENOMEM;
		kj_err("%s: out of memory", name);
		goto fail;
	}
	memcpy(wo->raw, buf, len);
	wo->raw_len = len;
	kj_sha256(buf, len, wo->sha256);
	return 0;
fail:
	memset(wo, 0, sizeof(*wo));
	return rc;
}

int kj_work_order_load(const char *path, struct kj_work_order *wo)
{
	uint8_t *buf;
	size_t len;
	int rc;

	KJ_TRY(kj_read_file(path, KJ_WO_FILE_MAX, &buf, &len));
	rc = kj_work_order_parse(buf, len, path, wo);
	free(buf);
	return rc;
}

void kj_work_order_free(struct kj_work_order *wo)
{
	free(wo->raw);
	memset(wo, 0, sizeof(*wo));
}

bool kj_order_hwrev_allowed(const struct kj_work_order *wo, const char *hwrev,
			    size_t len)
{
	if (len > KJ_NAME_MAX)
		return false;
	for (unsigned i = 0; i < wo->n_hwrev; i++)
		if (strlen(wo->hwrev[i]) == len &&
		    !memcmp(wo->hwrev[i], hwrev, len))
			return true;
	return false;
}
