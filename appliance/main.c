// SPDX-License-Identifier: Apache-2.0
/* kinject: dispatch to one subcommand (wireguard-tools wg.c style). */
#include <stdio.h>
#include <string.h>

#include "base/kinject.h"
#include "base/log.h"
#include "cli/commands.h"
#include "injector/injector.h"

static const struct kj_command commands[] = {
	{ "run", cmd_run_main, "run one job: inject, journal and attest",
	  cmd_run_usage },
	{ "version", cmd_version_main, "print the version and linked libraries",
	  cmd_version_usage },
	{ "sim", cmd_sim_main, "simulated programming sockets (tests, demo, "
	  "bench)", cmd_sim_usage },
	{ "audit", cmd_audit_main, "export, jobs, recall, report, archive, "
	  "verify",
	  cmd_audit_usage },
	{ "check", cmd_check_main, "verify a job's inputs without starting it",
	  cmd_check_usage },
	{ "evidence", cmd_evidence_main, "export a job's evidence bundle",
	  cmd_evidence_usage },
	{ "ceremony", cmd_ceremony_main, "key ceremonies: init, quorum "
	  "requests, status", cmd_ceremony_usage },
	{ "verify", cmd_verify_main, "check an evidence bundle offline",
	  cmd_verify_usage },
	{ "measure", cmd_measure_main, "measure the code into PCR 13 at boot "
	  "(the image's init)", cmd_measure_usage },
	{ "demo", cmd_demo_main, "the whole story, from nothing, every "
	  "command printed", cmd_demo_usage },
};

const struct kj_command *kj_find_command(const char *name)
{
	for (size_t i = 0; i < KJ_ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

void kj_print_usage(const struct kj_command *cmd, int to_stderr)
{
	fputs(cmd->usage, to_stderr ? stderr : stdout);
}

int kj_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	}
	return 0;
}

static void print_overview(FILE *f)
{
	fprintf(f, "Usage: kinject <command> [<args>]\n\n"
		   "kinject %s: secure firmware and credential injection "
		   "appliance.\n\nCommands:\n", KJ_VERSION);
	for (size_t i = 0; i < KJ_ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "  %-10s %s\n", "help", "show help for a command");
	fprintf(f, "\nRun `kinject help <command>' or `kinject <command> --help' "
		   "for a command's options.\n");
}

static int help_main(int argc, char **argv)
{
	const struct kj_command *cmd;

	if (argc < 2) {
		print_overview(stdout);
		return KJ_EXIT_OK;
	}
	cmd = kj_find_command(argv[1]);
	if (!cmd) {
		kj_err("help: unknown command `%s'; run `kinject --help' for "
		       "the list", argv[1]);
		return KJ_EXIT_USAGE;
	}
	kj_print_usage(cmd, 0);
	return KJ_EXIT_OK;
}

int main(int argc, char **argv)
{
	const struct kj_command *cmd;

	/* Hidden: how the keeper starts an injector (injector.h). */
	if (argc >= 2 && !strcmp(argv[1], KJ_INJECTOR_ARGV1))
		kj_injector_exec_main(argc, argv);
	if (argc < 2) {
		print_overview(stderr);
		return KJ_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help"))
		return help_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--version"))
		return cmd_version_main(1, argv + 1);
	cmd = kj_find_command(argv[1]);
	if (!cmd) {
		kj_err("unknown command `%s'; run `kinject --help' for the list",
		       argv[1]);
		return KJ_EXIT_USAGE;
	}
	if (kj_wants_help(argc - 1, argv + 1)) {
		kj_print_usage(cmd, 0);
		return KJ_EXIT_OK;
	}
	return cmd->main(argc - 1, argv + 1);
}
