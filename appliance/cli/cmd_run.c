// SPDX-License-Identifier: Apache-2.0
/* kinject run: one job, SPEC.md §4. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/checkpoint.h"
#include "attest/tpm.h"
#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "ceremony/ceremony.h"
#include "injector/listen.h"
#include "inputs/preflight.h"
#include "inputs/product.h"
#include "inputs/sites.h"
#include "journal/journal.h"
#include "keeper/keeper.h"
#include "keeper/keeper_sign.h"
#include "secret/arena_kmod.h"
#include "commands.h"
#include "progress.h"

#define KJ_RUN_MAX_LISTEN 16

const char cmd_run_usage[] =
	"Usage: kinject run --work-order WO.json --work-order-sig WO.json.sig\n"
	"         --product P.json --product-sig P.json.sig\n"
	"         --firmware FW.cms --credentials CREDS.cms\n"
	"         --listen unix:PATH|tcp:HOST:PORT|tls:HOST:PORT\n"
	"         [--listen ...]\n"
	"         --hsm PKCS11-URI --pin-source file:PATH|env:NAME\n"
	"         --tpm TCTI --operator ID [options]\n\n"
	"Run one job: decrypt the inputs into secret memory, serve the\n"
	"programming sockets until the work order's quantity is reached,\n"
	"journal and attest every attempt.  Rerunning with the same state\n"
	"directory and work order resumes the job.\n\n"
	"Options:\n"
	"  --state DIR                 appliance state (default ./kinject-state)\n"
	"  --sites FILE                allowed sites and sockets (UNAUTHORIZED)\n"
	"  --max-connections N         default 4096\n"
	"  --hello-timeout S           idle limit before HELLO, default 600\n"
	"  --program-timeout S         limit for READBACK, default 120\n"
	"  --checkpoint-interval MS    TPM checkpoint cadence, default 200\n"
	"  --no-commit-after-checkpoint  send COMMIT once journaled, before\n"
	"                              the covering quote\n"
	"  --workers N                 injector processes (default: one per core)\n"
	"  --tls-sign-rate N           TLS handshake signatures a second the\n"
	"                              keeper makes in the HSM, default 200\n"
	"  --tls-sign-burst N          of those at once (after an idle\n"
	"                              spell), default 4096\n"
	"  --json-summary FILE         write the summary as JSON\n"
	"  --log-format text|json      progress and log lines: text is a status\n"
	"                              screen on a terminal; json (the default\n"
	"                              off a terminal) one object per line\n"
	"  --tpm none                  no attestation (engine tests only)\n\n"
	"Exit: 0 quantity reached, 3 stopped by a signal (resumable),\n"
	"4 max_failed exceeded, 1 error, 2 usage.\n";

struct run_opts {
	struct kj_preflight_args in;
	struct kj_listen listen[KJ_RUN_MAX_LISTEN];
	size_t n_listen;
	const char *tpm, *operator_id, *sites, *json_summary, *log_format;
	enum kj_progress_mode progress;
	struct kj_keeper_limits limits;
	uint64_t checkpoint_ms;
	bool commit_after_checkpoint;
	/* What the checks before the first write produced. */
	struct kj_sites site_list;	/* when sites != NULL */
	int lfds[KJ_RUN_MAX_LISTEN];	/* bound; the keeper takes them */
	bool lfds_taken;
};

enum {
	O_WO = 256, O_WO_SIG, O_PRODUCT, O_PRODUCT_SIG, O_FIRMWARE, O_CREDS,
	O_LISTEN, O_STATE, O_HSM, O_PIN, O_TPM, O_OPERATOR, O_SITES, O_MAXCONN,
	O_HELLO_TO, O_PROG_TO, O_CKPT, O_NO_CAC, O_WORKERS, O_JSON,
	O_LOG_FORMAT, O_SIGN_RATE, O_SIGN_BURST,
};

