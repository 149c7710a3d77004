// SPDX-License-Identifier: Apache-2.0
/*
 * An injector process's life as the keeper sees it: fork and exec it
 * (injector.h) onto its end of a socketpair, read its packets, and when it
 * dies record its devices in flight `internal` and start a fresh one.  Apart from the loop because
 * this is the only place that forks, waits for or kills a child.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "injector/injector.h"
#include "journal/record.h"
#include "wire/ipc.h"
#include "keeper_int.h"

#define PACKETS_PER_TURN 64
#define IPC_SOCKBUF (4 * 1024 * 1024)

static void boot_fill(const struct keeper *k, const struct inj *in,
		      struct kj_injector_boot *b)
{
	const struct kj_job *job = k->job;

	memset(b, 0, sizeof(*b));
	b->magic = KJ_INJECTOR_BOOT_MAGIC;
	b->size = sizeof(*b);
	b->worker = in->worker;
	b->arena_fd = k->share_fd;
	b->arena_size = job->arena->size;
	b->n_listen = (uint32_t)job->n_listen;
	for (size_t i = 0; i < job->n_listen; i++) {
		b->listen_fds[i] = k->lfds[i];
		if (job->listen[i].is_tls)
			b->listen_tls |= 1ull << i;
	}
	/* tls: what the handshake needs follows in a packet of its own */
	if (job->tls)
		b->tls_len = (uint32_t)(strlen(job->tls->cert_pem) + 1 +
					strlen(job->tls->site_cas_pem) + 1);
	b->fw_off = job->fw_off;
	b->fw_size = job->fw_size;
	b->max_conns = in->max_conns;
	b->accept_limit = in->share;
	b->workers = k->n_inj;
	b->hello_timeout_ms = job->limits.hello_timeout_ms;
	b->program_timeout_ms = job->limits.program_timeout_ms;
	b->keeper_pid = (int32_t)getpid();
	snprintf(b->fw_version, sizeof(b->fw_version), "%s",
		 job->wo->fw_version_str);
	memcpy(b->fw_sha256, job->wo->fw_sha256, 32);
}

