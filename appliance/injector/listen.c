// SPDX-License-Identifier: Apache-2.0
/* --listen values and the listening sockets (listen.h, docs/ENGINE.md). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"
#include "base/log.h"
#include "base/util.h"

static int parse_unix(const char *spec, const char *path, struct kj_listen *l)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&l->addr;
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(sun->sun_path)) {
		kj_err("--listen `%s': unix socket path must be 1..%zu bytes",
		       spec, sizeof(sun->sun_path) - 1);
		return -EINVAL;
	}
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n + 1);
	l->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	l->is_unix = true;
	return 0;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

static int parse_tcp(const char *spec, const char *hp, struct kj_listen *l,
		     bool tls)
{
	const char *form = tls ? "tls" : "tcp";
	char host[128];
	const char *colon, *h = hp;
	size_t hlen;
	uint64_t port;

	if (*hp == '[') {
		const char *end = strchr(hp, ']');

		if (!end || end[1] != ':')
			goto bad;
		h = hp + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon)
			goto bad;
		hlen = (size_t)(colon - hp);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = 0;
	if (kj_parse_u64(colon + 1, 1, 65535, "--listen port", &port) < 0)
		return -EINVAL;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *in = (struct sockaddr_in *)&l->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;

	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		l->addr_len = sizeof(*in);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		l->addr_len = sizeof(*in6);
	} else {
		kj_err("--listen `%s': `%s' is not a numeric IPv4/IPv6 address "
		       "or localhost", spec, host);
		return -EINVAL;
	}
	if (!tls && !is_loopback(&l->addr)) {
		/* PROTOCOL.md: plain TCP only on loopback. */
		kj_err("--listen `%s': TLS required: plain TCP is accepted only "
		       "on loopback (127.0.0.0/8, ::1); serve this address "
		       "with --listen tls:%s (docs/TLS.md)", spec, hp);
		return -EPERM;
	}
	l->is_unix = false;
	l->is_tls = tls;
	return 0;
bad:
	kj_err("--listen `%s': expected %s:HOST:PORT (IPv6: %s:[ADDR]:PORT)",
	       spec, form, form);
	return -EINVAL;
}

int kj_listen_parse(const char *spec, struct kj_listen *out)
{
	memset(out, 0, sizeof(*out));
	if (strlen(spec) >= sizeof(out->spec)) {
		kj_err("--listen: value longer than %zu bytes",
		       sizeof(out->spec) - 1);
		return -EINVAL;
	}
	strcpy(out->spec, spec);
	if (!strncmp(spec, "unix:", 5))
		return parse_unix(spec, spec + 5, out);
	if (!strncmp(spec, "tcp:", 4))
		return parse_tcp(spec, spec + 4, out, false);
	if (!strncmp(spec, "tls:", 4))
		return parse_tcp(spec, spec + 4, out, true);
	kj_err("--listen `%s': expected unix:PATH, tcp:HOST:PORT or "
	       "tls:HOST:PORT", spec);
	return -EINVAL;
}

/* Remove a socket file left by an earlier run; refuse anything else. */
static int unlink_stale(const struct kj_listen *l, const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		kj_err("--listen `%s': %s exists and is not a socket", l->spec,
		       path);
		return -EEXIST;
	}
	if (unlink(path) < 0) {
		kj_err("--listen `%s': unlink stale socket: %s", l->spec,
		       strerror(errno));
		return -errno;
	}
	return 0;
}

int kj_listen_open(const struct kj_listen *l, int backlog)
{
	const struct sockaddr_un *sun = (const void *)&l->addr;
	int fd, rc, one = 1;

	fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
			SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		kj_err("--listen `%s': socket: %s", l->spec, strerror(-rc));
		return rc;
	}
	if (l->is_unix) {
		rc = unlink_stale(l, sun->sun_path);
		if (rc < 0)
			goto err;
	} else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
			      sizeof(one)) < 0) {
		rc = -errno;
		kj_err("--listen `%s': SO_REUSEADDR: %s", l->spec,
		       strerror(-rc));
		goto err;
	}
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addr_len) < 0) {
		rc = -errno;
		kj_err("--listen `%s': bind: %s%s", l->spec, strerror(-rc),
		       rc == -EADDRINUSE ? " (another process listens there: "
		       "stop it or choose another address)" : "");
		goto err;
	}
	if (l->is_unix && chmod(sun->sun_path, 0660) < 0) {
		rc = -errno;
		kj_err("--listen `%s': chmod 0660: %s", l->spec, strerror(-rc));
		goto err;
	}
	if (listen(fd, backlog) < 0) {
		rc = -errno;
		kj_err("--listen `%s': listen: %s", l->spec, strerror(-rc));
		goto err;
	}
	return fd;
err:
	close(fd);
	return rc;
}

void kj_listen_close(const struct kj_listen *l, int fd)
{
	const struct sockaddr_un *sun = (const void *)&l->addr;

	if (fd >= 0)
		close(fd);
	if (l->is_unix)
		(void)unlink(sun->sun_path);
}