static const struct option long_opts[] = {
	{ "work-order", required_argument, NULL, O_WO },
	{ "work-order-sig", required_argument, NULL, O_WO_SIG },
	{ "product", required_argument, NULL, O_PRODUCT },
	{ "product-sig", required_argument, NULL, O_PRODUCT_SIG },
	{ "firmware", required_argument, NULL, O_FIRMWARE },
	{ "credentials", required_argument, NULL, O_CREDS },
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "state", required_argument, NULL, O_STATE },
	{ "hsm", required_argument, NULL, O_HSM },
	{ "pin-source", required_argument, NULL, O_PIN },
	{ "tpm", required_argument, NULL, O_TPM },
	{ "operator", required_argument, NULL, O_OPERATOR },
	{ "sites", required_argument, NULL, O_SITES },
	{ "max-connections", required_argument, NULL, O_MAXCONN },
	{ "hello-timeout", required_argument, NULL, O_HELLO_TO },
	{ "program-timeout", required_argument, NULL, O_PROG_TO },
	{ "checkpoint-interval", required_argument, NULL, O_CKPT },
	{ "no-commit-after-checkpoint", no_argument, NULL, O_NO_CAC },
	{ "workers", required_argument, NULL, O_WORKERS },
	{ "json-summary", required_argument, NULL, O_JSON },
	{ "log-format", required_argument, NULL, O_LOG_FORMAT },
	{ "tls-sign-rate", required_argument, NULL, O_SIGN_RATE },
	{ "tls-sign-burst", required_argument, NULL, O_SIGN_BURST },
	{ NULL, 0, NULL, 0 },
};

static int parse_uint(const char *flag, const char *v, uint64_t min,
		      uint64_t max, unsigned *out)
{
	uint64_t n;

	KJ_TRY(kj_parse_u64(v, min, max, flag, &n));
	*out = (unsigned)n;
	return 0;
}

/* One option; < 0 is a usage error (already logged). */
static int take_opt(struct run_opts *o, int c, const char *v)
{
	unsigned s;

	switch (c) {
	case O_WO: o->in.work_order = v; return 0;
	case O_WO_SIG: o->in.work_order_sig = v; return 0;
	case O_PRODUCT: o->in.product = v; return 0;
	case O_PRODUCT_SIG: o->in.product_sig = v; return 0;
	case O_FIRMWARE: o->in.firmware = v; return 0;
	case O_CREDS: o->in.credentials = v; return 0;
	case O_STATE: o->in.state_dir = v; return 0;
	case O_HSM: o->in.hsm_uri = v; return 0;
	case O_PIN: o->in.pin_source = v; return 0;
	case O_TPM: o->tpm = v; return 0;
	case O_OPERATOR: o->operator_id = v; return 0;
	case O_SITES: o->sites = v; return 0;
	case O_JSON: o->json_summary = v; return 0;
	case O_LOG_FORMAT: o->log_format = v; return 0;
	case O_NO_CAC: o->commit_after_checkpoint = false; return 0;
	case O_LISTEN:
		if (o->n_listen == KJ_RUN_MAX_LISTEN) {
			kj_err("--listen: at most %d listeners", KJ_RUN_MAX_LISTEN);
			return -EINVAL;
		}
		KJ_TRY(kj_listen_parse(v, &o->listen[o->n_listen]));
		/* tls: the pre-flight loads tls.pem, its key, the site CAs */
		o->in.tls |= o->listen[o->n_listen++].is_tls;
		return 0;
	case O_MAXCONN:
		return parse_uint("--max-connections", v, 1, 65536,
				  &o->limits.max_connections);
	case O_WORKERS:
		return parse_uint("--workers", v, 1, 64, &o->limits.workers);
	case O_SIGN_RATE:
		return parse_uint("--tls-sign-rate", v, 1, KJ_SIGN_RATE_MAX,
				  &o->limits.tls_sign_rate);
	case O_SIGN_BURST:
		return parse_uint("--tls-sign-burst", v, 1, KJ_SIGN_BURST_MAX,
				  &o->limits.tls_sign_burst);
	case O_HELLO_TO:
		KJ_TRY(parse_uint("--hello-timeout", v, 1, 86400, &s));
		o->limits.hello_timeout_ms = s * 1000u;
		return 0;
	case O_PROG_TO:
		KJ_TRY(parse_uint("--program-timeout", v, 1, 86400, &s));
		o->limits.program_timeout_ms = s * 1000u;
		return 0;
	case O_CKPT:
		return kj_parse_u64(v, 10, 3600000, "--checkpoint-interval",
				    &o->checkpoint_ms);
	default:
		return -EINVAL;
	}
}

