// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
/*
 * The "pump" bound of QUALITY.md: the same bytes through the same kind of
 * sockets with no protocol, journal or attestation.  One server process and
 * one client process, each a single epoll loop, like the appliance and the
 * simulator (processes, so that each has its own descriptor table: 10,000
 * sockets are 20,000 descriptors).  Per device: client sends an 8-byte
 * hello, server sends `size` bytes, client answers 32 bytes, server
 * answers 16 bytes.  The client
 * hashes every payload byte it receives with SHA-256 (OpenSSL's EVP, its
 * fastest implementation) and answers with the digest, as a site computes
 * its readback digest: so the pump's load generator does the same work per
 * byte as `kinject sim' does against the appliance.  --no-hash: the bare
 * transport (the client only receives).  --workers W: the client is W
 * threads, each an epoll loop over a contiguous share of the sockets, all
 * taking devices from one count, as `kinject sim --workers W' splits its
 * sites; the server stays one loop (its bare rate, pump-raw at W = 1, is
 * twice the hashing client's, so the client is what W scales).
 * --program-delay-ms D: the client holds each device for D ms between the
 * last payload byte received and its answer, as a site programming the
 * chip would and as `kinject sim --program-delay-ms' does, so the pump is
 * the bound of a line whose pipeline is full because every socket spends
 * most of its time programming: at most sockets / D devices/s.
 *
 *   pump --sockets N --devices M --size BYTES [--workers W] [--no-hash]
 *        [--program-delay-ms D]
 * prints one JSON line: devices_per_s over the whole run, connects
 * included, and steady_devices_per_s between the first and the last wave
 * (from the device that made as many as there are sockets to the one that
 * left as many to go), as `kinject sim' reports its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

enum { HELLO = 8, READBACK = 32, COMMIT = 16 };

struct conn {
	int fd;
	int phase;      /* server: 0 hello 1 payload 2 readback 3 commit */
	size_t done;    /* bytes of the current phase */
	int reserved;   /* client: this device is counted in `started' */
	EVP_MD_CTX *md; /* client: digest of the payload */
	uint8_t digest[EVP_MAX_MD_SIZE];
	int held;       /* client: programming, answer due at `due' */
	double due;
	struct conn *next; /* client: its worker's line of held devices */
};

/* A client worker's devices being "programmed", oldest first (one delay
 * for all, so the line is in order of due time). */
struct held_line {
	struct conn *head, *tail;
};

static size_t size;
static unsigned long devices_wanted;
static atomic_ulong devices_done, started;
static double t_end; /* when devices_done reached devices_wanted */
/* devices_done reached all_sockets; devices_wanted minus all_sockets */
static double t_wave, t_tail;
static unsigned all_sockets;
static int hash = 1;
static unsigned delay_ms;
static uint8_t *payload;
static char path[108];

static void die(const char *what)
{
	fprintf(stderr, "pump: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* CPU (user + sys) of this process's threads, or of the reaped server. */
static double cpu_s(int who)
{
	struct rusage ru;

	if (getrusage(who, &ru) < 0)
		die("getrusage");
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Move bytes for one phase; returns 1 when the phase completed. */
static int step(struct conn *c, int sending, size_t want, const uint8_t *src)
{
	static __thread uint8_t sink[65536];

	while (c->done < want) {
		size_t n = want - c->done;
		ssize_t r;

		if (sending) {
			r = send(c->fd, src + c->done, n, MSG_NOSIGNAL);
		} else {
			if (n > sizeof(sink))
				n = sizeof(sink);
			r = recv(c->fd, sink, n, 0);
			if (r > 0 && c->md &&
			    !EVP_DigestUpdate(c->md, sink, (size_t)r))
				die("EVP_DigestUpdate");
		}
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (r <= 0)
			return -1;
		c->done += (size_t)r;
	}
	c->done = 0;
	return 1;
}

static void server(int lfd)
{
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[256];
	static const uint8_t small[64];

	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int r = 1;

			if (!c) {
				int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);

				if (fd < 0)
					continue;
				c = calloc(1, sizeof(*c));
				c->fd = fd;
				ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
				ev.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				continue;
			}
			while (r == 1) {
				switch (c->phase) {
				case 0: r = step(c, 0, HELLO, NULL); break;
				case 1: r = step(c, 1, size, payload); break;
				case 2: r = step(c, 0, READBACK, NULL); break;
				default: r = step(c, 1, COMMIT, small); break;
				}
				if (r == 1)
					c->phase = (c->phase + 1) % 4;
			}
			if (r < 0) {
				close(c->fd);
				free(c);
			}
		}
	}
}

/* Take a device from the shared count before its hello; 0: none left. */
static int reserve(struct conn *c)
{
	if (c->reserved)
		return 1;
	if (atomic_fetch_add(&started, 1) >= devices_wanted) {
		atomic_fetch_sub(&started, 1);
		return 0;
	}
	c->reserved = 1;
	return 1;
}

static void device_done(struct conn *c)
{
	c->reserved = 0;
	unsigned long n = atomic_fetch_add(&devices_done, 1) + 1;

	if (n == all_sockets)
		t_wave = now_s();
	if (n + all_sockets == devices_wanted)
		t_tail = now_s();
	if (n == devices_wanted)
		t_end = now_s();
}

