// SPDX-License-Identifier: Apache-2.0
/*
 * kinject demo (SPEC.md §4): the whole story in one command, for a
 * newcomer.  A throw-away software TPM (swtpm) and HSM token (SoftHSM2),
 * the appliance's keys, a customer's inputs made with the openssl command
 * line, a job against simulated sockets (`kinject sim'), the evidence
 * exported and verified offline, the audit trail and the report.  Every
 * command is printed before it runs, as a line the reader can paste, so
 * any step can be repeated by hand; what the demo writes itself (random
 * firmware, JSON files) is said in words.  Each stage is one function of
 * the table in cmd_demo_main(): the ceremony is one of them.
 */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/rand.h>

#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "evidence/evidence.h"
#include "commands.h"
#include "demo_int.h"

const char cmd_demo_usage[] =
	"Usage: kinject demo [--dir D] [--devices N] [--sockets S]\n\n"
	"The whole story with nothing set up: a software TPM and HSM token,\n"
	"the appliance's keys, a customer's inputs made with openssl, a job\n"
	"of N devices (default 1000) over S simulated sockets (default 64),\n"
	"the evidence verified offline, the audit export and the report.\n"
	"Every command is printed before it runs, so any step can be repeated\n"
	"by hand.  Everything is kept under D (default: a new /tmp folder).\n"
	"Needs swtpm, tpm2-tools, softhsm2, opensc (pkcs11-tool), openssl.\n";

extern char **environ;
static volatile pid_t swtpm_pid;

/* ---- running commands, visibly ------------------------------------------- */

/* A word as the shell reads it back: bare when it is safe, else '...'. */
static void print_word(FILE *f, const char *w)
{
	if (*w && strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
			 "VWXYZ0123456789-_=.,/:+@%") == strlen(w)) {
		fputs(w, f);
		return;
	}
	fputc('\'', f);
	for (; *w; w++)
		fputs(*w == '\'' ? "'\\''" : (char[2]){ *w, 0 }, f);
	fputc('\'', f);
}

int kj_demo_spawn(struct kj_demo *d, const char *out, pid_t *pid,
		  const char *const argv[])
{
	posix_spawn_file_actions_t fa;
	int rc;

	printf("$ ");
	for (size_t i = 0; argv[i]; i++) {
		if (i)
			putchar(' ');
		print_word(stdout, argv[i]);
	}
	if (out) {
		fputs(" >", stdout);
		print_word(stdout, out);
		printf(" 2>&1");
	}
	putchar('\n');
	fflush(stdout);
	posix_spawn_file_actions_init(&fa);
	if (out) {
		posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY |
						 O_CREAT | O_TRUNC, 0644);
		posix_spawn_file_actions_adddup2(&fa, 1, 2);
	}
	rc = posix_spawnp(pid, argv[0], &fa, NULL, (char *const *)argv,
			  environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		kj_err("demo: cannot run %s: %s (is it installed? `make "
		       "deps')", argv[0], strerror(rc));
		return -rc;
	}
	(void)d;
	return 0;
}

int kj_demo_wait(pid_t pid, const char *what)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	kj_err("demo: %s died by signal %d", what, WTERMSIG(st));
	return 128 + WTERMSIG(st);
}

int kj_demo_run(struct kj_demo *d, const char *out, const char *const argv[])
{
	pid_t pid;
	int rc;

	KJ_TRY(kj_demo_spawn(d, out, &pid, argv));
	rc = kj_demo_wait(pid, argv[0]);
	if (rc) {
		kj_err("demo: `%s' failed (exit %d)%s%s", argv[0], rc,
		       out ? "; its output: " : "", out ? out : "");
		return -EIO;
	}
	return 0;
}

char *kj_demo_path(struct kj_demo *d, const char *fmt, ...)
{
	char *out = d->paths[d->n_paths++ % KJ_DEMO_PATHS];
	size_t n = strlen(d->dir);
	va_list ap;

	/* dir < KJ_DEMO_DIR_MAX (prepare()), so the name always fits. */
	memcpy(out, d->dir, n);
	out[n++] = '/';
	va_start(ap, fmt);
	vsnprintf(out + n, PATH_MAX - n, fmt, ap);
	va_end(ap);
	return out;
}

