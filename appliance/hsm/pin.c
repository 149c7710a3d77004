// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pin.h"
#include "base/log.h"

static int pin_from_file(const char *src, const char *path, char *buf,
			 size_t cap, size_t *len)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		kj_err("--pin-source %s: cannot open: %s", src, strerror(errno));
		return -EINVAL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		kj_err("--pin-source %s: not a regular file", src);
		rc = -EINVAL;
		goto out;
	}
	if (st.st_mode & 0077)
		kj_warn("--pin-source %s: file is readable by group or others "
			"(mode %03o); chmod 600 it", src,
			(unsigned)(st.st_mode & 0777));
	/* Read one byte more than fits, to detect an over-long PIN. */
	while (got < cap) {
		n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kj_err("--pin-source %s: read: %s", src,
			       strerror(errno));
			rc = -EINVAL;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got && buf[got - 1] == '\n')
		got--;
	if (got && buf[got - 1] == '\r')
		got--;
	if (got >= cap) {
		kj_err("--pin-source %s: PIN longer than %zu bytes", src,
		       cap - 1);
		rc = -EINVAL;
		goto out;
	}
	buf[got] = '\0';
	*len = got;
out:
	close(fd);
	if (rc < 0)
		explicit_bzero(buf, cap);
	return rc;
}

static int pin_from_env(const char *src, const char *name, char *buf,
			size_t cap, size_t *len)
{
	char *v = getenv(name);
	size_t n;

	if (!v) {
		kj_err("--pin-source %s: environment variable %s is not set",
		       src, name);
		return -EINVAL;
	}
	n = strlen(v);
	if (n >= cap) {
		kj_err("--pin-source %s: PIN longer than %zu bytes", src,
		       cap - 1);
		return -EINVAL;
	}
	memcpy(buf, v, n + 1);
	*len = n;
	/* The environment is readable in /proc/PID/environ: wipe it there. */
	explicit_bzero(v, n);
	unsetenv(name);
	return 0;
}

int kj_pin_source_valid(const char *source)
{
	if (source && ((!strncmp(source, "file:", 5) && source[5]) ||
		       (!strncmp(source, "env:", 4) && source[4])))
		return 0;
	kj_err("--pin-source: expected file:PATH or env:NAME (the value is "
	       "not shown: a PIN is never given on the command line)");
	return -EINVAL;
}

int kj_pin_read(const char *source, char *buf, size_t cap, size_t *len)
{
	int rc;

	if (!source || !*source) {
		kj_err("--pin-source: missing; give file:PATH or env:NAME");
		return -EINVAL;
	}
	if (!strncmp(source, "file:", 5) && source[5])
		rc = pin_from_file(source, source + 5, buf, cap, len);
	else if (!strncmp(source, "env:", 4) && source[4])
		rc = pin_from_env(source, source + 4, buf, cap, len);
	else {
		/* Not quoted: it may be the PIN itself, given by mistake. */
		kj_err("--pin-source: expected file:PATH or env:NAME (a PIN is "
		       "never given on the command line)");
		return -EINVAL;
	}
	if (rc == 0 && *len == 0) {
		kj_err("--pin-source %s: empty PIN", source);
		explicit_bzero(buf, cap);
		return -EINVAL;
	}
	return rc;
}