/* Hold c (its payload all received) until its programming delay is over. */
static void hold(struct held_line *l, struct conn *c)
{
	c->held = 1;
	c->due = now_s() + delay_ms / 1e3;
	c->next = NULL;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

/* Run c's device as far as its socket allows: 0, or -1 (connection lost). */
static int client_step(struct held_line *l, struct conn *c)
{
	static const uint8_t small[64];
	int r = 1;

	while (r == 1) {
		if (c->phase == 0 && !reserve(c))
			break;
		switch (c->phase) {
		case 0: r = step(c, 1, HELLO, small);
			if (r == 1 && c->md &&
			    !EVP_DigestInit_ex(c->md, EVP_sha256(), NULL))
				die("EVP_DigestInit_ex");
			break;
		case 1: r = step(c, 0, size, NULL);
			if (r == 1 && c->md &&
			    !EVP_DigestFinal_ex(c->md, c->digest, NULL))
				die("EVP_DigestFinal_ex");
			if (r == 1 && delay_ms) {
				c->phase = 2;
				hold(l, c);
				return 0;
			}
			break;
		case 2: r = step(c, 1, READBACK, c->digest);
			break;
		default: r = step(c, 0, COMMIT, NULL);
			if (r == 1)
				device_done(c);
			break;
		}
		if (r == 1)
			c->phase = (c->phase + 1) % 4;
	}
	return r < 0 ? -1 : 0;
}

/* epoll_wait's timeout: the first held device's due time (rounded up, so
 * that no device is answered early), at most 100 ms. */
static int wait_ms(const struct held_line *l)
{
	double left;

	if (!l->head)
		return 100;
	left = (l->head->due - now_s()) * 1e3;
	if (left <= 0)
		return 0;
	return left >= 100 ? 100 : (int)left + 1;
}

static void *client(void *arg)
{
	unsigned nsock = (unsigned)(uintptr_t)arg;
	int ep = epoll_create1(0);
	struct epoll_event ev, evs[256];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct held_line line = { NULL, NULL };

	memcpy(sa.sun_path, path, sizeof(sa.sun_path));
	for (unsigned i = 0; i < nsock; i++) {
		struct conn *c = calloc(1, sizeof(*c));

		if (!c || (hash && !(c->md = EVP_MD_CTX_new())))
			die("calloc");
		c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (c->fd < 0 || connect(c->fd, (void *)&sa, sizeof(sa)) < 0)
			die("connect");
		/* connect blocking, then non-blocking I/O, as the sim does */
		if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
			die("O_NONBLOCK");
		ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
		ev.data.ptr = c;
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	while (atomic_load(&devices_done) < devices_wanted) {
		int n = epoll_wait(ep, evs, 256, wait_ms(&line));
		double t = now_s();

		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (!c->held && client_step(&line, c) < 0)
				die("connection lost");
		}
		while (line.head && line.head->due <= t) {
			struct conn *c = line.head;

			line.head = c->next;
			if (!line.head)
				line.tail = NULL;
			c->held = 0;
			if (client_step(&line, c) < 0)
				die("connection lost");
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned nsock = 1000, workers = 1;
	pthread_t th[64];
	struct rlimit rl;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	pid_t srv;
	int lfd;

	size = 65536;
	devices_wanted = 20000;
	for (int i = 1; i < argc; i += 2) {
		if (!strcmp(argv[i], "--no-hash")) {
			hash = 0;
			i--;
		} else if (i + 1 >= argc) {
			fprintf(stderr, "pump: %s needs a value\n", argv[i]);
			return 2;
		} else if (!strcmp(argv[i], "--sockets"))
			nsock = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--devices"))
			devices_wanted = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--size"))
			size = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--workers"))
			workers = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--program-delay-ms"))
			delay_ms = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else {
			fprintf(stderr, "pump: unknown flag %s\n", argv[i]);
			return 2;
		}
	}
	all_sockets = nsock;
	if (!workers || workers > 64 || workers > nsock) {
		fprintf(stderr, "pump: --workers must be 1..64 and at most "
			"--sockets\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	payload = calloc(1, size ? size : 1);
	snprintf(path, sizeof(path), "/tmp/kinject-pump.%d", (int)getpid());
	memcpy(sa.sun_path, path, sizeof(sa.sun_path));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (void *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 4096) < 0)
		die("listen");
	srv = fork();
	if (srv < 0)
		die("fork");
	if (srv == 0) {
		server(lfd);
		_exit(0);
	}
	close(lfd);

	double t0 = now_s();

	/* worker w: sockets [nsock * w / W, nsock * (w + 1) / W) */
	for (unsigned w = 0; w < workers; w++) {
		uintptr_t share = (uintptr_t)nsock * (w + 1) / workers -
				  (uintptr_t)nsock * w / workers;

		if (pthread_create(&th[w], NULL, client, (void *)share))
			die("pthread_create");
	}
	for (unsigned w = 0; w < workers; w++)
		pthread_join(th[w], NULL);
	double dt = t_end - t0;
	unsigned long done = atomic_load(&devices_done);
	/* between the first and the last wave, as kinject sim's */
	double steady = done >= 3ul * nsock && t_tail > t_wave ?
			(double)(done - 2ul * nsock) / (t_tail - t_wave) : 0;

	double client_cpu = cpu_s(RUSAGE_SELF);

	unlink(path);
	kill(srv, SIGKILL);
	waitpid(srv, NULL, 0);
	printf("{\"scenario\":\"%s\",\"sockets\":%u,\"firmware_bytes\":%zu,"
	       "\"devices\":%lu,\"seconds\":%.3f,\"devices_per_s\":%.0f,"
	       "\"steady_devices_per_s\":%.0f,"
	       "\"bytes_per_s\":%.0f,\"workers\":%u,"
	       "\"program_delay_ms\":%u,"
	       "\"client_cpu_us_per_device\":%.1f,"
	       "\"server_cpu_us_per_device\":%.1f}\n",
	       hash ? "pump" : "pump-raw", nsock, size, done, dt, done / dt,
	       steady, done * (double)size / dt, workers, delay_ms,
	       client_cpu / done * 1e6,
	       cpu_s(RUSAGE_CHILDREN) / done * 1e6);
	return 0;
}
