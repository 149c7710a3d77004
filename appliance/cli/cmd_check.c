// SPDX-License-Identifier: Apache-2.0
/* kinject check: the operator's pre-flight over a job's inputs. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/kinject.h"
#include "base/log.h"
#include "ceremony/ceremony.h"
#include "hsm/pin.h"
#include "inputs/preflight.h"
#include "commands.h"

const char cmd_check_usage[] =
	"Usage: kinject check --work-order WO.json --work-order-sig WO.json.sig\n"
	"         --product P.json --product-sig P.json.sig\n"
	"         --firmware FW.cms --credentials CREDS.cms\n"
	"         --hsm PKCS11-URI --pin-source file:PATH|env:NAME\n"
	"         [--state DIR] [--transport-cert PEM]\n\n"
	"Run every check `kinject run' makes on a job's inputs (SPEC.md §3)\n"
	"without starting the job, and print each verified fact: the work order\n"
	"and product matrix signatures and policy (version lock-out,\n"
	"min_firmware) first, then the firmware and credentials decrypted with\n"
	"the HSM's transport key into the secret arena and verified against the\n"
	"customer's release certificate the officers enrolled (kinject\n"
	"ceremony request enrol-customer).  Nothing is written anywhere.\n\n"
	"  --state DIR           appliance state (default ./kinject-state): the\n"
	"                        release certificate is\n"
	"                        DIR/customers/<customer>/release.pem, the\n"
	"                        transport certificate DIR/transport.pem\n"
	"  --transport-cert PEM  the transport certificate instead\n"
	"  --hsm URI             e.g. pkcs11:token=kinject;object=transport\n"
	"                        (RFC 7512; ?module-path=/path/lib.so loads one\n"
	"                        module instead of p11-kit's registered ones)\n"
	"  --pin-source SRC      file:PATH or env:NAME (never the PIN itself)\n\n"
	"Exit status: 0 every check passed, 1 an input was refused or the HSM\n"
	"failed, 2 usage.\n";

enum {
	OPT_WO = 256, OPT_WO_SIG, OPT_PRODUCT, OPT_PRODUCT_SIG, OPT_FIRMWARE,
	OPT_CREDS, OPT_HSM, OPT_PIN, OPT_STATE, OPT_TRANSPORT,
};

static const struct option options[] = {
	{ "work-order", required_argument, NULL, OPT_WO },
	{ "work-order-sig", required_argument, NULL, OPT_WO_SIG },
	{ "product", required_argument, NULL, OPT_PRODUCT },
	{ "product-sig", required_argument, NULL, OPT_PRODUCT_SIG },
	{ "firmware", required_argument, NULL, OPT_FIRMWARE },
	{ "credentials", required_argument, NULL, OPT_CREDS },
	{ "hsm", required_argument, NULL, OPT_HSM },
	{ "pin-source", required_argument, NULL, OPT_PIN },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "transport-cert", required_argument, NULL, OPT_TRANSPORT },
	{ NULL, 0, NULL, 0 },
};

static const char **slot(struct kj_preflight_args *a, int opt)
{
	switch (opt) {
	case OPT_WO: return &a->work_order;
	case OPT_WO_SIG: return &a->work_order_sig;
	case OPT_PRODUCT: return &a->product;
	case OPT_PRODUCT_SIG: return &a->product_sig;
	case OPT_FIRMWARE: return &a->firmware;
	case OPT_CREDS: return &a->credentials;
	case OPT_HSM: return &a->hsm_uri;
	case OPT_PIN: return &a->pin_source;
	case OPT_STATE: return &a->state_dir;
	case OPT_TRANSPORT: return &a->transport_cert;
	default: return NULL;
	}
}

static int parse_args(int argc, char **argv, struct kj_preflight_args *a)
{
	const char **dst;
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		dst = slot(a, opt);
		if (!dst) {
			kj_err("check: unknown or incomplete option `%s'; run "
			       "`kinject check --help'", argv[optind - 1]);
			return -EINVAL;
		}
		if (*dst) {
			kj_err("check: %s given twice", argv[optind - 2]);
			return -EINVAL;
		}
		*dst = optarg;
	}
	if (optind < argc) {
		kj_err("check: unexpected argument `%s'", argv[optind]);
		return -EINVAL;
	}
	for (const struct option *o = options; o->name; o++) {
		if (o->val >= OPT_STATE)
			continue;
		if (!*slot(a, o->val)) {
			kj_err("check: --%s is required", o->name);
			return -EINVAL;
		}
	}
	return kj_pin_source_valid(a->pin_source);
}

int cmd_check_main(int argc, char **argv)
{
	struct kj_preflight_args a = { .print = true };
	struct kj_preflight p;

	if (parse_args(argc, argv, &a) < 0)
		return KJ_EXIT_USAGE;
	if (kj_ceremony_check_initialised(a.state_dir ? a.state_dir :
					  "./kinject-state", "check") < 0)
		return KJ_EXIT_ERROR;
	if (kj_preflight_run(&a, &p) < 0) {
		kj_err("check: refused; nothing was started");
		return KJ_EXIT_ERROR;
	}
	printf("check: all inputs verified for work order %s; nothing was "
	       "started\n", p.wo.id);
	kj_preflight_free(&p);
	return KJ_EXIT_OK;
}
