// SPDX-License-Identifier: Apache-2.0
/*
 * kinject verify: the customer's offline verifier (EVIDENCE.md §6).  No
 * TPM, no HSM: the bundle, the AK the customer trusts, and optionally the
 * golden measurements and the work order.
 */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "attest/attest.h"
#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "evidence/evidence.h"
#include "evidence/verify.h"
#include "commands.h"

const char cmd_verify_usage[] =
	"Usage: kinject verify EVIDENCE.json --ak ak.pem [--golden golden.json]\n"
	"                      [--work-order WO.json] [--ek-ca CA.pem]\n"
	"                      [--strict-clock]\n"
	"                      [--tpm-firmware-allow V[,V...]] [--pcrs N[,N...]]\n"
	"                      [--partial] [--json]\n\n"
	"Check an evidence bundle offline (EVIDENCE.md §6), trusting only the\n"
	"appliance's attestation key:\n"
	"  1 quotes        every TPM quote strict, signed by the AK, over the\n"
	"                  checkpoint's qualifying data; the AK public area\n"
	"                  hashes to ak_name, is --ak, is a restricted key\n"
	"  2 pcrs          the quoted PCR selection is the policy's; the event\n"
	"                  log replays to the quoted PCR digest\n"
	"  3 clock         nv_counter +1 per checkpoint within a TPM clock run,\n"
	"                  +1 ... +tpm_orderly_count+1 into a new one (a jump J\n"
	"                  is a warning: up to J-1 checkpoints not seen); TPM\n"
	"                  clock increases per run\n"
	"  4 consistency   each checkpoint's log extends the previous one\n"
	"  5 inclusion     each record is in its checkpoint's tree\n"
	"  6 completeness  job_seq 0, 1, 2, ... without gap; each withdrawn\n"
	"                  record after its ok record; job_end present, its\n"
	"                  counts right\n"
	"  7 work-order    (--work-order) hash, job, firmware, quantity,\n"
	"                  unique uids and serials\n"
	"  8 golden        (--golden) every PCR 13 measurement is golden\n"
	"  9 ceremony      (--ek-ca) the EK certificate chains to the TPM\n"
	"                  vendor's CA; the ceremony transcript's residency\n"
	"                  proof, quote and officer signatures hold; names\n"
	"                  the officers who set the appliance up\n\n"
	"Exit 0 only if every check passes; 1 otherwise (the failing item is\n"
	"named); 2 on usage errors.\n\n"
	"  --ak FILE                 the AK public key (ak.pem) you trust\n"
	"  --golden FILE             golden.json written by `make image'\n"
	"  --work-order FILE         the work order you signed\n"
	"  --ek-ca FILE              the TPM vendor's CA certificate(s), PEM\n"
	"  --strict-clock            a quote with clockInfo.safe = 0, or an\n"
	"                            nv_counter jump, fails\n"
	"  --partial                 a job still running: no job_end is fine\n"
	"                            (the verdict says \"job not ended\")\n"
	"  --tpm-firmware-allow LIST firmwareVersion values (decimal or 0x hex)\n"
	"  --pcrs LIST               the policy's PCRs (SHA-256 bank), default\n"
	"                            13,14 (EVIDENCE.md §4)\n"
	"  --json                    machine-readable verdict on stdout, each\n"
	"                            check with structured details\n";

enum { OPT_AK = 1, OPT_GOLDEN, OPT_WO, OPT_STRICT, OPT_FW, OPT_JSON,
       OPT_PCRS, OPT_EK_CA, OPT_PARTIAL };

static const struct option options[] = {
	{ "ak", required_argument, NULL, OPT_AK },
	{ "golden", required_argument, NULL, OPT_GOLDEN },
	{ "work-order", required_argument, NULL, OPT_WO },
	{ "strict-clock", no_argument, NULL, OPT_STRICT },
	{ "tpm-firmware-allow", required_argument, NULL, OPT_FW },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "pcrs", required_argument, NULL, OPT_PCRS },
	{ "ek-ca", required_argument, NULL, OPT_EK_CA },
	{ "partial", no_argument, NULL, OPT_PARTIAL },
	{ NULL, 0, NULL, 0 },
};

