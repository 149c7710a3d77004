// SPDX-License-Identifier: Apache-2.0
/* kinject sim: simulated programming sockets (SPEC.md §4, sim.h). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "sim/sim.h"
#include "commands.h"

const char cmd_sim_usage[] =
	"Usage: kinject sim --connect unix:PATH|tcp:HOST:PORT --hwrev REV\n"
	"                   [--sockets N] [--devices M] [options]\n\n"
	"Simulated programming sockets (PROTOCOL.md) for demos, tests and\n"
	"benchmarks.  N connections in W event loops, each a site: HELLO with a\n"
	"unique uid, OFFER + DATA, readback digest over the bytes received,\n"
	"READBACK, COMMIT or ABORT, next device.  Stops after M COMMITs (or when\n"
	"every socket ended), prints devices/s and HELLO->COMMIT latency.\n\n"
	"  --connect ADDR         unix:PATH, tcp:HOST:PORT (loopback only), or\n"
	"                         tls:HOST:PORT with --cert, --key, --ca\n"
	"  --cert PEM --key PEM   tls: the site's certificate (its CN is the\n"
	"                         site id) and key\n"
	"  --ca PEM               tls: the appliance's tls.pem (pinned)\n"
	"  --hwrev REV            hardware revision sent in HELLO\n"
	"  --sockets N            concurrent sockets (default 1, max 100000)\n"
	"  --workers W            W event loops, one thread each, sharing the\n"
	"                         sockets and --devices (default 1, max 64, at\n"
	"                         most N): a load generator on W cores\n"
	"  --devices M            COMMITs to reach (default 1; 0 = until SIGINT)\n"
	"  --site ID              site_id in HELLO (default \"sim\")\n"
	"  --socket-base N        HELLO socket numbers start at N (default 0)\n"
	"  --uid-seed N           first 8 bytes of every uid (default random,\n"
	"                         so uids are unique across runs)\n"
	"  --seed N               fault draws (default random)\n"
	"  --timeout S            no answer from the appliance for S s is an\n"
	"                         error (default 60)\n"
	"  --connect-wait S       retry refused connects for S s at start\n"
	"                         (default 10)\n"
	"  --reconnect            when the appliance closes or resets a\n"
	"                         connection mid-device (a crash, a restart),\n"
	"                         count it and connect again (retrying for\n"
	"                         --connect-wait) instead of ending the socket\n"
	"  --json-summary FILE    the summary as JSON\n"
	"  --device-log FILE      one JSON line per device (uid, outcome,\n"
	"                         attempt, serial, leaf_index, digest)\n\n"
	"Fault knobs (rates are per device, 0..1, their sum below 1):\n"
	"  --bad-readback-rate R  send a wrong digest: expect ABORT READBACK\n"
	"  --disconnect-rate R    drop the connection mid-stream\n"
	"  --wrong-hwrev-rate R   HELLO with a wrong hwrev: expect LOCKED_OUT\n"
	"  --duplicate-rate R     reuse a committed uid: expect DUPLICATE\n"
	"  --site-abort-rate R    send ABORT INTERNAL instead of READBACK\n"
	"  --counterfeit-rate R   a device whose PROOF must fail (a rogue\n"
	"                         CA's certificate, or the wrong key's\n"
	"                         signature): expect COUNTERFEIT\n"
	"  --program-delay-ms MS  simulated programming time per device\n"
	"  --slow-read-ms MS      read 4 KiB per MS milliseconds ...\n"
	"  --slow-sockets K       ... on the first K sockets (default all)\n"
	"  --expect CODE[,CODE]   ABORT codes (names: protocol, locked_out,\n"
	"                         quota, duplicate, readback, timeout,\n"
	"                         internal, stopped, unauthorized,\n"
	"                         counterfeit) that count as intended\n\n"
	"The device's own key (PROTOCOL.md):\n"
	"  --device-keys          a fresh P-256 key per device, sent as HELLO\n"
	"                         device_pubkey\n"
	"  --device-ca CERT.pem --device-ca-key KEY.pem\n"
	"                         factory CA: each device gets a certificate\n"
	"                         from it and answers CHALLENGE with PROOF\n"
	"  --cred-mode inject     open each cred_blob with the device key,\n"
	"                         check the certificate and key inside\n"
	"  --cred-mode issue --issuing-ca CA.pem\n"
	"                         each cred_blob must be a certificate by CA\n"
	"                         for the device's key (in the device log)\n\n"
	"Hostile modes (one of them, on the last K sockets, default all):\n"
	"  --garbage              random bytes instead of frames\n"
	"  --huge-length          a frame header announcing 4 GiB\n"
	"  --slow-loris           dribble HELLO one byte per --slow-loris-ms\n"
	"                         (default 1000)\n"
	"  --vanish               drop every device mid-stream (RST on TCP)\n"
	"  --half-open            HELLO, then never read or write again\n"
	"  --hostile-sockets K\n\n"
	"Exit status: 0 every device ended as the knobs intended and M were\n"
	"COMMITted; 3 the appliance ended the job (QUOTA/STOPPED) or a signal\n"
	"came first, nothing unexpected; 1 an unexpected outcome or error; 2\n"
	"usage.\n";

enum {
	OPT_CONNECT = 256, OPT_HWREV, OPT_SOCKETS, OPT_DEVICES, OPT_SITE,
	OPT_SOCKET_BASE, OPT_UID_SEED, OPT_SEED, OPT_TIMEOUT,
	OPT_CONNECT_WAIT, OPT_JSON, OPT_DEVLOG, OPT_BAD_READBACK,
	OPT_DISCONNECT, OPT_WRONG_HWREV, OPT_DUPLICATE, OPT_SITE_ABORT,
	OPT_PROGRAM_DELAY, OPT_SLOW_READ, OPT_SLOW_SOCKETS, OPT_EXPECT,
	OPT_GARBAGE, OPT_HUGE, OPT_LORIS, OPT_VANISH, OPT_HALF_OPEN,
	OPT_HOSTILE_SOCKETS, OPT_LORIS_MS, OPT_RECONNECT, OPT_DEVICE_KEYS,
	OPT_DEVICE_CA, OPT_DEVICE_CA_KEY, OPT_COUNTERFEIT, OPT_CRED_MODE,
	OPT_ISSUING_CA,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_CA,
	OPT_WORKERS,
};

static const struct option sim_options[] = {
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "hwrev", required_argument, NULL, OPT_HWREV },
	{ "sockets", required_argument, NULL, OPT_SOCKETS },
	{ "devices", required_argument, NULL, OPT_DEVICES },
	{ "site", required_argument, NULL, OPT_SITE },
	{ "socket-base", required_argument, NULL, OPT_SOCKET_BASE },
	{ "uid-seed", required_argument, NULL, OPT_UID_SEED },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "connect-wait", required_argument, NULL, OPT_CONNECT_WAIT },
	{ "json-summary", required_argument, NULL, OPT_JSON },
	{ "device-log", required_argument, NULL, OPT_DEVLOG },
	{ "bad-readback-rate", required_argument, NULL, OPT_BAD_READBACK },
	{ "disconnect-rate", required_argument, NULL, OPT_DISCONNECT },
	{ "wrong-hwrev-rate", required_argument, NULL, OPT_WRONG_HWREV },
	{ "duplicate-rate", required_argument, NULL, OPT_DUPLICATE },
	{ "site-abort-rate", required_argument, NULL, OPT_SITE_ABORT },
	{ "program-delay-ms", required_argument, NULL, OPT_PROGRAM_DELAY },
	{ "slow-read-ms", required_argument, NULL, OPT_SLOW_READ },
	{ "slow-sockets", required_argument, NULL, OPT_SLOW_SOCKETS },
	{ "expect", required_argument, NULL, OPT_EXPECT },
	{ "garbage", no_argument, NULL, OPT_GARBAGE },
	{ "huge-length", no_argument, NULL, OPT_HUGE },
	{ "slow-loris", no_argument, NULL, OPT_LORIS },
	{ "vanish", no_argument, NULL, OPT_VANISH },
	{ "half-open", no_argument, NULL, OPT_HALF_OPEN },
	{ "hostile-sockets", required_argument, NULL, OPT_HOSTILE_SOCKETS },
	{ "slow-loris-ms", required_argument, NULL, OPT_LORIS_MS },
	{ "reconnect", no_argument, NULL, OPT_RECONNECT },
	{ "device-keys", no_argument, NULL, OPT_DEVICE_KEYS },
	{ "device-ca", required_argument, NULL, OPT_DEVICE_CA },
	{ "device-ca-key", required_argument, NULL, OPT_DEVICE_CA_KEY },
	{ "counterfeit-rate", required_argument, NULL, OPT_COUNTERFEIT },
	{ "cred-mode", required_argument, NULL, OPT_CRED_MODE },
	{ "issuing-ca", required_argument, NULL, OPT_ISSUING_CA },
	{ "cert", required_argument, NULL, OPT_TLS_CERT },
	{ "key", required_argument, NULL, OPT_TLS_KEY },
	{ "ca", required_argument, NULL, OPT_TLS_CA },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ NULL, 0, NULL, 0 },
};

static const char *const hostile_names[] = {
	[KJ_SIM_HOSTILE_NONE] = "none",	  [KJ_SIM_GARBAGE] = "garbage",
	[KJ_SIM_HUGE_LENGTH] = "huge-length", [KJ_SIM_SLOW_LORIS] = "slow-loris",
	[KJ_SIM_VANISH] = "vanish",	  [KJ_SIM_HALF_OPEN] = "half-open",
};

struct sim_args {
	struct kj_sim_opts o;
	const char *json, *devlog;
	bool slow_sockets_set, hostile_sockets_set;
	bool issue; /* --cred-mode issue */
};

