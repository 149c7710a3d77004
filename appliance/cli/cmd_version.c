// SPDX-License-Identifier: Apache-2.0
/*
 * kinject version: what this binary is made of, for the operator's ticket
 * and for matching the appliance against its SBOM (`make sbom').  Every
 * library kinject links, with the version the library reports at run
 * time where it has a call for that (OpenSSL, SQLite, jansson,
 * libseccomp) and the version it was built against (pkg-config, passed in
 * by the Makefile), then every shared object actually loaded, as its real
 * file: the SBOM lists the same files with their hashes.
 */
#include <jansson.h>
#include <limits.h>
#include <link.h>
#include <seccomp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "base/kinject.h"
#include "base/log.h"
#include "commands.h"

#ifndef KJ_BUILT_WITH
#define KJ_BUILT_WITH ""
#endif

const char cmd_version_usage[] =
	"Usage: kinject version\n\n"
	"Print the kinject version, every library it links with the version\n"
	"it runs with (and was built against), and the shared objects loaded,\n"
	"as the files the SBOM (make sbom) lists.\n";

static void runtime_version(const char *pkg, char *out, size_t cap)
{
	const struct scmp_version *sv;

	if (!strcmp(pkg, "openssl"))
		snprintf(out, cap, "%s",
			 OpenSSL_version(OPENSSL_VERSION_STRING));
	else if (!strcmp(pkg, "sqlite3"))
		snprintf(out, cap, "%s", sqlite3_libversion());
	else if (!strcmp(pkg, "jansson"))
		snprintf(out, cap, "%s", jansson_version_str());
	else if (!strcmp(pkg, "libseccomp") && (sv = seccomp_version()))
		snprintf(out, cap, "%u.%u.%u", sv->major, sv->minor, sv->micro);
	else
		snprintf(out, cap, "-"); /* the library has no version call */
}

/* KJ_BUILT_WITH: "openssl=3.0.19 tss2-esys=3.2.1 ..." */
static void print_libraries(void)
{
	char built[] = KJ_BUILT_WITH, *save = NULL, *tok, run[64];

	printf("libraries (running, built against):\n");
	for (tok = strtok_r(built, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq)
			continue;
		*eq = '\0';
		runtime_version(tok, run, sizeof(run));
		printf("  %-14s %-10s %s\n", tok, run, eq + 1);
	}
}

static int object_cb(struct dl_phdr_info *info, size_t size, void *ctx)
{
	char real[PATH_MAX];

	(void)size;
	(void)ctx;
	if (!info->dlpi_name || !info->dlpi_name[0] ||
	    strstr(info->dlpi_name, "linux-vdso"))
		return 0;
	printf("  %s\n", realpath(info->dlpi_name, real) ? real
							: info->dlpi_name);
	return 0;
}

int cmd_version_main(int argc, char **argv)
{
	if (argc > 1) {
		kj_err("version: unexpected argument `%s'", argv[1]);
		return KJ_EXIT_USAGE;
	}
	printf("kinject %s\n", KJ_VERSION);
	print_libraries();
	printf("shared objects loaded:\n");
	dl_iterate_phdr(object_cb, NULL);
	return KJ_EXIT_OK;
}