#define FW_ALLOW_MAX 32

struct args {
	const char *bundle, *ak, *golden, *wo, *ek_ca;
	bool json, strict, partial;
	uint64_t fw[FW_ALLOW_MAX];
	size_t n_fw;
	uint32_t pcr_mask;
};

static int parse_pcrs(struct args *a, const char *list)
{
	char buf[128], *save = NULL, *tok;
	uint64_t i;

	if (strlen(list) >= sizeof(buf)) {
		kj_err("--pcrs: list too long");
		return -EINVAL;
	}
	strcpy(buf, list);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (kj_parse_u64(tok, 0, KJ_TPM_PCR_COUNT - 1, "--pcrs", &i) < 0)
			return -EINVAL;
		a->pcr_mask |= KJ_PCR_BIT(i);
	}
	if (!a->pcr_mask) {
		kj_err("--pcrs: no PCR given");
		return -EINVAL;
	}
	return 0;
}

static int parse_fw(struct args *a, const char *list)
{
	char buf[1024], *save = NULL, *tok;

	if (strlen(list) >= sizeof(buf)) {
		kj_err("--tpm-firmware-allow: list too long");
		return -EINVAL;
	}
	strcpy(buf, list);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *end;

		if (a->n_fw == FW_ALLOW_MAX) {
			kj_err("--tpm-firmware-allow: more than %d values",
			       FW_ALLOW_MAX);
			return -EINVAL;
		}
		if (!strncmp(tok, "0x", 2)) {
			errno = 0;
			a->fw[a->n_fw] = strtoull(tok + 2, &end, 16);
			if (errno || !isxdigit((unsigned char)tok[2]) || *end) {
				kj_err("--tpm-firmware-allow: `%s' is not a hex value",
				       tok);
				return -EINVAL;
			}
		} else if (kj_parse_u64(tok, 0, UINT64_MAX,
					"--tpm-firmware-allow",
					&a->fw[a->n_fw]) < 0) {
			return -EINVAL;
		}
		a->n_fw++;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case OPT_AK: a->ak = optarg; break;
		case OPT_GOLDEN: a->golden = optarg; break;
		case OPT_WO: a->wo = optarg; break;
		case OPT_EK_CA: a->ek_ca = optarg; break;
		case OPT_STRICT: a->strict = true; break;
		case OPT_JSON: a->json = true; break;
		case OPT_PARTIAL: a->partial = true; break;
		case OPT_FW: KJ_TRY(parse_fw(a, optarg)); break;
		case OPT_PCRS: KJ_TRY(parse_pcrs(a, optarg)); break;
		default: return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		kj_err("verify: expected one evidence file, got %d arguments",
		       argc - optind);
		return -EINVAL;
	}
	a->bundle = argv[optind];
	if (!a->ak) {
		kj_err("verify: --ak is required (the AK public key you trust)");
		return -EINVAL;
	}
	return 0;
}

static bool all_pass(const struct kj_verify_report *rep)
{
	for (int c = 0; c < KJ_VC_COUNT_; c++)
		if (rep->check[c].status == KJ_VS_FAIL)
			return false;
	return true;
}

