// SPDX-License-Identifier: Apache-2.0
/*
 * kinject ceremony: the security officers' commands (SPEC.md §4, §5,
 * docs/CEREMONY.md).  This file parses the flags of init, request and apply
 * and dispatches; status is in cmd_ceremony_status.c.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "ceremony/backup.h"
#include "ceremony/ceremony.h"
#include "ceremony/request.h"
#include "hsm/pin.h"
#include "commands.h"

const char cmd_ceremony_usage[] =
	"Usage: kinject ceremony init --state DIR --hsm URI --pin-source SRC\n"
	"         --tpm TCTI --officer o1.pem --officer o2.pem ... --threshold M\n"
	"       kinject ceremony request KIND --state DIR --out REQ [flags]\n"
	"       kinject ceremony apply --state DIR REQ SIG...\n"
	"       kinject ceremony backup --state DIR --hsm URI --pin-source SRC\n"
	"         --out BDIR\n"
	"       kinject ceremony restore --state NEWDIR --hsm URI --pin-source SRC\n"
	"         --tpm TCTI --backup BDIR --request REQ --sig REQ.N.sig ...\n"
	"         --share BDIR/share-N.cms --key oN.key ...\n"
	"       kinject ceremony status --state DIR [--json]\n\n"
	"Key ceremonies with M-of-N security officers (docs/CEREMONY.md).\n\n"
	"init      generates the transport key in the HSM (EC P-256, never\n"
	"          extractable) and the AK in the TPM under the EK, proves the\n"
	"          AK's residency, saves the officer set (measured into PCR 14)\n"
	"          and writes DIR/transport.pem, DIR/ak.pem, DIR/ak.pub,\n"
	"          DIR/ek.pem (when the TPM has an EK certificate) and\n"
	"          DIR/ceremony/transcript.json, quoted by the TPM.  The\n"
	"          appliance is initialised once M officers signed\n"
	"          DIR/ceremony/init.req and it was applied.\n"
	"          --backup-capable: the transport key may leave the token\n"
	"          wrapped (CKA_EXTRACTABLE true, still sensitive), for backup\n"
	"request   writes the bytes officers sign, for KIND:\n"
	"            enrol-customer   --name ID --cert release.pem\n"
	"            enrol-site-ca    --name ID --cert ca.pem\n"
	"            enrol-issuing-ca --name ID --cert ca.pem\n"
	"            set-officers     --officer PEM ... --threshold M\n"
	"            set-policy       --name NAME --policy FILE\n"
	"            reset-journal    --reason TEXT\n"
	"            restore          --backup BDIR\n"
	"          Each officer signs with\n"
	"            openssl cms -sign -binary -in REQ -signer oN.pem \\\n"
	"              -inkey oN.key -outform DER -out REQ.N.sig\n"
	"apply     applies REQ with the signatures of M distinct officers over\n"
	"          exactly its bytes, once, and records the approval (who,\n"
	"          what, when) in the journal.\n"
	"backup    wraps the transport key in the HSM under a fresh AES-256\n"
	"          key, splits that key (Shamir, M of N) and encrypts share N\n"
	"          to officer N (BDIR/share-N.cms, CMS)\n"
	"restore   onto a fresh token and TPM, with an approved restore\n"
	"          request and M officers' shares (each with its officer's\n"
	"          key): the transport key comes back, then as init\n"
	"status    officers, threshold, customers, CAs, keys and fingerprints,\n"
	"          the last approvals; --json for machines.\n\n"
	"Exit status: 0 done, 1 refused or failed (the message says why), 2\n"
	"usage.\n";

enum {
	O_STATE = 256, O_HSM, O_PIN, O_TPM, O_OFFICER, O_THRESHOLD, O_OUT,
	O_NAME, O_CERT, O_POLICY, O_REASON, O_BACKUP, O_JSON, O_BCAP,
	O_REQUEST, O_SIG, O_SHARE, O_KEY,
};

static const struct option options[] = {
	{ "state", required_argument, NULL, O_STATE },
	{ "hsm", required_argument, NULL, O_HSM },
	{ "pin-source", required_argument, NULL, O_PIN },
	{ "tpm", required_argument, NULL, O_TPM },
	{ "officer", required_argument, NULL, O_OFFICER },
	{ "threshold", required_argument, NULL, O_THRESHOLD },
	{ "out", required_argument, NULL, O_OUT },
	{ "name", required_argument, NULL, O_NAME },
	{ "cert", required_argument, NULL, O_CERT },
	{ "policy", required_argument, NULL, O_POLICY },
	{ "reason", required_argument, NULL, O_REASON },
	{ "backup", required_argument, NULL, O_BACKUP },
	{ "json", no_argument, NULL, O_JSON },
	{ "backup-capable", no_argument, NULL, O_BCAP },
	{ "request", required_argument, NULL, O_REQUEST },
	{ "sig", required_argument, NULL, O_SIG },
	{ "share", required_argument, NULL, O_SHARE },
	{ "key", required_argument, NULL, O_KEY },
	{ NULL, 0, NULL, 0 },
};

struct opts {
	const char *state, *hsm, *pin, *tpm, *out, *name, *cert, *policy;
	const char *reason, *backup, *request;
	const char *officers[64], *sigs[64], *shares[64], *keys[64];
	unsigned n_officers, threshold, n_sigs, n_shares, n_keys;
	bool json, backup_capable;
	char **rest;
	int n_rest;
};

static const char **slot(struct opts *o, int opt)
{
	switch (opt) {
	case O_STATE: return &o->state;
	case O_HSM: return &o->hsm;
	case O_PIN: return &o->pin;
	case O_TPM: return &o->tpm;
	case O_OUT: return &o->out;
	case O_NAME: return &o->name;
	case O_CERT: return &o->cert;
	case O_POLICY: return &o->policy;
	case O_REASON: return &o->reason;
	case O_BACKUP: return &o->backup;
	case O_REQUEST: return &o->request;
	default: return NULL;
	}
}

static int push(const char **arr, unsigned *n, const char *flag)
{
	if (*n >= 64) {
		kj_err("ceremony: too many %s", flag);
		return -EINVAL;
	}
	arr[(*n)++] = optarg;
	return 0;
}

static int one(struct opts *o, int opt, const char *flag)
{
	const char **dst;
	uint64_t m;

	switch (opt) {
	case O_OFFICER:
		return push(o->officers, &o->n_officers, "--officer");
	case O_SIG:
		return push(o->sigs, &o->n_sigs, "--sig");
	case O_SHARE:
		return push(o->shares, &o->n_shares, "--share");
	case O_KEY:
		return push(o->keys, &o->n_keys, "--key");
	case O_BCAP:
		o->backup_capable = true;
		return 0;
	case O_THRESHOLD:
		KJ_TRY(kj_parse_u64(optarg, 2, 255, "--threshold", &m));
		o->threshold = (unsigned)m;
		return 0;
	case O_JSON:
		o->json = true;
		return 0;
	default:
		break;
	}
	dst = slot(o, opt);
	if (!dst) {
		kj_err("ceremony: unknown or incomplete option `%s'; run "
		       "`kinject ceremony --help'", flag);
		return -EINVAL;
	}
	if (*dst) {
		kj_err("ceremony: %s given twice", flag);
		return -EINVAL;
	}
	*dst = optarg;
	return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1)
		KJ_TRY(one(o, opt, argv[optind - 1]));
	o->rest = argv + optind;
	o->n_rest = argc - optind;
	if (!o->state)
		o->state = "./kinject-state";
	return 0;
}

static int need(const char *v, const char *flag, const char *sub)
{
	if (v)
		return 0;
	kj_err("ceremony %s: %s is required", sub, flag);
	return -EINVAL;
}

static int do_init(struct opts *o)
{
	struct kj_ceremony_init_args a = {
		.state = o->state, .hsm_uri = o->hsm, .pin_source = o->pin,
		.tcti = o->tpm, .officers = o->officers,
		.n_officers = o->n_officers, .threshold = o->threshold,
		.backup_capable = o->backup_capable,
	};

	if (need(o->hsm, "--hsm", "init") || need(o->pin, "--pin-source",
						   "init") ||
	    need(o->tpm, "--tpm", "init") || o->n_rest)
		return KJ_EXIT_USAGE;
	if (!o->n_officers || !o->threshold) {
		kj_err("ceremony init: --officer (each officer's certificate) "
		       "and --threshold M are required");
		return KJ_EXIT_USAGE;
	}
	if (kj_pin_source_valid(o->pin) < 0)
		return KJ_EXIT_USAGE;
	return kj_ceremony_init(&a) < 0 ? KJ_EXIT_ERROR : KJ_EXIT_OK;
}

static int do_request(struct opts *o)
{
	struct kj_request_args a = {
		.name = o->name, .cert = o->cert, .officers = o->officers,
		.n_officers = o->n_officers, .threshold = o->threshold,
		.policy = o->policy, .reason = o->reason, .backup = o->backup,
	};
	json_t *req;
	int rc;

	if (o->n_rest != 1) {
		kj_err("ceremony request: give one KIND (enrol-customer, ...)");
		return KJ_EXIT_USAGE;
	}
	if (need(o->out, "--out", "request"))
		return KJ_EXIT_USAGE;
	if (kj_request_build(o->state, o->rest[0], &a, &req) < 0)
		return KJ_EXIT_ERROR;
	rc = kj_request_write(req, o->out);
	json_decref(req);
	if (rc < 0)
		return KJ_EXIT_ERROR;
	printf("%s: %s request; officers sign it with\n  openssl cms -sign "
	       "-binary -in %s -signer oN.pem -inkey oN.key -outform DER "
	       "-out %s.N.sig\nthen: kinject ceremony apply --state %s %s "
	       "%s.1.sig ...\n", o->out, o->rest[0], o->out, o->out,
	       o->state, o->out, o->out);
	return KJ_EXIT_OK;
}

static int do_apply(struct opts *o)
{
	if (o->n_rest < 1) {
		kj_err("ceremony apply: give the request file and the "
		       "officers' signature files");
		return KJ_EXIT_USAGE;
	}
	return kj_request_apply(o->state, o->rest[0],
				(const char *const *)o->rest + 1,
				(unsigned)(o->n_rest - 1)) < 0 ?
		       KJ_EXIT_ERROR : KJ_EXIT_OK;
}

static int do_backup(struct opts *o)
{
	if (need(o->hsm, "--hsm", "backup") ||
	    need(o->pin, "--pin-source", "backup") ||
	    need(o->out, "--out", "backup") || o->n_rest ||
	    kj_pin_source_valid(o->pin) < 0)
		return KJ_EXIT_USAGE;
	return kj_ceremony_backup(o->state, o->hsm, o->pin, o->out) < 0 ?
		       KJ_EXIT_ERROR : KJ_EXIT_OK;
}

static int do_restore(struct opts *o)
{
	struct kj_restore_args a = {
		.init = { .state = o->state, .hsm_uri = o->hsm,
			  .pin_source = o->pin, .tcti = o->tpm },
		.backup = o->backup, .request = o->request,
		.sigs = o->sigs, .nsig = o->n_sigs, .shares = o->shares,
		.keys = o->keys, .nshares = o->n_shares,
	};

	if (need(o->hsm, "--hsm", "restore") ||
	    need(o->pin, "--pin-source", "restore") ||
	    need(o->tpm, "--tpm", "restore") ||
	    need(o->backup, "--backup", "restore") ||
	    need(o->request, "--request", "restore") || o->n_rest ||
	    kj_pin_source_valid(o->pin) < 0)
		return KJ_EXIT_USAGE;
	if (o->n_keys != o->n_shares) {
		kj_err("ceremony restore: %u --share but %u --key: give each "
		       "share with its officer's key", o->n_shares, o->n_keys);
		return KJ_EXIT_USAGE;
	}
	return kj_ceremony_restore(&a) < 0 ? KJ_EXIT_ERROR : KJ_EXIT_OK;
}

int cmd_ceremony_main(int argc, char **argv)
{
	struct opts o = { 0 };
	const char *sub;

	if (argc < 2) {
		fputs(cmd_ceremony_usage, stderr);
		return KJ_EXIT_USAGE;
	}
	sub = argv[1];
	if (parse(argc - 1, argv + 1, &o) < 0)
		return KJ_EXIT_USAGE;
	if (!strcmp(sub, "init"))
		return do_init(&o);
	if (!strcmp(sub, "request"))
		return do_request(&o);
	if (!strcmp(sub, "apply"))
		return do_apply(&o);
	if (!strcmp(sub, "backup"))
		return do_backup(&o);
	if (!strcmp(sub, "restore"))
		return do_restore(&o);
	if (!strcmp(sub, "status"))
		return cmd_ceremony_status(o.state, o.json);
	kj_err("ceremony: unknown subcommand `%s' (init, request, apply, "
	       "backup, restore, status)", sub);
	return KJ_EXIT_USAGE;
}
