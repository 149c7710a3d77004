// SPDX-License-Identifier: Apache-2.0
/*
 * base/util.c against the file system (issue 11 item 11): the atomic write
 * never follows or truncates what another user planted next to the target
 * (the old temp name was predictable: PATH.tmp.PID), sets the mode asked
 * for, and leaves no temporary file behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

static void test_atomic_write_plants(void **state)
{
	char dir[] = "/tmp/kj-util-XXXXXX", path[128], victim[128], trap[160];
	char buf[64] = { 0 };
	struct dirent *de;
	struct stat st;
	unsigned n = 0;
	DIR *d;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ak.pub", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	fd = open(victim, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious", 8), 8);
	close(fd);
	/* The name the old code would have used, a symlink to victim. */
	snprintf(trap, sizeof(trap), "%s.tmp.%d", path, (int)getpid());
	assert_int_equal(symlink(victim, trap), 0);
	assert_int_equal(kj_write_file_atomic(path, "new", 3, 0640), 0);
	fd = open(victim, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 8);
	close(fd);
	assert_string_equal(buf, "precious");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_size, 3);
	/* victim, the planted link, ak.pub: no temp file left. */
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	assert_int_equal(n, 3);
	snprintf(trap, sizeof(trap), "rm -rf '%s'", dir);
	assert_int_equal(system(trap), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_atomic_write_plants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