static int parse_rate(const char *flag, const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1) {
		kj_err("--%s: `%s' is not a rate 0..1", flag, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_uint(const char *flag, const char *s, uint64_t max,
		      unsigned *out)
{
	char what[64];
	uint64_t v;

	snprintf(what, sizeof(what), "--%s", flag);
	KJ_TRY(kj_parse_u64(s, 0, max, what, &v));
	*out = (unsigned)v;
	return 0;
}

static int parse_expect(const char *s, uint32_t *mask)
{
	char buf[256], *save = NULL, *tok;

	if (strlen(s) >= sizeof(buf)) {
		kj_err("--expect: `%s' is too long", s);
		return -EINVAL;
	}
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int code = kj_abort_code_from_name(tok);

		if (code < 0) {
			kj_err("--expect: `%s' is not an ABORT code name "
			       "(protocol, locked_out, quota, duplicate, "
			       "readback, timeout, internal, stopped, "
			       "unauthorized, counterfeit)", tok);
			return -EINVAL;
		}
		*mask |= 1u << code;
	}
	return 0;
}

static int set_hostile(struct sim_args *a, enum kj_sim_hostile h)
{
	if (a->o.hostile && a->o.hostile != h) {
		kj_err("--%s: only one hostile mode at a time (already --%s)",
		       hostile_names[h], hostile_names[a->o.hostile]);
		return -EINVAL;
	}
	a->o.hostile = h;
	return 0;
}

static int parse_opt(struct sim_args *a, int opt, const char *arg)
{
	struct kj_sim_opts *o = &a->o;
	const char *name = "";
	uint64_t v;

	for (const struct option *p = sim_options; p->name; p++)
		if (p->val == opt)
			name = p->name;
	switch (opt) {
	case OPT_CONNECT:
		return kj_sim_parse_addr(arg, o);
	case OPT_HWREV:
		o->hwrev = arg;
		return 0;
	case OPT_SITE:
		o->site = arg;
		return 0;
	case OPT_SOCKETS:
		return parse_uint(name, arg, 100000, &o->sockets);
	case OPT_WORKERS:
		KJ_TRY(kj_parse_u64(arg, 1, KJ_SIM_WORKERS_MAX, "--workers",
				    &v));
		o->workers = (unsigned)v;
		return 0;
	case OPT_DEVICES:
		return kj_parse_u64(arg, 0, 1000000000, "--devices",
				    &o->devices);
	case OPT_SOCKET_BASE:
		return parse_uint(name, arg, 65535, &o->socket_base);
	case OPT_UID_SEED:
		return kj_parse_u64(arg, 0, UINT64_MAX, "--uid-seed",
				    &o->uid_seed);
	case OPT_SEED:
		return kj_parse_u64(arg, 0, UINT64_MAX, "--seed", &o->rng_seed);
	case OPT_TIMEOUT:
		KJ_TRY(kj_parse_u64(arg, 1, 86400, "--timeout", &v));
		o->timeout_s = (unsigned)v;
		return 0;
	case OPT_CONNECT_WAIT:
		return parse_uint(name, arg, 3600, &o->connect_wait_s);
	case OPT_JSON:
		a->json = arg;
		return 0;
	case OPT_DEVLOG:
		a->devlog = arg;
		return 0;
	case OPT_BAD_READBACK:
		return parse_rate(name, arg, &o->bad_readback_rate);
	case OPT_DISCONNECT:
		return parse_rate(name, arg, &o->disconnect_rate);
	case OPT_WRONG_HWREV:
		return parse_rate(name, arg, &o->wrong_hwrev_rate);
	case OPT_DUPLICATE:
		return parse_rate(name, arg, &o->duplicate_rate);
	case OPT_SITE_ABORT:
		return parse_rate(name, arg, &o->site_abort_rate);
	case OPT_PROGRAM_DELAY:
		return parse_uint(name, arg, 3600000, &o->program_delay_ms);
	case OPT_SLOW_READ:
		return parse_uint(name, arg, 60000, &o->slow_read_ms);
	case OPT_SLOW_SOCKETS:
		a->slow_sockets_set = true;
		return parse_uint(name, arg, 100000, &o->slow_sockets);
	case OPT_EXPECT:
		return parse_expect(arg, &o->expect_mask);
	case OPT_GARBAGE:
		return set_hostile(a, KJ_SIM_GARBAGE);
	case OPT_HUGE:
		return set_hostile(a, KJ_SIM_HUGE_LENGTH);
	case OPT_LORIS:
		return set_hostile(a, KJ_SIM_SLOW_LORIS);
	case OPT_VANISH:
		return set_hostile(a, KJ_SIM_VANISH);
	case OPT_HALF_OPEN:
		return set_hostile(a, KJ_SIM_HALF_OPEN);
	case OPT_HOSTILE_SOCKETS:
		a->hostile_sockets_set = true;
		return parse_uint(name, arg, 100000, &o->hostile_sockets);
	case OPT_LORIS_MS:
		return parse_uint(name, arg, 600000, &o->slow_loris_ms);
	case OPT_RECONNECT:
		o->reconnect = true;
		return 0;
	case OPT_DEVICE_KEYS:
		o->device_keys = true;
		return 0;
	case OPT_DEVICE_CA:
		o->device_ca_cert = arg;
		return 0;
	case OPT_DEVICE_CA_KEY:
		o->device_ca_key = arg;
		return 0;
	case OPT_COUNTERFEIT:
		return parse_rate(name, arg, &o->counterfeit_rate);
	case OPT_CRED_MODE:
		if (!strcmp(arg, "inject")) {
			o->check_inject = true;
			return 0;
		}
		if (!strcmp(arg, "plain") || !strcmp(arg, "issue")) {
			a->issue = !strcmp(arg, "issue");
			return 0;
		}
		kj_err("--cred-mode: `%s' is not plain, inject or issue", arg);
		return -EINVAL;
	case OPT_ISSUING_CA:
		o->issuing_ca = arg;
		return 0;
	case OPT_TLS_CERT:
		o->tls_cert = arg;
		return 0;
	case OPT_TLS_KEY:
		o->tls_key = arg;
		return 0;
	case OPT_TLS_CA:
		o->tls_ca = arg;
		return 0;
	default:
		return -EINVAL;
	}
}

static int check_args(struct sim_args *a)
{
	struct kj_sim_opts *o = &a->o;
	double sum = o->bad_readback_rate + o->disconnect_rate +
		     o->wrong_hwrev_rate + o->duplicate_rate +
		     o->site_abort_rate + o->counterfeit_rate;

	if (!o->connect || !o->hwrev) {
		kj_err("sim: --connect and --hwrev are required");
		return -EINVAL;
	}
	if (!o->sockets) {
		kj_err("--sockets: must be at least 1");
		return -EINVAL;
	}
	if (o->workers > o->sockets) {
		kj_err("--workers %u: more than --sockets %u (each worker "
		       "drives at least one socket)", o->workers, o->sockets);
		return -EINVAL;
	}
	if (sum >= 1.0) {
		kj_err("fault rates add up to %g; they must stay below 1 so "
		       "devices can complete", sum);
		return -EINVAL;
	}
	if (a->issue != !!o->issuing_ca) {
		kj_err("--cred-mode issue and --issuing-ca go together");
		return -EINVAL;
	}
	if (o->tls != (o->tls_cert && o->tls_key && o->tls_ca) ||
	    (!o->tls && (o->tls_cert || o->tls_key || o->tls_ca))) {
		kj_err("--connect tls: and --cert, --key, --ca go together");
		return -EINVAL;
	}
	if (o->tls && o->slow_read_ms) {
		kj_err("--slow-read-ms: not with tls: (a TLS record read in "
		       "part would wait where epoll cannot see it)");
		return -EINVAL;
	}
	if (o->counterfeit_rate > 0 && !o->device_ca_cert) {
		kj_err("--counterfeit-rate: needs --device-ca (a counterfeit "
		       "is told apart from the honest devices of that CA)");
		return -EINVAL;
	}
	if (!a->slow_sockets_set)
		o->slow_sockets = o->slow_read_ms ? o->sockets : 0;
	if (o->slow_sockets > o->sockets || o->hostile_sockets > o->sockets) {
		kj_err("--slow-sockets/--hostile-sockets: more than --sockets "
		       "%u", o->sockets);
		return -EINVAL;
	}
	if (a->hostile_sockets_set && !o->hostile) {
		kj_err("--hostile-sockets: needs a hostile mode (--garbage, "
		       "--huge-length, --slow-loris, --vanish, --half-open)");
		return -EINVAL;
	}
	if (o->hostile && !a->hostile_sockets_set)
		o->hostile_sockets = o->sockets;
	if ((uint64_t)o->socket_base + o->sockets > 65536) {
		kj_err("--socket-base %u + --sockets %u exceeds the u16 socket "
		       "number of HELLO", o->socket_base, o->sockets);
		return -EINVAL;
	}
	return 0;
}

static int sim_parse(int argc, char **argv, struct sim_args *a)
{
	int opt;

	memset(a, 0, sizeof(*a));
	a->o.sockets = 1;
	a->o.workers = 1;
	a->o.devices = 1;
	a->o.site = "sim";
	a->o.timeout_s = 60;
	a->o.connect_wait_s = 10;
	a->o.slow_loris_ms = 1000;
	if (getrandom(&a->o.uid_seed, sizeof(a->o.uid_seed), 0) < 0 ||
	    getrandom(&a->o.rng_seed, sizeof(a->o.rng_seed), 0) < 0) {
		kj_err("sim: getrandom: %s", strerror(errno));
		return -EIO;
	}
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", sim_options, NULL)) != -1) {
		if (opt == '?') {
			kj_err("sim: unknown option or missing value `%s'; "
			       "see `kinject sim --help'", argv[optind - 1]);
			return -EINVAL;
		}
		KJ_TRY(parse_opt(a, opt, optarg));
	}
	if (optind < argc) {
		kj_err("sim: unexpected argument `%s'", argv[optind]);
		return -EINVAL;
	}
	return check_args(a);
}

