// SPDX-License-Identifier: Apache-2.0
/*
 * An injector process's life as the keeper sees it: fork it onto its end
 * of a socketpair, read its packets, and when it dies record its devices
 * in flight `internal` and start a fresh one.  Apart from the loop because
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

int kj_kp_inj_start(struct keeper *k, struct inj *in)
{
	const struct kj_job *job = k->job;
	struct kj_injector_args a = { 0 };
	int sv[2], buf = IPC_SOCKBUF;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		kj_err("keeper: socketpair: %s", strerror(errno));
		return -errno;
	}
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	(void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	(void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		kj_err("keeper: fork injector: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		close(sv[0]);
		a.arena_fd = job->arena->fd;
		a.arena_size = job->arena->size;
		a.cfg.worker = in->worker;
		a.cfg.fw_off = job->fw_off;
		a.cfg.fw_size = job->fw_size;
		snprintf(a.cfg.fw_version, sizeof(a.cfg.fw_version), "%s",
			 job->wo->fw_version_str);
		memcpy(a.cfg.fw_sha256, job->wo->fw_sha256, 32);
		a.cfg.listen_fds = k->lfds;
		a.cfg.n_listen = (unsigned)job->n_listen;
		a.cfg.ipc_fd = sv[1];
		a.cfg.max_conns = in->max_conns;
		a.cfg.accept_limit = in->share;
		a.cfg.hello_timeout_ms = job->limits.hello_timeout_ms;
		a.cfg.program_timeout_ms = job->limits.program_timeout_ms;
		kj_injector_main(&a);
	}
	close(sv[1]);
	in->fd = sv[0];
	in->pid = pid;
	in->gen++;
	in->state = I_START;
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
	} else if (restart) {
		if (WIFSIGNALED(status))
			kj_warn("keeper: injector %u (pid %d) died by signal "
				"%d (%s)%s", in->worker, in->pid,
				WTERMSIG(status), strsignal(WTERMSIG(status)),
				WTERMSIG(status) == SIGSYS ?
				": a sandbox violation (seccomp), see "
				"docs/SANDBOX.md" : "");
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
		}
		s->state = K_FREE;
	}
	k->gone.accepted += in->cnt.accepted;
	k->gone.pre_hello_protocol += in->cnt.pre_hello_protocol;
	k->gone.pre_hello_timeout += in->cnt.pre_hello_timeout;
	k->gone.pre_hello_eof += in->cnt.pre_hello_eof;
	k->gone.over_limit += in->cnt.over_limit;
	k->gone.bytes_sent += in->cnt.bytes_sent;
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
