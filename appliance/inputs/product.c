// SPDX-License-Identifier: Apache-2.0
/*
 * Product matrix (SPEC.md §3.4) and the job-level lock-out check: a job
 * whose firmware is not allowed for every listed revision does not start.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <unistd.h>

#include "product.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"

static const char *const top_keys[] = {
	"kinject_product", "product", "customer", "version", "min_firmware",
	"hardware", "device_ca", NULL
};
static const char *const hw_keys[] = { "firmware", NULL };

#define KJ_PRODUCT_VERSION_MAX ((1ULL << 53) - 1) /* exact in JSON */

static int parse_hw_entry(const char *file, const char *rev,
			  const json_t *entry, struct kj_product_hw *hw)
{
	char parent[128], what[192];

	snprintf(parent, sizeof(parent), "hardware.%s", rev);
	if (!json_is_object(entry)) {
		kj_err("%s: field \"%s\": expected an object like "
		       "{\"firmware\": \">=3.0.0 <4.0.0\"}", file, parent);
		return -EINVAL;
	}
	KJ_TRY(kj_json_only_keys(entry, file, parent, hw_keys));
	KJ_TRY(kj_json_str(entry, file, parent, "firmware", KJ_STR_TEXT,
			   KJ_RULE_MAX, hw->rule));
	snprintf(what, sizeof(what), "%s: field \"%s.firmware\" (hardware "
		 "revision \"%s\")", file, parent, rev);
	KJ_TRY(kj_semver_range_parse(hw->rule, what, &hw->range));
	snprintf(hw->name, sizeof(hw->name), "%s", rev);
	return 0;
}

static int parse_hardware(const json_t *root, const char *file,
			  struct kj_product *pm)
{
	const json_t *hw = kj_json_get(root, file, "", "hardware", JSON_OBJECT);
	const char *rev;
	json_t *entry;

	if (!hw)
		return -EINVAL;
	if (!json_object_size(hw) || json_object_size(hw) > KJ_PRODUCT_MAX_HW) {
		kj_err("%s: field \"hardware\": expected 1..%d hardware "
		       "revisions, got %zu", file, KJ_PRODUCT_MAX_HW,
		       json_object_size(hw));
		return -EINVAL;
	}
	json_object_foreach((json_t *)hw, rev, entry) {
		/* Check the key first: it becomes part of every path below. */
		KJ_TRY(kj_json_check_str(rev, strlen(rev), file, "hardware",
					 KJ_STR_NAME, KJ_NAME_MAX));
		KJ_TRY(parse_hw_entry(file, rev, entry, &pm->hw[pm->n_hw]));
		pm->n_hw++;
	}
	return 0;
}

/* One "device_ca" entry: base64 of a CA certificate's DER, exactly. */
static int parse_device_ca(const char *file, size_t i, const json_t *v,
			   X509 **out)
{
	const char *b64 = json_string_value(v);
	size_t n = b64 ? strlen(b64) : 0;
	const unsigned char *p;
	unsigned char *der;
	int len;

	if (!n || n % 4 || n > 64 * 1024) {
		kj_err("%s: field \"device_ca[%zu]\": expected the base64 "
		       "of a CA certificate (DER)", file, i);
		return -EINVAL;
	}
	der = malloc(n);
	if (!der)
		return -ENOMEM;
	len = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)n);
	if (len > 0)
		len -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
	p = der;
	*out = len > 0 ? d2i_X509(NULL, &p, len) : NULL;
	if (!*out || p != der + len) {
		kj_err("%s: field \"device_ca[%zu]\": not the base64 of one "
		       "DER X.509 certificate", file, i);
		X509_free(*out);
		*out = NULL;
		free(der);
		return -EINVAL;
	}
	free(der);
	return 0;
}

static int parse_device_cas(const json_t *root, const char *file,
			    struct kj_product *pm)
{
	const json_t *a = json_object_get(root, "device_ca");
	size_t i;
	json_t *v;