int kj_kp_inj_start(struct keeper *k, struct inj *in)
{
	struct kj_injector_boot boot;
	char *env[KJ_INJECTOR_ENV_MAX];
	int keep[KJ_INJECTOR_MAX_LISTEN + 1];
	int sv[2], buf = IPC_SOCKBUF;
	size_t n = 0;
	pid_t pid;

	if (k->job->n_listen > KJ_INJECTOR_MAX_LISTEN) {
		kj_err("keeper: %zu --listen addresses: at most %d",
		       k->job->n_listen, KJ_INJECTOR_MAX_LISTEN);
		return -EINVAL;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		kj_err("keeper: socketpair: %s", strerror(errno));
		return -errno;
	}
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	(void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	(void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	boot_fill(k, in, &boot);
	keep[n++] = k->share_fd;
	for (size_t i = 0; i < k->job->n_listen; i++)
		keep[n++] = k->lfds[i];
	kj_injector_env(env);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		kj_err("keeper: fork injector: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0)
		kj_injector_exec(k->exe_fd, sv[1], keep, n, env);
	close(sv[1]);
	/* One packet into an empty socket buffer: cannot block long. */
	if (send(sv[0], &boot, sizeof(boot), MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(boot)) {
		kj_err("keeper: injector %u: sending its boot packet: %s",
		       in->worker, strerror(errno));
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(sv[0]);
		return -EIO;
	}
	if (boot.tls_len && kj_kp_tls_boot(k, sv[0], in->worker) < 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(sv[0]);
		return -EIO;
	}
	in->fd = sv[0];
	in->pid = pid;
	in->gen++;
	in->state = I_START;
	in->load_ok = false;
	memset(&in->cnt, 0, sizeof(in->cnt));
	return 0;
}

/*
 * The injector is gone (exited, crashed, or killed for a bad request):
 * its devices that were OFFERed, or about to be, are recorded `internal`
 * (SPEC §2); a fresh injector starts unless the job is ending.
 */
int kj_kp_inj_dead(struct keeper *k, struct inj *in, bool restart)
{
	int status = 0, rc;

	if (in->state == I_DEAD)
		return 0;
	kill(in->pid, SIGKILL);
	while (waitpid(in->pid, &status, 0) < 0 && errno == EINTR)
		;
	close(in->fd);
	in->fd = -1;
	kj_kp_opkt_free_all(k, in);
	if (in->state == I_STOPPING && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0) {
		restart = false;
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
		/* Not our SIGKILL: the filter killed it (docs/SANDBOX.md). */
		k->st.sandbox_violations++;
		kj_err("keeper: injector %u (pid %d) killed by its seccomp "
		       "filter: a sandbox violation (%llu this run); its devices "
		       "in flight are recorded `internal', a fresh injector "
		       "takes over (docs/SANDBOX.md)", in->worker, in->pid,
		       (unsigned long long)k->st.sandbox_violations);
	} else if (restart) {
		if (WIFSIGNALED(status))
			kj_warn("keeper: injector %u (pid %d) died by signal "
				"%d (%s)", in->worker, in->pid,
				WTERMSIG(status), strsignal(WTERMSIG(status)));
		else
			kj_warn("keeper: injector %u (pid %d) exited with "
				"status %d", in->worker, in->pid,
				WEXITSTATUS(status));
	}
	if (in->state == I_STOPPING)
		restart = false;
	if (in->state == I_START && restart) {
		/* It never got as far as READY: a fresh one would fail the
		 * same way (no io_uring, sandbox refused: see above). */
		kj_err("keeper: injector %u could not start (its messages "
		       "above say why)", in->worker);
		restart = false;
		k->err = -EIO;
	}
	in->state = I_DEAD;
	for (unsigned t = 0; t < in->max_conns; t++) {
		struct kslot *s = &in->slots[t];

		if (s->state == K_RESERVED) {
			rc = kj_kp_close_attempt(k, s, KJ_RES_INTERNAL, 0,
						 NULL);
			if (rc < 0)
				return rc;
		} else if (s->state == K_CHALLENGED) {
			/* A valid HELLO is always recorded (PROTOCOL.md). */
			struct kj_record r;

			kj_kp_device_record(s, &r, KJ_RES_INTERNAL);
			rc = kj_kp_append(k, &r);
			if (rc < 0)
				return rc;
		}
		s->state = K_FREE;
	}
	k->gone.accepted += in->cnt.accepted;
	k->gone.pre_hello_protocol += in->cnt.pre_hello_protocol;
	k->gone.pre_hello_timeout += in->cnt.pre_hello_timeout;
	k->gone.pre_hello_eof += in->cnt.pre_hello_eof;
	k->gone.over_limit += in->cnt.over_limit;
	k->gone.refusal_closed += in->cnt.refusal_closed;
	k->gone.bytes_sent += in->cnt.bytes_sent;
	k->gone.tls_ktls += in->cnt.tls_ktls;
	k->gone.tls_user += in->cnt.tls_user;
	k->gone.tls_refused += in->cnt.tls_refused;
	memset(&in->cnt, 0, sizeof(in->cnt));
	if (!restart)
		return k->err;
	if (++k->st.injector_restarts > k->job->limits.max_restarts) {
		kj_err("keeper: injectors died %llu times: giving up",
		       (unsigned long long)k->st.injector_restarts);
		return -EIO;
	}
	return kj_kp_inj_start(k, in);
}

int kj_kp_inj_read(struct keeper *k, struct inj *in, uint8_t *buf)
{
	for (int i = 0; i < PACKETS_PER_TURN; i++) {
		ssize_t n = recv(in->fd, buf, KJ_IPC_MSG_MAX + 1,
				 MSG_DONTWAIT | MSG_TRUNC);
		int rc;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0)
			return kj_kp_inj_dead(k, in, true);
		if ((size_t)n > KJ_IPC_MSG_MAX) {
			kj_err("keeper: injector %u: packet of %zd bytes over "
			       "the %u cap: killing it", in->worker, n,
			       KJ_IPC_MSG_MAX);
			return kj_kp_inj_dead(k, in, true);
		}
		rc = kj_kp_on_packet(k, in, buf, (size_t)n);
		if (rc == -EPROTO)
			return kj_kp_inj_dead(k, in, true);
		if (rc < 0)
			return rc;
		if (in->state == I_DEAD)
			return 0;
	}
	return 0;
}

/*
 * LOAD to each running injector whose view of the others changed: their
 * open connections (from COUNTERS, which an injector sends when its count
 * changes) and how many of them can still accept.  An injector above its
 * share leaves the next connections to the others (engine_accept.c); the
 * counts only pass through the keeper, the injectors share no memory.
 */
void kj_kp_inj_load(struct keeper *k)
{
	uint64_t open = 0;
	unsigned live = 0, room = 0;

	for (unsigned i = 0; i < k->n_inj; i++) {
		const struct inj *in = &k->inj[i];

		if (in->state != I_START && in->state != I_RUN)
			continue;
		live++;
		open += in->cnt.open;
		room += in->cnt.open < in->share;
	}
	for (unsigned i = 0; i < k->n_inj; i++) {
		struct inj *in = &k->inj[i];
		bool mine = in->cnt.open < in->share;
		struct kj_ipc_load m = {
			.others_open = (uint32_t)(open - in->cnt.open),
			.workers = (uint16_t)live,
			.others_room = (uint16_t)(room - mine),
		};

		if (in->state != I_RUN ||
		    (in->load_ok && !memcmp(&m, &in->load_sent, sizeof(m))))
			continue;
		if (kj_kp_inj_put(in, KJ_IPC_LOAD, &m, sizeof(m), NULL, 0) < 0)
			continue;
		in->load_sent = m;
		in->load_ok = true;
	}
}