void kj_demo_say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("# ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

int kj_demo_write(struct kj_demo *d, const char *name, const void *data,
		  size_t len, const char *what)
{
	kj_demo_say("writes %s: %s", name, what);
	return kj_write_file_atomic(kj_demo_path(d, "%s", name), data, len,
				    0644);
}

char *kj_demo_base64(const uint8_t *buf, size_t len)
{
	return kj_base64_encode(buf, len);
}

/* ---- the TPM, and stopping it however the demo ends ---------------------- */

static void stop_swtpm(void)
{
	if (swtpm_pid > 0)
		kill(swtpm_pid, SIGTERM);
	swtpm_pid = 0;
}

static void on_signal(int sig)
{
	if (swtpm_pid > 0)
		kill(swtpm_pid, SIGTERM);
	_exit(128 + sig);
}

static int step_tpm(struct kj_demo *d)
{
	char srv[96], ctl[96], state[KJ_DEMO_DIR_MAX + 16];
	char pidf[KJ_DEMO_DIR_MAX + 32];
	uint8_t *buf;
	size_t len;
	int rc = -EIO;

	kj_demo_say("a software TPM 2.0 (swtpm) on loopback; the appliance "
		    "quotes with it");
	KJ_TRY(kj_mkdir_p(kj_demo_path(d, "tpm"), 0700));
	snprintf(state, sizeof(state), "dir=%s/tpm", d->dir);
	snprintf(pidf, sizeof(pidf), "file=%s/tpm/swtpm.pid", d->dir);
	for (int i = 0; i < 20 && rc; i++) {
		unsigned port = 30000 + 2 * (unsigned)(rand() % 10000);
		const char *argv[] = { "swtpm", "socket", "--tpm2",
			"--tpmstate", state, "--server", srv, "--ctrl", ctl,
			"--flags", "not-need-init", "--daemon", "--pid", pidf,
			NULL };

		snprintf(srv, sizeof(srv),
			 "type=tcp,port=%u,bindaddr=127.0.0.1", port);
		snprintf(ctl, sizeof(ctl),
			 "type=tcp,port=%u,bindaddr=127.0.0.1", port + 1);
		snprintf(d->tcti, sizeof(d->tcti),
			 "swtpm:host=127.0.0.1,port=%u", port);
		rc = kj_demo_run(d, kj_demo_path(d, "tpm/swtpm.out"), argv);
	}
	if (rc)
		return rc;
	KJ_TRY(kj_read_file(kj_demo_path(d, "tpm/swtpm.pid"), 32, &buf, &len));
	swtpm_pid = (pid_t)strtol((char *)buf, NULL, 10);
	free(buf);
	return kj_demo_run(d, NULL, (const char *[]){ "tpm2_startup", "-c",
			   "-T", d->tcti, NULL });
}

/* ---- the stages ---------------------------------------------------------- */

static int step_job(struct kj_demo *d)
{
	char devices[32], sockets[32], listen[KJ_DEMO_DIR_MAX + 32];
	const char *sock = kj_demo_path(d, "line.sock");
	const char *run[] = { d->self, "run", "--state", d->state,
		"--operator", "demo", "--work-order", d->wo,
		"--work-order-sig", d->wo_sig, "--product", d->product,
		"--product-sig", d->product_sig, "--firmware", d->fw,
		"--credentials", d->creds, "--hsm", d->hsm_uri,
		"--pin-source", d->pin_source, "--tpm", d->tcti, "--listen",
		listen, "--log-format", "text", "--json-summary",
		kj_demo_path(d, "run-summary.json"), NULL };
	const char *sim[] = { d->self, "sim", "--connect", listen, "--hwrev",
		"B", "--site", "demo-line", "--sockets", sockets, "--devices",
		devices, NULL };
	pid_t pid;
	int rc, i;

	snprintf(listen, sizeof(listen), "unix:%s", sock);
	snprintf(devices, sizeof(devices), "%u", d->devices);
	snprintf(sockets, sizeof(sockets), "%u", d->sockets);
	kj_demo_say("the job: kinject run serves the line (its log in "
		    "run.log), kinject sim plays %u programming sockets",
		    d->sockets);
	unlink(sock);
	KJ_TRY(kj_demo_spawn(d, kj_demo_path(d, "run.log"), &pid, run));
	for (i = 0; i < 600 && access(sock, F_OK); i++) {
		if (waitpid(pid, &rc, WNOHANG) == pid) {
			kj_err("demo: kinject run ended before listening; see "
			       "%s/run.log", d->dir);
			return -EIO;
		}
		usleep(50000);
	}
	rc = kj_demo_run(d, NULL, sim);
	if (rc)
		kill(pid, SIGTERM);
	if (kj_demo_wait(pid, "kinject run") || rc) {
		kj_err("demo: the job did not complete; see %s/run.log",
		       d->dir);
		return -EIO;
	}
	return 0;
}

static int step_evidence(struct kj_demo *d)
{
	kj_demo_say("the customer's proof: the evidence bundle, checked "
		    "offline (no TPM, no HSM needed)");
	KJ_TRY(kj_demo_run(d, NULL, (const char *[]){ d->self, "evidence",
			   "export", "--state", d->state, "--job", KJ_DEMO_JOB,
			   "--out", kj_demo_path(d, "evidence.json"), NULL }));
	return kj_demo_run(d, NULL, (const char *[]){ d->self, "verify",
			   kj_demo_path(d, "evidence.json"), "--ak",
			   kj_demo_path(d, "state/ak.pem"), "--work-order",
			   d->wo, NULL });
}

static int step_audit(struct kj_demo *d)
{
	kj_demo_say("quality: the jobs, every device as CSV, a report for "
		    "people");
	KJ_TRY(kj_demo_run(d, NULL, (const char *[]){ d->self, "audit", "jobs",
			   "--state", d->state, NULL }));
	KJ_TRY(kj_demo_run(d, NULL, (const char *[]){ d->self, "audit",
			   "export", "--state", d->state, "--out",
			   kj_demo_path(d, "devices.csv"), NULL }));
	return kj_demo_run(d, NULL, (const char *[]){ d->self, "audit",
			   "report", "--state", d->state, "--job", KJ_DEMO_JOB,
			   "--out", kj_demo_path(d, "report.html"), NULL });
}

static void closing(const struct kj_demo *d)
{
	printf("\n== done: %u devices programmed, journaled, attested and "
	       "verified\n\n", d->devices);
	printf("Everything is in %s:\n", d->dir);
	printf("  customer/        the customer's keys and inputs (FW.cms, "
	       "CREDS.cms, WO.json + .sig, product.json + .sig)\n");
	printf("  state/           the appliance: journal.db, ak.pem, "
	       "transport.pem\n");
	printf("  evidence.json    the proof for the customer\n");
	printf("  devices.csv      every device (audit export)\n");
	printf("  report.html      the job for people: open it in a browser\n");
	printf("  run.log          what kinject run said\n\n");
	printf("Try next:\n");
	printf("  %s audit recall --state %s --serial AS10042\n", d->self,
	       d->state);
	printf("  %s audit verify --state %s\n", d->self, d->state);
	printf("  %s verify %s/evidence.json --ak %s/ak.pem --json\n", d->self,
	       d->dir, d->state);
	printf("  man kinject    (after make install), README.md: a guide per "
	       "role\n");
}

/* ---- arguments and the story --------------------------------------------- */

static int parse(int argc, char **argv, struct kj_demo *d)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "devices", required_argument, NULL, 'n' },
		{ "sockets", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	d->devices = 1000;
	d->sockets = 64;
	opterr = 1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (strlen(optarg) >= sizeof(d->dir)) {
				kj_err("--dir: longer than %zu bytes",
				       sizeof(d->dir) - 1);
				return -EINVAL;
			}
			snprintf(d->dir, sizeof(d->dir), "%s", optarg);
			break;
		case 'n':
			KJ_TRY(kj_parse_u64(optarg, 1, 1000000, "--devices",
					    &v));
			d->devices = (unsigned)v;
			break;
		case 's':
			KJ_TRY(kj_parse_u64(optarg, 1, 10000, "--sockets", &v));
			d->sockets = (unsigned)v;
			break;
		default:
			return -EINVAL;
		}
	}
	if (optind < argc) {
		kj_err("demo: unexpected argument `%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int prepare(struct kj_demo *d)
{
	char real[PATH_MAX];
	ssize_t n;

	if (!d->dir[0]) {
		snprintf(d->dir, sizeof(d->dir), "/tmp/kinject-demo.XXXXXX");
		if (!mkdtemp(d->dir)) {
			kj_err("demo: mkdtemp %s: %m", d->dir);
			return -errno;
		}
	}
	KJ_TRY(kj_mkdir_p(d->dir, 0700));
	if (!realpath(d->dir, real)) {
		kj_err("demo: --dir %s: %m", d->dir);
		return -errno;
	}
	if (strlen(real) >= KJ_DEMO_DIR_MAX) {
		kj_err("demo: --dir %s: longer than %d bytes", real,
		       KJ_DEMO_DIR_MAX - 1);
		return -ENAMETOOLONG;
	}
	memcpy(d->dir, real, strlen(real) + 1); /* fits: checked above */
	n = readlink("/proc/self/exe", d->self, sizeof(d->self) - 1);
	if (n <= 0) {
		kj_err("demo: cannot find my own binary: %m");
		return -EIO;
	}
	d->self[n] = '\0';
	snprintf(d->state, sizeof(d->state), "%s/state", d->dir);
	return kj_mkdir_p(d->state, 0700);
}

int cmd_demo_main(int argc, char **argv)
{
	static const struct {
		const char *title;
		int (*fn)(struct kj_demo *d);
	} stages[] = {
		{ "software TPM", step_tpm },
		{ "HSM token", kj_demo_step_hsm },
		{ "ceremony: the appliance's keys, the customer enrolled",
		  kj_demo_step_ceremony },
		{ "customer inputs with openssl (SPEC.md §3)",
		  kj_demo_step_customer },
		{ "the job", step_job },
		{ "evidence and offline verification", step_evidence },
		{ "audit", step_audit },
	};
	struct kj_demo *d = calloc(1, sizeof(*d));
	int rc = 0;

	if (!d || parse(argc, argv, d) < 0) {
		free(d);
		return KJ_EXIT_USAGE;
	}
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (prepare(d) < 0)
		rc = -EIO;
	printf("kinject demo in %s\n", d->dir);
	for (size_t i = 0; i < KJ_ARRAY_SIZE(stages) && !rc; i++) {
		printf("\n== %zu. %s\n", i + 1, stages[i].title);
		rc = stages[i].fn(d);
	}
	stop_swtpm();
	if (!rc)
		closing(d);
	else
		kj_err("demo: stopped; what was made is in %s", d->dir);
	free(d);
	return rc ? KJ_EXIT_ERROR : KJ_EXIT_OK;
}
