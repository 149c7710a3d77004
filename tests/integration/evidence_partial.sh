#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# EVIDENCE.md §6.6: a bundle cut short (its last checkpoints, their records
# and job_end removed) fails, since it could hide the last devices; with
# --partial (a job still running) it passes and says "job not ended" with
# the device count; --json says so in structured details.  One message per
# fault: an edited event log entry is told once, not once per checkpoint.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/swtpm.sh"

kj_evidence_maker
JOB=WO-2027-0315

kj_swtpm_start "$T/tpm"
S=$T/state
read -r recs cks _ _ < <("$MAKER" make-state "$S" "$KJ_SWTPM_TCTI" 1000 100 \
	2>"$T/maker.err") || fail "state maker: $(tail -5 "$T/maker.err")"
[ "$cks" -ge 4 ] || fail "want at least 4 checkpoints, got $cks"
"$KINJECT" evidence export --state "$S" --job "$JOB" --out "$T/ev.json"
"$KINJECT" verify "$T/ev.json" --ak "$S/ak.pem" >"$T/full.out" 2>&1 ||
	fail "the whole bundle: $(cat "$T/full.out")"

# Cut after the second checkpoint: what a bundle cut short looks like.
jq -c '.checkpoints |= .[0:2] | .records |= map(select(.checkpoint < 2))
	| .consistency |= map(select(.to < 2))' "$T/ev.json" >"$T/cut.json"
n=$(jq '.records | length' "$T/cut.json")
[ "$n" -lt "$recs" ] || fail "the cut kept every record"
rc=0; "$KINJECT" verify "$T/cut.json" --ak "$S/ak.pem" >"$T/cut.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "a bundle without job_end: exit $rc, want 1: $(cat "$T/cut.out")"
grep -q "FAIL.*completeness.*no job_end record" "$T/cut.out" ||
	fail "the failure does not name job_end: $(cat "$T/cut.out")"
"$KINJECT" verify "$T/cut.json" --ak "$S/ak.pem" --partial >"$T/part.out" 2>&1 ||
	fail "--partial: $(cat "$T/part.out")"
devs=$((n - 1))
grep -q "verdict: PASS, job not ended: the bundle shows $devs devices" "$T/part.out" ||
	fail "--partial verdict: $(tail -2 "$T/part.out")"
"$KINJECT" verify "$T/cut.json" --ak "$S/ak.pem" --partial --json >"$T/part.json" 2>/dev/null ||
	fail "--partial --json"
jq -e ".verdict == \"pass\" and (.job_ended | not) and .devices == $devs and
	.checks[5].details.job_ended == false" "$T/part.json" >/dev/null ||
	fail "--json: $(jq -c '{verdict, job_ended, devices}' "$T/part.json")"
"$KINJECT" verify "$T/cut.json" --ak "$S/ak.pem" --json >"$T/cut.json.out" 2>/dev/null &&
	fail "--json without --partial passed"
jq -e '.verdict == "fail" and .checks[5].status == "fail"' "$T/cut.json.out" >/dev/null ||
	fail "--json: $(jq -c '.checks[5]' "$T/cut.json.out")"

# One message per fault: an edited event log entry.
jq -c '.event_log[0].digest = ("00" * 32)' "$T/ev.json" >"$T/evlog.json"
"$KINJECT" verify "$T/evlog.json" --ak "$S/ak.pem" >"$T/evlog.out" 2>"$T/evlog.err" &&
	fail "an edited event log passed"
lines=$(grep "kinject:" "$T/evlog.err" | grep -vc "clock run\|evidence of job" || true)
[ "$lines" = 1 ] || fail "an edited event log printed $lines messages: $(head -5 "$T/evlog.err")"
echo "evidence_partial: all passed"