static void print_text(const struct args *a, const struct kj_evidence *ev,
		       const struct kj_verify_report *r)
{
	printf("kinject verify %s: job %s, %" PRIu64 " records, %" PRIu64 " checkpoints\n",
	       a->bundle, r->job[0] ? r->job : "?", r->n_records,
	       r->n_checkpoints);
	/* Shown, not checked: what the appliance says about itself. */
	printf("  appliance: secret memory %s, EK certificate %s, transport certificate %s\n",
	       ev->secret_memory ? ev->secret_memory : "not recorded",
	       ev->ek_cert_pem ? "included" : "none",
	       ev->transport_cert_pem ? "included" : "none");
	for (int c = 0; c < KJ_VC_COUNT_; c++)
		printf("  [%-7s] %d %-12s %s\n",
		       kj_vstatus_name(r->check[c].status), c + 1,
		       kj_vcheck_name((enum kj_vcheck)c), r->check[c].detail);
	if (all_pass(r) && !r->ended)
		printf("verdict: PASS, job not ended: the bundle shows %" PRIu64 " devices (%" PRIu64 " ok)\n",
		       r->n_devices, r->n_ok);
	else
		printf("verdict: %s\n", all_pass(r) ? "PASS" : "FAIL");
}

static int print_json(const struct kj_verify_report *r)
{
	json_t *checks = json_array(), *doc;
	char *s;

	for (int c = 0; checks && c < KJ_VC_COUNT_; c++)
		json_array_append_new(checks, json_pack("{s:i,s:s,s:s,s:s,s:O}",
			"check", c + 1, "name",
			kj_vcheck_name((enum kj_vcheck)c), "status",
			r->check[c].status == KJ_VS_FAIL ? "fail" :
			kj_vstatus_name(r->check[c].status),
			"detail", r->check[c].detail, "details",
			r->check[c].json ? r->check[c].json : json_null()));
	doc = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:b,s:o}", "verdict",
			all_pass(r) ? "pass" : "fail", "job", r->job,
			"records", (json_int_t)r->n_records, "checkpoints",
			(json_int_t)r->n_checkpoints, "ok",
			(json_int_t)r->n_ok, "devices",
			(json_int_t)r->n_devices, "withdrawn",
			(json_int_t)r->n_withdrawn, "job_ended", r->ended,
			"checks", checks);
	s = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
	json_decref(doc);
	if (!s)
		return -ENOMEM;
	puts(s);
	free(s);
	return 0;
}

int cmd_verify_main(int argc, char **argv)
{
	struct kj_verify_opts o = { 0 };
	struct kj_verify_report rep = { 0 };
	struct kj_work_order wo;
	struct kj_evidence ev;
	struct args a = { 0 };
	uint8_t *golden = NULL;
	bool have_wo = false;
	int rc, ret = KJ_EXIT_ERROR;

	if (parse_args(argc, argv, &a) < 0)
		return KJ_EXIT_USAGE;
	if (kj_evidence_load(a.bundle, &ev) < 0)
		return KJ_EXIT_ERROR;
	o.ak = kj_pubkey_read_pem(a.ak);
	if (!o.ak)
		goto out;
	if (a.wo) {
		if (kj_work_order_load(a.wo, &wo) < 0)
			goto out;
		have_wo = true;
		o.wo = &wo;
	}
	if (a.golden) {
		if (kj_read_file(a.golden, 1u << 20, &golden, &o.golden_len) < 0)
			goto out;
		o.golden = golden;
		o.golden_name = a.golden;
	}
	o.strict_clock = a.strict;
	o.fw_allow = a.fw;
	o.n_fw_allow = a.n_fw;
	o.pcr_mask = a.pcr_mask;
	o.ek_ca = a.ek_ca;
	o.partial = a.partial;
	rc = kj_verify(&ev, &o, &rep);
	if (rc < 0 && rc != -EBADMSG)
		goto out;
	if (a.json ? print_json(&rep) < 0 : (print_text(&a, &ev, &rep), 0))
		goto out;
	ret = rc == 0 ? KJ_EXIT_OK : KJ_EXIT_ERROR;
out:
	kj_verify_report_free(&rep);
	EVP_PKEY_free(o.ak);
	if (have_wo)
		kj_work_order_free(&wo);
	free(golden);
	kj_evidence_free(&ev);
	return ret;
}