static int sim_exit_code(const struct sim_args *a,
			 const struct kj_sim_result *r)
{
	if (r->unexpected || r->hostile_unexpected || r->err_connect ||
	    r->err_tls ||
	    (r->err_closed && !a->o.reconnect) || r->err_appliance ||
	    r->err_stalled || r->sockets_failed)
		return KJ_EXIT_ERROR;
	if (!a->o.devices)
		return KJ_EXIT_OK; /* ran until a signal, as asked */
	if (a->o.hostile && a->o.hostile_sockets == a->o.sockets)
		return r->hostile_intended >= a->o.devices ? KJ_EXIT_OK
							   : KJ_EXIT_STOPPED;
	return r->committed >= a->o.devices ? KJ_EXIT_OK : KJ_EXIT_STOPPED;
}

/*
 * Latency after each socket's first device: the line in operation, apart
 * from the start, when every socket's first HELLO goes out at once while
 * the appliance is still accepting them (docs/SIM.md "Latency").
 */
static void steady_json(FILE *f, struct kj_sim_result *r)
{
	size_t n;
	uint32_t p50 = kj_sim_percentile_steady(r, 50, &n),
		 p99 = kj_sim_percentile_steady(r, 99, &n),
		 max = kj_sim_percentile_steady(r, 100, &n);

	fprintf(f, "\"latency_steady_ms\":{\"p50\":%.3f,\"p99\":%.3f,"
		   "\"max\":%.3f,\"devices\":%zu},", p50 / 1e3, p99 / 1e3,
		max / 1e3, n);
}