	if (!a)
		return 0;
	if (!json_is_array(a) || !json_array_size(a) ||
	    json_array_size(a) > KJ_PRODUCT_MAX_DEVICE_CA) {
		kj_err("%s: field \"device_ca\": expected an array of 1..%d "
		       "base64 DER certificates", file,
		       KJ_PRODUCT_MAX_DEVICE_CA);
		return -EINVAL;
	}
	json_array_foreach(a, i, v) {
		KJ_TRY(parse_device_ca(file, i, v, &pm->device_ca[i]));
		pm->n_device_ca++;
	}
	return 0;
}

static void free_device_cas(struct kj_product *pm)
{
	for (unsigned i = 0; i < pm->n_device_ca; i++)
		X509_free(pm->device_ca[i]);
	pm->n_device_ca = 0;
}

static int parse_root(const json_t *root, const char *file,
		      struct kj_product *pm)
{
	char what[128];

	KJ_TRY(kj_json_only_keys(root, file, "", top_keys));
	KJ_TRY(kj_json_version(root, file, "kinject_product", 1));
	KJ_TRY(kj_json_str(root, file, "", "product", KJ_STR_NAME,
			   KJ_NAME_MAX, pm->product));
	KJ_TRY(kj_json_str(root, file, "", "customer", KJ_STR_NAME,
			   KJ_NAME_MAX, pm->customer));
	KJ_TRY(kj_json_str(root, file, "", "min_firmware", KJ_STR_TEXT,
			   KJ_SEMVER_STR_MAX - 1, pm->min_firmware_str));
	snprintf(what, sizeof(what), "%s: field \"min_firmware\"", file);
	KJ_TRY(kj_semver_parse(pm->min_firmware_str, what, &pm->min_firmware));
	KJ_TRY(parse_hardware(root, file, pm));
	KJ_TRY(kj_json_u64(root, file, "", "version", 1,
			   KJ_PRODUCT_VERSION_MAX, &pm->version));
	return parse_device_cas(root, file, pm);
}

int kj_product_parse(const uint8_t *buf, size_t len, const char *name,
		     struct kj_product *pm)
{
	json_t *root;
	int rc;

	memset(pm, 0, sizeof(*pm));
	if (len > KJ_PRODUCT_FILE_MAX) {
		kj_err("%s: %zu bytes, more than the limit of %d", name, len,
		       KJ_PRODUCT_FILE_MAX);
		return -EINVAL;
	}
	KJ_TRY(kj_json_load(buf, len, name, &root));
	rc = parse_root(root, name, pm);
	json_decref(root);
	if (rc < 0)
		goto fail;
	pm->raw = malloc(len ? len : 1);
	if (!pm->raw) {
		rc = -ENOMEM;
		kj_err("%s: out of memory", name);
		goto fail;
	}
	memcpy(pm->raw, buf, len);
	pm->raw_len = len;
	kj_sha256(buf, len, pm->sha256);
	return 0;
fail:
	free_device_cas(pm);
	memset(pm, 0, sizeof(*pm));
	return rc;
}

int kj_product_load(const char *path, struct kj_product *pm)
{
	uint8_t *buf;
	size_t len;
	int rc;

	KJ_TRY(kj_read_file(path, KJ_PRODUCT_FILE_MAX, &buf, &len));
	rc = kj_product_parse(buf, len, path, pm);
	free(buf);
	return rc;
}

void kj_product_free(struct kj_product *pm)
{
	free_device_cas(pm);
	free(pm->raw);
	memset(pm, 0, sizeof(*pm));
}

const struct kj_product_hw *kj_product_find_hw(const struct kj_product *pm,
					       const char *hwrev)
{
	for (unsigned i = 0; i < pm->n_hw; i++)
		if (!strcmp(pm->hw[i].name, hwrev))
			return &pm->hw[i];
	return NULL;
}

