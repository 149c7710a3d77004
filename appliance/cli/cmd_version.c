// SPDX-License-Identifier: Apache-2.0
#include <stdio.h>
#include <openssl/crypto.h>
#include <sqlite3.h>

#include "base/kinject.h"
#include "base/log.h"
#include "commands.h"

const char cmd_version_usage[] =
	"Usage: kinject version\n\n"
	"Print the kinject version and the versions of the libraries it runs "
	"with.\n";

int cmd_version_main(int argc, char **argv)
{
	if (argc > 1) {
		kj_err("version: unexpected argument `%s'", argv[1]);
		return KJ_EXIT_USAGE;
	}
	printf("kinject %s\n", KJ_VERSION);
	printf("openssl %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
	printf("sqlite %s\n", sqlite3_libversion());
	return KJ_EXIT_OK;
}