static int require(const char *v, const char *flag)
{
	if (v)
		return 0;
	kj_err("run: %s is required (see `kinject help run')", flag);
	return -EINVAL;
}

static int parse_opts(int argc, char **argv, struct run_opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->commit_after_checkpoint = true;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		if (c == '?') {
			kj_err("run: unknown or incomplete option `%s'",
			       argv[optind - 1]);
			return -EINVAL;
		}
		KJ_TRY(take_opt(o, c, optarg));
	}
	if (optind < argc) {
		kj_err("run: unexpected argument `%s'", argv[optind]);
		return -EINVAL;
	}
	if (!o->in.state_dir)
		o->in.state_dir = "./kinject-state";
	KJ_TRY(require(o->in.work_order, "--work-order"));
	KJ_TRY(require(o->in.work_order_sig, "--work-order-sig"));
	KJ_TRY(require(o->in.product, "--product"));
	KJ_TRY(require(o->in.product_sig, "--product-sig"));
	KJ_TRY(require(o->in.firmware, "--firmware"));
	KJ_TRY(require(o->in.credentials, "--credentials"));
	KJ_TRY(require(o->n_listen ? "" : NULL, "--listen"));
	KJ_TRY(require(o->in.hsm_uri, "--hsm"));
	KJ_TRY(require(o->in.pin_source, "--pin-source"));
	KJ_TRY(require(o->tpm, "--tpm"));
	return require(o->operator_id, "--operator");
}

/*
 * The keeper holds no plaintext outside the arena, but it handles the HSM
 * session and the arena's writable mapping: keep it out of core dumps and
 * ptrace by ordinary users.  The arena is charged to RLIMIT_MEMLOCK, whose
 * distribution default (8 MiB) is far below a credential batch.
 */
static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/*
 * Every signal whose default action ends the process without a core
 * (fatal faults are the arena's: kj_arena_install_signal_wipe) stops the
 * job as SIGTERM does: finish what is in flight, final checkpoint, wipe.
 * SIGHUP included: a closed terminal must not lose the final checkpoint.
 */
static const int kj_stop_signals[] = {
	SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM,
	SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGPWR, SIGSTKFLT, SIGIO,
};

static int install_stop_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_stop };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < KJ_ARRAY_SIZE(kj_stop_signals); i++)
		if (sigaction(kj_stop_signals[i], &sa, NULL) < 0)
			return -errno;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/*
 * SPEC.md §4: nothing is written before every check passed.  The TPM is
 * probed read-only (PCRs 13/14, the NV counter if defined): a TPM that is
 * not there is found before the journal, the PCRs or the counter change.
 */
static int probe_tpm(const char *tcti)
{
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32];
	struct kj_tpm *t;
	uint64_t v;
	int rc;

	if (!strcmp(tcti, "none"))
		return 0;
	rc = kj_tpm_open(tcti, &t);
	if (rc == 0) {
		rc = kj_tpm_pcr_read(t, (1u << 13) | (1u << 14), pcrs);
		if (rc == 0) {
			rc = kj_tpm_nv_read(t, &v);
			rc = rc == -ENOENT ? 0 : rc;
		}
		kj_tpm_close(t);
	}
	if (rc < 0)
		kj_err("run: the TPM at --tpm %s does not answer (is the TPM "
		       "service running? see the error above); nothing was "
		       "written", tcti);
	return rc;
}

static void close_listeners(const struct run_opts *o, int *fds)
{
	for (size_t i = 0; i < o->n_listen; i++)
		if (fds[i] >= 0)
			kj_listen_close(&o->listen[i], fds[i]);
}

/* Bind every --listen before the first write; the keeper takes them. */
static int bind_listeners(const struct run_opts *o, int *fds)
{
	for (size_t i = 0; i < o->n_listen; i++)
		fds[i] = -1;
	for (size_t i = 0; i < o->n_listen; i++) {
		fds[i] = kj_listen_open(&o->listen[i], KJ_LISTEN_BACKLOG);
		if (fds[i] < 0) {
			int rc = fds[i];

			close_listeners(o, fds);
			kj_err("run: --listen %s cannot be used; nothing was "
			       "written", o->listen[i].spec);
			return rc;
		}
	}
	return 0;
}