int kj_order_check(const struct kj_work_order *wo, const struct kj_product *pm)
{
	if (strcmp(wo->product, pm->product)) {
		kj_err("work order %s: product \"%s\" does not match the "
		       "product matrix's \"%s\"", wo->id, wo->product,
		       pm->product);
		return -EPERM;
	}
	if (strcmp(wo->customer, pm->customer)) {
		kj_err("work order %s: customer \"%s\" does not match the "
		       "product matrix's \"%s\" (product %s)", wo->id,
		       wo->customer, pm->customer, pm->product);
		return -EPERM;
	}
	if (kj_semver_cmp(&wo->fw_version, &pm->min_firmware) < 0) {
		kj_err("work order %s: firmware %s is below min_firmware %s "
		       "of product %s (anti-rollback)", wo->id,
		       wo->fw_version_str, pm->min_firmware_str, pm->product);
		return -EPERM;
	}
	for (unsigned i = 0; i < wo->n_hwrev; i++) {
		const struct kj_product_hw *hw =
			kj_product_find_hw(pm, wo->hwrev[i]);

		if (!hw) {
			kj_err("work order %s: hardware revision \"%s\" is not "
			       "in the product matrix of %s", wo->id,
			       wo->hwrev[i], pm->product);
			return -EPERM;
		}
		if (!kj_semver_range_match(&hw->range, &wo->fw_version)) {
			kj_err("work order %s: hardware revision \"%s\": "
			       "firmware %s not allowed by rule \"%s\"",
			       wo->id, hw->name, wo->fw_version_str, hw->rule);
			return -EPERM;
		}
	}
	return 0;
}

/* ---- the matrix's own anti-rollback (SPEC.md §3.4) ---- */

static int version_path(const char *state_dir, const struct kj_product *pm,
			char *out, size_t cap, bool dir_only)
{
	int n = dir_only ? snprintf(out, cap, "%s/products", state_dir) :
		snprintf(out, cap, "%s/products/%s.version", state_dir,
			 pm->product);

	if (n < 0 || (size_t)n >= cap) {
		kj_err("%s: state dir path too long", state_dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* The kept version, 0 if none. */
static int kept_version(const char *path, uint64_t *out)
{
	uint8_t *buf;
	size_t len;
	char *end;
	int rc;

	*out = 0;
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0; /* no matrix of this product accepted yet */
	KJ_TRY(kj_read_file(path, 64, &buf, &len));
	errno = 0;
	*out = strtoull((const char *)buf, &end, 10);
	rc = errno || end == (char *)buf || (*end != '\n' && *end) ||
	     *out > KJ_PRODUCT_VERSION_MAX ? -EBADMSG : 0;
	free(buf);
	if (rc < 0)
		kj_err("%s: not a matrix version: restore it from a backup of "
		       "the state dir", path);
	return rc;
}

int kj_product_version_check(const char *state_dir,
			     const struct kj_product *pm)
{
	char path[4096];
	uint64_t kept;

	KJ_TRY(version_path(state_dir, pm, path, sizeof(path), false));
	KJ_TRY(kept_version(path, &kept));
	if (pm->version < kept) {
		kj_err("product matrix of `%s': version %llu is older than "
		       "version %llu, which this appliance already accepted "
		       "(%s): an old matrix could bring back firmware it "
		       "locked out; ask the customer for the current one",
		       pm->product, (unsigned long long)pm->version,
		       (unsigned long long)kept, path);
		return -EPERM;
	}
	return 0;
}

int kj_product_version_record(const char *state_dir,
			      const struct kj_product *pm)
{
	char path[4096], text[32];
	uint64_t kept;
	int n;

	KJ_TRY(version_path(state_dir, pm, path, sizeof(path), true));
	KJ_TRY(kj_mkdir_p(path, 0700));
	KJ_TRY(version_path(state_dir, pm, path, sizeof(path), false));
	KJ_TRY(kept_version(path, &kept));
	if (pm->version <= kept)
		return 0;
	n = snprintf(text, sizeof(text), "%llu\n",
		     (unsigned long long)pm->version);
	return kj_write_file_atomic(path, text, (size_t)n, 0600);
}
