// SPDX-License-Identifier: Apache-2.0
/* kinject evidence export: the bundle of EVIDENCE.md §5 for one job. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/kinject.h"
#include "base/log.h"
#include "evidence/evidence.h"
#include "commands.h"

const char cmd_evidence_usage[] =
	"Usage: kinject evidence export [--state DIR] --job ID --out FILE\n\n"
	"Write the evidence bundle of job ID (EVIDENCE.md §5): the appliance's\n"
	"AK (PEM, TPM2B_PUBLIC, name), EK and transport certificates, the PCR\n"
	"event log, the TPM checkpoints from the first covering the job's first\n"
	"record to the first covering its last, every record of the job with\n"
	"its inclusion proof, and consistency proofs between the checkpoints.\n"
	"Check it offline with `kinject verify FILE --ak ak.pem'.  Read-only:\n"
	"safe while a job runs (records not yet under a checkpoint are an\n"
	"error: wait for the next checkpoint).\n\n"
	"  --state DIR   appliance state (default ./kinject-state)\n"
	"  --job ID      the work order id\n"
	"  --out FILE    where to write the bundle (replaced atomically)\n";

enum { OPT_STATE = 1, OPT_JOB, OPT_OUT };

static const struct option options[] = {
	{ "state", required_argument, NULL, OPT_STATE },
	{ "job", required_argument, NULL, OPT_JOB },
	{ "out", required_argument, NULL, OPT_OUT },
	{ NULL, 0, NULL, 0 },
};

int cmd_evidence_main(int argc, char **argv)
{
	const char *state = "./kinject-state", *job = NULL, *out = NULL;
	int c;

	if (argc < 2) {
		kj_err("evidence: missing the action (`export'); see `kinject evidence --help'");
		return KJ_EXIT_USAGE;
	}
	if (strcmp(argv[1], "export")) {
		kj_err("evidence: unknown action `%s' (expected `export')",
		       argv[1]);
		return KJ_EXIT_USAGE;
	}
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case OPT_STATE: state = optarg; break;
		case OPT_JOB: job = optarg; break;
		case OPT_OUT: out = optarg; break;
		default: return KJ_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		kj_err("evidence export: unexpected argument `%s'",
		       argv[optind]);
		return KJ_EXIT_USAGE;
	}
	if (!job || !out) {
		kj_err("evidence export: %s is required",
		       !job ? "--job" : "--out");
		return KJ_EXIT_USAGE;
	}
	if (kj_evidence_export(state, job, out) < 0)
		return KJ_EXIT_ERROR;
	return KJ_EXIT_OK;
}