/* One summary, written as JSON or as the human lines. */
static void write_json(FILE *f, const struct sim_args *a,
		       struct kj_sim_result *r, int exit_code)
{
	const struct kj_sim_opts *o = &a->o;
	double rate = r->devices_per_s;

	fprintf(f, "{\"kinject_sim\":1,\"connect\":\"%s\",\"sockets\":%u,"
		   "\"devices\":%llu,\"seconds\":%.3f,\"busy_seconds\":%.3f,"
		   "\"committed\":%llu,"
		   "\"attempted\":%llu,\"intended\":%llu,\"unexpected\":%llu,"
		   "\"devices_per_s\":%.1f,\"steady_devices_per_s\":%.1f,"
		   "\"bytes_received\":%llu,"
		   "\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},",
		o->connect, o->sockets, (unsigned long long)o->devices,
		r->seconds, r->busy_seconds, (unsigned long long)r->committed,
		(unsigned long long)r->attempted,
		(unsigned long long)r->intended,
		(unsigned long long)r->unexpected, rate,
		r->steady_devices_per_s, (unsigned long long)r->bytes_received,
		kj_sim_percentile(r, 50) / 1e3, kj_sim_percentile(r, 99) / 1e3,
		kj_sim_percentile(r, 100) / 1e3);
	steady_json(f, r);
	fputs("\"aborts_received\":{", f);
	for (unsigned c = KJ_ABORT_MIN; c <= KJ_ABORT_MAX; c++)
		fprintf(f, "%s\"%s\":%llu", c > KJ_ABORT_MIN ? "," : "",
			kj_abort_name(c), (unsigned long long)r->aborts[c]);
	fprintf(f, "},\"faults\":{\"bad_readback\":%llu,\"disconnect\":%llu,"
		   "\"wrong_hwrev\":%llu,\"duplicate\":%llu,"
		   "\"site_abort\":%llu,\"counterfeit\":%llu},"
		   "\"proofs\":%llu,\"creds_opened\":%llu,",
		(unsigned long long)r->bad_readbacks,
		(unsigned long long)r->disconnects,
		(unsigned long long)r->wrong_hwrevs,
		(unsigned long long)r->duplicates,
		(unsigned long long)r->site_aborts,
		(unsigned long long)r->counterfeits,
		(unsigned long long)r->proofs,
		(unsigned long long)r->creds_opened);
	fprintf(f, "\"hostile\":{\"mode\":\"%s\",\"sockets\":%u,"
		   "\"attempts\":%llu,\"intended\":%llu,\"unexpected\":%llu},",
		hostile_names[o->hostile], o->hostile ? o->hostile_sockets : 0,
		(unsigned long long)r->hostile_attempts,
		(unsigned long long)r->hostile_intended,
		(unsigned long long)r->hostile_unexpected);
	fprintf(f, "\"errors\":{\"connect\":%llu,\"tls\":%llu,"
		   "\"closed\":%llu,\"appliance\":%llu,\"stalled\":%llu},"
		   "\"sockets_ended\":%u,\"sockets_failed\":%u,"
		   "\"interrupted\":%s,\"uid_seed\":%llu,\"seed\":%llu,"
		   "\"exit\":%d}\n",
		(unsigned long long)r->err_connect,
		(unsigned long long)r->err_tls,
		(unsigned long long)r->err_closed,
		(unsigned long long)r->err_appliance,
		(unsigned long long)r->err_stalled, r->sockets_ended,
		r->sockets_failed, r->interrupted ? "true" : "false",
		(unsigned long long)o->uid_seed,
		(unsigned long long)o->rng_seed, exit_code);
}

