// SPDX-License-Identifier: Apache-2.0
/* The --sites file, PROTOCOL.md "UNAUTHORIZED"; see sites.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sites.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"

static const char *const top_keys[] = { "kinject_sites", "sites", NULL };

static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* Ids compare as byte strings; equal prefixes order the shorter first. */
static int cmp_id(const char *a, size_t alen, const char *b, size_t blen)
{
	int r = memcmp(a, b, alen < blen ? alen : blen);

	if (r)
		return r;
	return alen < blen ? -1 : alen > blen;
}

static int cmp_site(const void *a, const void *b)
{
	const struct kj_site *x = a, *y = b;

	return cmp_id(x->id, x->id_len, y->id, y->id_len);
}

static int parse_site(const char *file, const char *id, const json_t *arr,
		      struct kj_site *site)
{
	char path[KJ_SITE_ID_MAX + 32];
	const json_t *v;
	size_t i;

	snprintf(path, sizeof(path), "sites.%s", id);
	if (!json_is_array(arr) || !json_array_size(arr) ||
	    json_array_size(arr) > 65536) {
		kj_err("%s: field \"%s\": expected a non-empty array of "
		       "socket numbers 0..65535", file, path);
		return -EINVAL;
	}
	site->id_len = strlen(id);
	memcpy(site->id, id, site->id_len + 1);
	site->sockets = calloc(json_array_size(arr), sizeof(uint16_t));
	if (!site->sockets) {
		kj_err("%s: out of memory", file);
		return -ENOMEM;
	}
	json_array_foreach(arr, i, v) {
		char epath[sizeof(path) + 24];
		uint64_t sock;

		snprintf(epath, sizeof(epath), "%s[%zu]", path, i);
		KJ_TRY(kj_json_u64_value(v, file, epath, 0, 65535, &sock));
		site->sockets[i] = (uint16_t)sock;
	}
	site->n_sockets = i;
	qsort(site->sockets, i, sizeof(uint16_t), cmp_u16);
	for (i = 1; i < site->n_sockets; i++) {
		if (site->sockets[i] != site->sockets[i - 1])
			continue;
		kj_err("%s: field \"%s\": socket %u listed twice", file, path,
		       site->sockets[i]);
		return -EINVAL;
	}
	return 0;
}

static int parse_root(const json_t *root, const char *file, struct kj_sites *s)
{
	const json_t *sites;
	const char *id;
	json_t *arr;

	KJ_TRY(kj_json_only_keys(root, file, "", top_keys));
	KJ_TRY(kj_json_version(root, file, "kinject_sites", 1));
	sites = kj_json_get(root, file, "", "sites", JSON_OBJECT);
	if (!sites)
		return -EINVAL;
	if (!json_object_size(sites) ||
	    json_object_size(sites) > KJ_SITES_MAX) {
		kj_err("%s: field \"sites\": expected 1..%d sites, got %zu",
		       file, KJ_SITES_MAX, json_object_size(sites));
		return -EINVAL;
	}
	s->sites = calloc(json_object_size(sites), sizeof(*s->sites));
	if (!s->sites) {
		kj_err("%s: out of memory", file);
		return -ENOMEM;
	}
	json_object_foreach((json_t *)sites, id, arr) {
		KJ_TRY(kj_json_check_str(id, strlen(id), file, "sites",
					 KJ_STR_NAME, KJ_SITE_ID_MAX));
		/* n counts entries to free even when this one fails. */
		s->n++;
		KJ_TRY(parse_site(file, id, arr, &s->sites[s->n - 1]));
	}
	/* Duplicate ids are already refused by JSON_REJECT_DUPLICATES. */
	qsort(s->sites, s->n, sizeof(*s->sites), cmp_site);
	return 0;
}

int kj_sites_parse(const uint8_t *buf, size_t len, const char *name,
		   struct kj_sites *s)
{
	json_t *root;
	int rc;

	memset(s, 0, sizeof(*s));
	if (len > KJ_SITES_FILE_MAX) {
		kj_err("%s: %zu bytes, more than the limit of %d", name, len,
		       KJ_SITES_FILE_MAX);
		return -EINVAL;
	}
	KJ_TRY(kj_json_load(buf, len, name, &root));
	rc = parse_root(root, name, s);
	json_decref(root);
	if (rc < 0)
		kj_sites_free(s);
	return rc;
}

int kj_sites_load(const char *path, struct kj_sites *s)
{
	uint8_t *buf;
	size_t len;
	int rc;

	KJ_TRY(kj_read_file(path, KJ_SITES_FILE_MAX, &buf, &len));
	rc = kj_sites_parse(buf, len, path, s);
	free(buf);
	return rc;
}

void kj_sites_free(struct kj_sites *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->sites[i].sockets);
	free(s->sites);
	memset(s, 0, sizeof(*s));
}

bool kj_sites_allowed(const struct kj_sites *s, const char *site_id,
		      size_t id_len, uint16_t socket)
{
	size_t lo = 0, hi = s->n;

	if (!id_len || id_len > KJ_SITE_ID_MAX)
		return false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct kj_site *site = &s->sites[mid];
		int r = cmp_id(site_id, id_len, site->id, site->id_len);

		if (r < 0) {
			hi = mid;
		} else if (r > 0) {
			lo = mid + 1;
		} else {
			return bsearch(&socket, site->sockets, site->n_sockets,
				       sizeof(uint16_t), cmp_u16) != NULL;
		}
	}
	return false;
}