/* The keeper has one hook context: the tree/checkpoints and the display. */
struct run_ctx {
	struct kj_checkpointer att;
	struct kj_progress prog;
};

static int hook_record(void *ctx, uint64_t seq, const uint8_t *jcs,
		       size_t len)
{
	kj_progress_record(&((struct run_ctx *)ctx)->prog, jcs, len);
	return kj_checkpointer_record(&((struct run_ctx *)ctx)->att, seq, jcs,
				      len);
}

static int hook_committed(void *ctx, uint64_t tree_size, uint64_t *covered)
{
	int rc = kj_checkpointer_committed(&((struct run_ctx *)ctx)->att,
					   tree_size, covered);

	return rc == KJ_CHECKPOINT_LOST ? KJ_KEEPER_ATTEST_LOST : rc;
}

static void hook_progress(void *ctx, const struct kj_keeper_stats *st)
{
	kj_progress_update(&((struct run_ctx *)ctx)->prog, st);
}

static void hook_offered(void *ctx, const struct kj_record *hello)
{
	kj_progress_offered(&((struct run_ctx *)ctx)->prog, hello);
}

/* The journal knows the batch by index and certificate hash only. */
static int cred_refs(const struct kj_creds *c, struct kj_cred_ref **out)
{
	struct kj_cred_ref *r = calloc(c->count ? c->count : 1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < c->count; i++) {
		r[i].index = c->table->cred[i].index;
		memcpy(r[i].cert_sha256, c->table->cred[i].cert_sha256, 32);
	}
	*out = r;
	return 0;
}

static void job_desc(const struct run_opts *o, const struct kj_preflight *p,
		     const struct kj_cred_ref *refs, struct kj_job_desc *d)
{
	const struct kj_work_order *wo = &p->wo;

	memset(d, 0, sizeof(*d));
	d->job = wo->id;
	d->customer = wo->customer;
	d->product = wo->product;
	d->batch = wo->batch;
	d->operator_id = o->operator_id;
	memcpy(d->work_order_sha256, wo->sha256, 32);
	d->quantity = wo->quantity;
	d->fw_version = wo->fw_version_str;
	memcpy(d->fw_sha256, wo->fw_sha256, 32);
	d->serial_prefix = wo->serial_prefix;
	d->serial_start = wo->serial_start;
	memcpy(d->creds_sha256, p->creds_sha256, 32);
	d->creds = refs;
	d->n_creds = p->creds.count;
}

static void set_outcome(struct kj_run_summary *s, int end)
{
	static const struct { const char *name; int code; } map[] = {
		[KJ_KEEPER_COMPLETED] = { "completed", KJ_EXIT_OK },
		[KJ_KEEPER_MAX_FAILED] = { "max_failed exceeded",
					   KJ_EXIT_MAX_FAILED },
		[KJ_KEEPER_STOPPED] = { "stopped (resumable)", KJ_EXIT_STOPPED },
		[KJ_KEEPER_EXHAUSTED] = { "credential batch exhausted",
					  KJ_EXIT_ERROR },
		[KJ_KEEPER_TPM_LOST] = { "TPM lost (resumable)",
					 KJ_EXIT_ERROR },
		[KJ_KEEPER_HSM_LOST] = { "HSM lost (resumable)",
					 KJ_EXIT_ERROR },
	};

	if (end < 0 || end >= (int)KJ_ARRAY_SIZE(map)) {
		s->outcome = "error";
		s->exit_code = KJ_EXIT_ERROR;
		return;
	}
	s->outcome = map[end].name;
	s->exit_code = map[end].code;
}

/* The job was already ended by an earlier run: say so, change nothing. */
static int report_ended(const struct kj_job_state *st,
			struct kj_run_summary *s)
{
	bool done = st->end_result == KJ_RES_COMPLETED;

	printf("job %s already ended (%s): %llu devices ok; nothing to do\n",
	       s->job, kj_result_name(st->end_result),
	       (unsigned long long)st->ok_count);
	s->outcome = done ? "completed" : "max_failed exceeded";
	s->exit_code = done ? KJ_EXIT_OK : KJ_EXIT_MAX_FAILED;
	return 0;
}

