#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# SPEC.md §5 / EVIDENCE.md §5: the evidence bundle carries the ceremony
# transcript, and `kinject verify --ek-ca CA.pem' checks the EK
# certificate's chain to swtpm's local CA, the transcript's residency proof,
# quote and officer signatures, and names the officers; another CA, a
# transcript with a signature over other bytes, or one quoted by another
# AK fail check 9, naming it.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
KJ_JOB_EK_CERT=1 kj_job_setup 30 2048
kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 8 --devices 30 >/dev/null 2>&1 ||
	true # exit 3 when the job ended under it
wait "$KJ_RUN_PID" || fail "run exit $?: $(cat "$T/run.err")"
"$KINJECT" evidence export --state "$KJ_STATE" --job WO-2027-0315 \
	--out "$T/ev.json" 2>/dev/null || fail "export"
jq -e '.appliance.ceremony_transcript | fromjson | .signatures | length == 2' \
	"$T/ev.json" >/dev/null || fail "bundle lacks the signed transcript"
CA=$T/tpm/ca
cat "$CA/issuercert.pem" >"$T/ekca.pem"
ls "$CA"/*.pem >/dev/null
verify() { "$KINJECT" verify "$1" --ak "$KJ_STATE/ak.pem" "${@:2}"; }
verify "$T/ev.json" --ek-ca "$T/ekca.pem" >"$T/v.out" 2>&1 ||
	fail "verify --ek-ca: $(cat "$T/v.out")"
grep -q '\[pass   \] 9 ceremony .*set up by /O=kinject/CN=officer 1, /O=kinject/CN=officer 2 (threshold 2 of 3)' \
	"$T/v.out" || fail "verdict: $(cat "$T/v.out")"
echo "ok: verify --ek-ca passes with swtpm's local CA and names the officers"
verify "$T/ev.json" >"$T/v.out" 2>&1 || fail "verify without --ek-ca"
grep -q '\[skipped\] 9 ceremony' "$T/v.out" || fail "check 9 not skipped"

# Another CA.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/o.key" -subj "/CN=other vendor" -out "$T/other-ca.pem" \
	2>/dev/null
expect_check() { # bundle want-substring
	local rc=0
	verify "$1" --ek-ca "${3:-$T/ekca.pem}" >"$T/v.out" 2>&1 || rc=$?
	[ "$rc" -eq 1 ] || fail "$1: exit $rc, want 1: $(cat "$T/v.out")"
	grep -q "\[FAIL   \] 9 ceremony .*$2" "$T/v.out" ||
		fail "$1: check 9 lacks '$2': $(cat "$T/v.out")"
	echo "ok: check 9 fails: $2"
}
expect_check "$T/ev.json" "does not chain to --ek-ca" "$T/other-ca.pem"
# A transcript whose body was changed after signing: signatures and quote
# no longer hold.
jq '.appliance.ceremony_transcript |= (fromjson |
	.signatures[0] = .signatures[1] | tojson)' "$T/ev.json" >"$T/dup.json"
expect_check "$T/dup.json" "2 distinct officers\|1 distinct officers signed"
jq '.appliance.ceremony_transcript |= (fromjson |
	.request |= sub("\"threshold\":2"; "\"threshold\":1") | tojson)' \
	"$T/ev.json" >"$T/t.json"
expect_check "$T/t.json" "transcript quote: extraData fails"
jq '.appliance.ceremony_transcript |= (fromjson |
	.quote.pcrs."14" = "'"$(printf '%064d' 0)"'" | tojson)' \
	"$T/ev.json" >"$T/p.json"
expect_check "$T/p.json" "transcript quote: pcrDigest fails"
jq '.appliance.ceremony_transcript = null' "$T/ev.json" >"$T/n.json"
expect_check "$T/n.json" "no ceremony transcript"
echo "ceremony_verify ok"
