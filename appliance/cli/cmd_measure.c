// SPDX-License-Identifier: Apache-2.0
/*
 * kinject measure: the image's init measures the appliance code into PCR
 * 13 before any job runs (attest/measure_boot.c, docs/IMAGE.md), with the
 * same code path and event log as `kinject run'.
 */
#include <getopt.h>

#include "attest/measure.h"
#include "base/kinject.h"
#include "base/log.h"
#include "commands.h"

const char cmd_measure_usage[] =
	"Usage: kinject measure --state DIR --tpm TCTI [--site FILE]\n\n"
	"Measure this kinject binary and the loaded kinject.ko into PCR 13\n"
	"(EVIDENCE.md §4), writing the event log in DIR's journal that the next\n"
	"`kinject run' continues.  Run by the appliance image's init at boot,\n"
	"before any job (docs/IMAGE.md).\n\n"
	"  --state DIR   appliance state (default ./kinject-state)\n"
	"  --tpm TCTI    the TPM, e.g. device:/dev/tpmrm0 (required)\n"
	"  --site FILE   the site's configuration archive: its SHA-256 goes\n"
	"                into PCR 14 as \"site\", after the code\n";

enum { OPT_STATE = 1, OPT_TPM, OPT_SITE };

static const struct option options[] = {
	{ "state", required_argument, NULL, OPT_STATE },
	{ "tpm", required_argument, NULL, OPT_TPM },
	{ "site", required_argument, NULL, OPT_SITE },
	{ NULL, 0, NULL, 0 },
};

int cmd_measure_main(int argc, char **argv)
{
	const char *state = "./kinject-state", *tcti = NULL, *site = NULL;
	struct kj_measure_out out;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case OPT_STATE: state = optarg; break;
		case OPT_TPM: tcti = optarg; break;
		case OPT_SITE: site = optarg; break;
		default: return KJ_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		kj_err("measure: unexpected argument `%s'", argv[optind]);
		return KJ_EXIT_USAGE;
	}
	if (!tcti) {
		kj_err("measure: --tpm is required (the image's init gives device:/dev/tpmrm0)");
		return KJ_EXIT_USAGE;
	}
	if (kj_measure_boot(tcti, state, site, &out) < 0)
		return KJ_EXIT_ERROR;
	return KJ_EXIT_OK;
}