static void fill_job(struct run_opts *o, struct kj_preflight *p,
		     struct kj_journal *j, struct run_ctx *ctx,
		     struct kj_job *job)
{
	memset(job, 0, sizeof(*job));
	job->arena = &p->arena;
	job->fw_off = kj_arena_offset(&p->arena, p->fw);
	job->fw_size = (uint32_t)p->fw_len;
	job->creds = &p->creds;
	job->wo = &p->wo;
	job->product = &p->pm;
	job->issuer = p->issuer.ca ? &p->issuer : NULL;
	job->tls = p->tls.cert ? &p->tls : NULL;
	job->journal = j;
	job->listen = o->listen;
	job->listen_fds = o->lfds;
	job->n_listen = o->n_listen;
	job->limits = o->limits;
	job->hooks.ctx = ctx;
	job->hooks.record = hook_record;
	job->hooks.committed = hook_committed;
	job->hooks.progress = hook_progress;
	job->hooks.offered = hook_offered;
	job->stop = &stop_flag;
}

static void summarise(const struct run_opts *o, struct kj_journal *j,
		      struct run_ctx *ctx, struct kj_run_summary *s,
		      const struct kj_keeper_stats *ks)
{
	struct kj_journal_stats js;
	struct kj_ckpt_stats cs;

	kj_journal_stats(j, &js);
	kj_checkpointer_stats(&ctx->att, &cs);
	s->fsyncs = js.fsyncs;
	s->checkpoints = cs.taken;
	s->quote_ms_max = cs.quote_ms_max;
	s->quote_ms_total = cs.quote_ms_total;
	s->tree_size = kj_journal_record_count(j);
	kj_summary_print(s, ks);
	if (o->json_summary && kj_summary_write_json(o->json_summary, s, ks) < 0)
		s->exit_code = KJ_EXIT_ERROR;
}

static int serve(struct run_opts *o, struct kj_preflight *p,
		 struct kj_journal *j, struct run_ctx *ctx,
		 struct kj_run_summary *s)
{
	struct kj_keeper_stats ks = { 0 };
	struct kj_job job;
	long long zeroized;
	int end, rc;

	fill_job(o, p, j, ctx, &job);
	if (o->sites)
		job.sites = &o->site_list;
	o->lfds_taken = true;
	zeroized = kj_arena_kmod_zeroize_events();
	end = kj_keeper_run(&job, &ks);
	kj_progress_finish(&ctx->prog);
	/* A final checkpoint also after an error: what is durable gets
	 * attested, and a resumed run starts from a quoted tree.  Not
	 * without the TPM: the resumed run quotes it. */
	rc = end == KJ_KEEPER_TPM_LOST ? 0 : kj_checkpointer_finish(&ctx->att);
	if (end < 0 || rc < 0)
		return end < 0 ? end : rc;
	set_outcome(s, end);
	if (end == KJ_KEEPER_STOPPED && zeroized >= 0 &&
	    kj_arena_kmod_zeroize_events() > zeroized) {
		/* kinject.ko's SIGTERM, not an operator's: say which. */
		s->outcome = "stopped: tamper response, kinject.ko zeroized "
			     "the secret arenas (resumable)";
		kj_err("run: kinject.ko zeroized every secret arena (tamper "
		       "response): issuing stopped; check the appliance "
		       "before running the same command again");
	}
	summarise(o, j, ctx, s, &ks);
	return 0;
}

static int run_job(struct run_opts *o, struct kj_preflight *p,
		   struct kj_journal *j, struct kj_run_summary *s)
{
	const char *backend = kj_arena_backend_name(p->arena.backend);
	struct kj_checkpointer_args aa = {
		.tcti = o->tpm,
		.state_dir = o->in.state_dir,
		.interval_ms = o->checkpoint_ms,
		.commit_after_checkpoint = o->commit_after_checkpoint,
		.work_order = p->wo.raw,
		.work_order_len = p->wo.raw_len,
		.product = p->pm.raw,
		.product_len = p->pm.raw_len,
	};
	struct kj_cred_ref *refs = NULL;
	struct kj_job_state st;
	struct kj_job_desc d;
	struct run_ctx ctx;
	int rc;

