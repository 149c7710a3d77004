// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "util.h"
#include "log.h"

int kj_parse_u64(const char *s, uint64_t min, uint64_t max, const char *what,
		 uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		goto bad;
	if (v < min || v > max) {
		kj_err("%s: `%s' is out of range %llu..%llu", what, s,
		       (unsigned long long)min, (unsigned long long)max);
		return -ERANGE;
	}
	*out = v;
	return 0;
bad:
	kj_err("%s: `%s' is not a decimal number", what, s ? s : "");
	return -EINVAL;
}

int kj_read_file(const char *path, size_t max_size, uint8_t **buf, size_t *len)
{
	struct stat st;
	uint8_t *p = NULL;
	size_t off = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		kj_err("%s: cannot open: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		kj_err("%s: not a regular file", path);
		rc = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max_size) {
		kj_err("%s: %lld bytes, more than the limit of %zu", path,
		       (long long)st.st_size, max_size);
		rc = -EFBIG;
		goto out;
	}
	p = malloc((size_t)st.st_size + 1);
	if (!p) {
		rc = -ENOMEM;
		goto out;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, p + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			kj_err("%s: read failed: %s", path,
			       n < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		off += (size_t)n;
	}
	p[off] = 0;
	*buf = p;
	*len = off;
	p = NULL;
	rc = 0;
out:
	free(p);
	close(fd);
	return rc;
}

static int fsync_dir_of(const char *path)
{
	char tmp[PATH_MAX];
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * A fresh, unpredictable temp name in the target's directory, created with
 * O_EXCL (mkostemp): a link or file planted there in advance is never
 * followed or truncated, and rename() makes the result appear at once.
 */
int kj_write_file_atomic(const char *path, const void *data, size_t len,
			 unsigned mode)
{
	char tmp[PATH_MAX];
	const uint8_t *p = data;
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >=
	    (int)sizeof(tmp)) {
		kj_err("%s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		kj_err("%s: cannot create a temporary file next to it: %s",
		       path, strerror(errno));
		return rc;
	}
	if (fchmod(fd, (mode_t)mode) < 0)
		goto fail;
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0)
		goto fail;
	close(fd);
	if (rename(tmp, path) < 0) {
		rc = -errno;
		kj_err("%s: cannot rename into place: %s", path, strerror(errno));
		unlink(tmp);
		return rc;
	}
	rc = fsync_dir_of(path);
	if (rc < 0)
		kj_err("%s: cannot sync its directory: %s", path, strerror(-rc));
	return rc;
fail:
	rc = -errno;
	kj_err("%s: write failed: %s", tmp, strerror(errno));
	close(fd);
	unlink(tmp);
	return rc;
}

int kj_mkdir_p(const char *path, unsigned mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			goto fail;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		goto fail;
	return 0;
fail:
	kj_err("%s: cannot create directory: %s", tmp, strerror(errno));
	return -errno;
}

void kj_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int kj_hex_decode(const char *in, uint8_t *out, size_t out_len)
{
	if (strlen(in) != 2 * out_len)
		return -EINVAL;
	for (size_t i = 0; i < out_len; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void kj_sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;

	/* EVP_Digest only fails on allocation; abort rather than hash nothing. */
	if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
		abort();
}
