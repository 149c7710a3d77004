// SPDX-License-Identifier: Apache-2.0
/*
 * The ceremony transcript once written (ceremony.h): adding the officers'
 * signatures when the init request is applied, and the one test every
 * command that needs an initialised appliance makes.  The evidence bundle
 * carries the transcript as it is on disk (EVIDENCE.md §5).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "ceremony.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "ceremony_int.h"

int kj_ceremony_transcript(const char *state, uint8_t **buf, size_t *len)
{
	char path[PATH_MAX];

	KJ_TRY(kj_cer_path(path, state, KJ_CEREMONY_TRANSCRIPT));
	return kj_read_file(path, 16 << 20, buf, len);
}

int kj_ceremony_sign_transcript(const char *state,
				const struct kj_officers *set,
				const char *const *sigs, const unsigned *who,
				unsigned nsig)
{
	char path[PATH_MAX], *out = NULL;
	uint8_t *buf = NULL, *sig = NULL;
	size_t len, sl;
	json_t *t = NULL, *arr;
	int rc;

	KJ_TRY(kj_cer_path(path, state, KJ_CEREMONY_TRANSCRIPT));
	KJ_TRY_GOTO(rc, kj_read_file(path, 16 << 20, &buf, &len), out);
	KJ_TRY_GOTO(rc, kj_json_load(buf, len, path, &t), out);
	arr = json_array();
	if (!arr || json_object_set_new(t, "signatures", arr)) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < nsig; i++) {
		KJ_TRY_GOTO(rc, kj_read_file(sigs[i], 1 << 20, &sig, &sl),
			    out);
		json_array_append_new(arr, json_pack("{s:s,s:s,s:o}",
			"officer", set->fp[who[i]], "subject",
			set->subject[who[i]], "cms", kj_cer_b64(sig, sl)));
		free(sig);
		sig = NULL;
	}
	out = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
	rc = out ? kj_write_file_atomic(path, out, strlen(out), 0644) :
		   -ENOMEM;
out:
	json_decref(t);
	free(buf);
	free(sig);
	free(out);
	return rc;
}

int kj_ceremony_check_initialised(const char *state, const char *cmd)
{
	char path[PATH_MAX], ak[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len;
	json_t *t = NULL;
	const json_t *s;
	int rc;

	KJ_TRY(kj_cer_path(path, state, KJ_CEREMONY_TRANSCRIPT));
	if (access(path, F_OK) != 0) {
		kj_err("%s: appliance not initialised (no %s): officers run "
		       "`kinject ceremony init --state %s ...' first "
		       "(docs/CEREMONY.md)", cmd, path, state);
		return -EPERM;
	}
	/* The AK is the ceremony's: nothing else may make one silently. */
	KJ_TRY(kj_cer_path(ak, state, "ak.priv"));
	if (access(ak, F_OK) != 0) {
		kj_err("%s: %s missing: the AK the officers' transcript names "
		       "is gone; restore the state dir from its backup copy "
		       "(a new AK needs a new ceremony)", cmd, ak);
		return -EPERM;
	}
	KJ_TRY_GOTO(rc, kj_read_file(path, 16 << 20, &buf, &len), out);
	KJ_TRY_GOTO(rc, kj_json_load(buf, len, path, &t), out);
	s = kj_json_get(t, path, "", "signatures", JSON_ARRAY);
	rc = s ? 0 : -EBADMSG;
	if (s && !json_array_size(s)) {
		kj_err("%s: appliance initialisation pending: the officers "
		       "sign %s/%s and run `kinject ceremony apply --state %s "
		       "%s/%s SIG...'", cmd, state, KJ_CEREMONY_INIT_REQ,
		       state, state, KJ_CEREMONY_INIT_REQ);
		rc = -EPERM;
	}
out:
	json_decref(t);
	free(buf);
	return rc;
}