	s->job = p->wo.id;
	s->state_dir = o->in.state_dir;
	s->secret_memory = backend;
	KJ_TRY_GOTO(rc, kj_journal_meta_set(j, "secret_memory", backend,
					    strlen(backend)), out_nothing);
	KJ_TRY_GOTO(rc, kj_journal_commit(j), out_nothing);
	KJ_TRY_GOTO(rc, kj_checkpointer_open(&ctx.att, &aa, j), out);
	KJ_TRY_GOTO(rc, cred_refs(&p->creds, &refs), out);
	job_desc(o, p, refs, &d);
	KJ_TRY_GOTO(rc, kj_journal_job_begin(j, &d, &st), out);
	if (st.ended) {
		rc = report_ended(&st, s);
		/* The TPM lost right after job_end: its final checkpoint. */
		if (!rc)
			rc = kj_checkpointer_start(&ctx.att);
		if (!rc)
			rc = kj_checkpointer_finish(&ctx.att);
		goto out;
	}
	kj_info("job %s: %s, %llu of %llu done, secret memory: %s", p->wo.id,
		st.resumed ? "resuming" : "starting",
		(unsigned long long)st.ok_count,
		(unsigned long long)p->wo.quantity, backend);
	KJ_TRY_GOTO(rc, kj_checkpointer_start(&ctx.att), out);
	kj_journal_job_state(j, &st); /* after withdrawals (EVIDENCE.md §2) */
	kj_progress_init(&ctx.prog, o->progress, p->wo.id, p->wo.max_failed,
			 st.ok_count);
	rc = serve(o, p, j, &ctx, s);
out:
	kj_checkpointer_close(&ctx.att);
	free(refs);
	return rc;
out_nothing:
	return rc;
}

/*
 * SPEC.md §4: every check before the first write.  The inputs and the HSM
 * (pre-flight), the sites file, the TPM, every listener; only then the
 * state dir, the journal, the PCRs and the NV counter.  A refusal here
 * leaves all of them as they were.
 */
static int checks(struct run_opts *o, struct kj_preflight *p)
{
	int rc;

	KJ_TRY(kj_preflight_run(&o->in, p));
	if (o->sites) {
		rc = kj_sites_load(o->sites, &o->site_list);
		if (rc < 0)
			goto err;
	}
	KJ_TRY_GOTO(rc, probe_tpm(o->tpm), err_sites);
	KJ_TRY_GOTO(rc, bind_listeners(o, o->lfds), err_sites);
	return 0;
err_sites:
	if (o->sites)
		kj_sites_free(&o->site_list);
err:
	kj_preflight_free(p);
	return rc;
}

int cmd_run_main(int argc, char **argv)
{
	struct kj_run_summary sum = { .outcome = "error", .exit_code = 1 };
	struct kj_preflight p;
	struct kj_journal *j = NULL;
	struct run_opts o;
	int rc;

	if (parse_opts(argc, argv, &o) < 0 ||
	    kj_progress_mode_parse(o.log_format, &o.progress) < 0)
		return KJ_EXIT_USAGE;
	kj_log_set_json(o.progress == KJ_PROGRESS_JSON);
	if (install_stop_handlers() < 0) {
		kj_err("run: cannot install signal handlers");
		return KJ_EXIT_ERROR;
	}
	if (kj_ceremony_check_initialised(o.in.state_dir, "run") < 0)
		return KJ_EXIT_ERROR;
	o.in.max_connections = o.limits.max_connections;
	if (checks(&o, &p) < 0)
		return KJ_EXIT_ERROR;
	rc = kj_product_version_record(o.in.state_dir, &p.pm);
	if (rc == 0)
		rc = kj_journal_open(o.in.state_dir, 0, &j);
	if (rc == 0)
		rc = run_job(&o, &p, j, &sum);
	if (rc < 0 && j)
		kj_err("job %s stopped on the error above; what was journaled "
		       "is kept: fix the cause and run the same command again "
		       "to resume", p.wo.id);
	if (!o.lfds_taken)
		close_listeners(&o, o.lfds);
	if (o.sites)
		kj_sites_free(&o.site_list);
	kj_journal_close(j);
	kj_preflight_free(&p);
	return rc < 0 ? KJ_EXIT_ERROR : sum.exit_code;
}