static void print_human(const struct sim_args *a, struct kj_sim_result *r)
{
	const struct kj_sim_opts *o = &a->o;
	bool any = false;

	printf("sim: %llu devices committed in %.2f s: %.0f devices/s over "
	       "%u sockets (%s)\n", (unsigned long long)r->committed,
	       r->busy_seconds, r->devices_per_s, o->sockets, o->connect);
	if (r->seconds - r->busy_seconds >= 0.5)
		printf("sim: ran %.2f s in all (%.2f s with no device offered: "
		       "connecting, QUOTA, the job's end)\n",
		       r->seconds, r->seconds - r->busy_seconds);
	if (r->steady_devices_per_s > 0)
		printf("sim: %.0f devices/s without the first and the last "
		       "%u COMMITs (the line's start and end)\n",
		       r->steady_devices_per_s, o->sockets);
	printf("sim: latency HELLO->COMMIT p50 %.2f ms, p99 %.2f ms, "
	       "max %.2f ms\n", kj_sim_percentile(r, 50) / 1e3,
	       kj_sim_percentile(r, 99) / 1e3, kj_sim_percentile(r, 100) / 1e3);
	if (r->n_latency > o->sockets) {
		size_t n;
		uint32_t p50 = kj_sim_percentile_steady(r, 50, &n),
			 p99 = kj_sim_percentile_steady(r, 99, &n);

		printf("sim: after each socket's first device (%zu): p50 "
		       "%.2f ms, p99 %.2f ms\n", n, p50 / 1e3, p99 / 1e3);
	}
	printf("sim: %llu attempted, %llu ended as intended, %llu "
	       "unexpectedly\n", (unsigned long long)r->attempted,
	       (unsigned long long)r->intended,
	       (unsigned long long)r->unexpected);
	printf("sim: aborts received:");
	for (unsigned c = KJ_ABORT_MIN; c <= KJ_ABORT_MAX; c++) {
		if (!r->aborts[c])
			continue;
		printf(" %s %llu", kj_abort_name(c),
		       (unsigned long long)r->aborts[c]);
		any = true;
	}
	printf("%s\n", any ? "" : " none");
	if (r->bad_readbacks + r->disconnects + r->wrong_hwrevs +
	    r->duplicates + r->site_aborts)
		printf("sim: faults injected: bad_readback %llu, disconnect "
		       "%llu, wrong_hwrev %llu, duplicate %llu, site_abort "
		       "%llu\n", (unsigned long long)r->bad_readbacks,
		       (unsigned long long)r->disconnects,
		       (unsigned long long)r->wrong_hwrevs,
		       (unsigned long long)r->duplicates,
		       (unsigned long long)r->site_aborts);
	if (r->proofs || r->counterfeits || r->creds_opened)
		printf("sim: device keys: %llu PROOFs sent (%llu of them "
		       "counterfeit), %llu cred_blobs opened or issued "
		       "certificates checked\n", (unsigned long long)r->proofs,
		       (unsigned long long)r->counterfeits,
		       (unsigned long long)r->creds_opened);
	if (o->hostile)
		printf("sim: hostile (%s, %u sockets): %llu attempts, %llu "
		       "answered as intended, %llu not\n",
		       hostile_names[o->hostile], o->hostile_sockets,
		       (unsigned long long)r->hostile_attempts,
		       (unsigned long long)r->hostile_intended,
		       (unsigned long long)r->hostile_unexpected);
	if (r->err_connect + r->err_tls + r->err_closed + r->err_appliance +
	    r->err_stalled)
		printf("sim: errors: connect %llu, TLS handshake %llu, closed "
		       "mid-device %llu, appliance protocol %llu, stalled "
		       "%llu\n", (unsigned long long)r->err_connect,
		       (unsigned long long)r->err_tls,
		       (unsigned long long)r->err_closed,
		       (unsigned long long)r->err_appliance,
		       (unsigned long long)r->err_stalled);
	if (r->sockets_ended)
		printf("sim: %u sockets ended by the appliance (STOPPED, "
		       "UNAUTHORIZED, or closed after QUOTA)\n",
		       r->sockets_ended);
}

