/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Subcommands.  Each lives in its own cmd_<name>.c with one entry point and
 * one usage text; main.c holds the table.  A command's main() receives argv
 * with argv[0] = the subcommand name and returns a KJ_EXIT_* code.
 */
#ifndef KINJECT_COMMANDS_H
#define KINJECT_COMMANDS_H

#include <stdbool.h>

struct kj_command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
	const char *usage; /* full --help text */
};

/* Print a command's usage to stdout (help) or stderr (usage error). */
void kj_print_usage(const struct kj_command *cmd, int to_stderr);
const struct kj_command *kj_find_command(const char *name);

/*
 * For use by commands: true if argv holds --help or -h, so every command
 * answers --help the same way before it parses anything.
 */
int kj_wants_help(int argc, char **argv);

int cmd_run_main(int argc, char **argv);
extern const char cmd_run_usage[];
int cmd_version_main(int argc, char **argv);
extern const char cmd_version_usage[];
int cmd_sim_main(int argc, char **argv);
extern const char cmd_sim_usage[];
int cmd_audit_main(int argc, char **argv);
extern const char cmd_audit_usage[];
int cmd_check_main(int argc, char **argv);
extern const char cmd_check_usage[];
int cmd_evidence_main(int argc, char **argv);
extern const char cmd_evidence_usage[];
int cmd_ceremony_main(int argc, char **argv);
extern const char cmd_ceremony_usage[];
/* cmd_ceremony_status.c */
int cmd_ceremony_status(const char *state, bool json);
int cmd_verify_main(int argc, char **argv);
extern const char cmd_verify_usage[];
int cmd_measure_main(int argc, char **argv);
extern const char cmd_measure_usage[];
int cmd_demo_main(int argc, char **argv);
extern const char cmd_demo_usage[];

#endif
