// SPDX-License-Identifier: Apache-2.0
/*
 * Which arena backend KJ_ARENA_AUTO tries first (arena_kmod.h).  The image
 * loads kinject.ko for its tamper response (a zeroize wipes every arena at
 * once, and the panic and reboot notifiers wipe too); memfd_secret cannot
 * be wiped from outside the process.  So a present /dev/kinject goes before
 * memfd_secret; without it the order stays memfd_secret, then mlock.
 */
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

#include "arena_kmod.h"

bool kj_arena_kmod_present(void)
{
	struct stat sb;

	return stat(KJ_ARENA_KMOD_DEV, &sb) == 0 && S_ISCHR(sb.st_mode);
}

long long kj_arena_kmod_zeroize_events(void)
{
	FILE *f = fopen(KJ_ARENA_KMOD_ZEROIZE_EVENTS, "re");
	long long n = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%lld", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

size_t kj_arena_auto_order(bool kmod_present,
			   enum kj_arena_backend order[KJ_ARENA_N_BACKENDS])
{
	size_t n = 0;

	if (kmod_present)
		order[n++] = KJ_ARENA_KMOD;
	order[n++] = KJ_ARENA_MEMFD_SECRET;
	order[n++] = KJ_ARENA_MLOCK;
	return n;
}