static int write_summary(const char *path, const struct sim_args *a,
			 struct kj_sim_result *r, int exit_code)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int rc;

	if (!f) {
		kj_err("--json-summary: %s", strerror(errno));
		return -ENOMEM;
	}
	write_json(f, a, r, exit_code);
	fclose(f);
	rc = kj_write_file_atomic(path, buf, len, 0644);
	free(buf);
	return rc;
}

int cmd_sim_main(int argc, char **argv)
{
	struct kj_sim_result r;
	struct sim_args a;
	int rc, code;

	if (sim_parse(argc, argv, &a) < 0)
		return KJ_EXIT_USAGE;
	if (a.devlog) {
		a.o.device_log = fopen(a.devlog, "we");
		if (!a.o.device_log) {
			kj_err("--device-log: %s: %s", a.devlog,
			       strerror(errno));
			return KJ_EXIT_ERROR;
		}
	}
	rc = kj_sim_run(&a.o, &r);
	if (a.o.device_log && fclose(a.o.device_log)) {
		kj_err("--device-log: %s: %s", a.devlog, strerror(errno));
		rc = rc < 0 ? rc : -EIO;
	}
	if (rc < 0) {
		kj_sim_result_free(&r);
		return KJ_EXIT_ERROR;
	}
	code = sim_exit_code(&a, &r);
	print_human(&a, &r);
	if (a.json && write_summary(a.json, &a, &r, code) < 0)
		code = KJ_EXIT_ERROR;
	kj_sim_result_free(&r);
	return code;
}
