#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# EVIDENCE.md §5-6 end to end with a real swtpm: a job of 2,000 devices
# (made with the journal/TPM/checkpoint APIs by the unit test's state maker
# until `kinject run` makes them), `kinject evidence export`, `kinject
# verify` passes; every record has an inclusion proof, consistency proofs
# chain all checkpoints, every checkpoint passes tpm2_checkquote; then each
# tampering is caught with the failing check and item named.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/swtpm.sh"

kj_evidence_maker
JOB=WO-2027-0315

kj_swtpm_start "$T/tpm"
TCTI=$KJ_SWTPM_TCTI
PORT=${TCTI##*port=}

# A TPM reset (power cycle): PCRs back to zero, a new epoch for the next
# state on this TPM (its PCRs would be the previous state's otherwise).
tpm_reset() {
	# $1 = disorderly: no TPM2_Shutdown first (clockInfo.safe = 0 after).
	[ "${1:-}" = disorderly ] || tpm2_shutdown -c -T "$TCTI"
	swtpm_ioctl --tcp "127.0.0.1:$((PORT + 1))" -i >/dev/null
	tpm2_startup -c -T "$TCTI"
}

S=$T/state
read -r recs cks qsum qmax < <("$MAKER" make-state "$S" "$TCTI" 2000 250 \
	2>"$T/maker.err") || fail "state maker: $(tail -5 "$T/maker.err")"
[ "$recs" -eq 2002 ] || fail "expected 2002 records, got $recs"
echo "state: $recs records, $cks checkpoints, quote latency mean $((qsum / cks)) ms, max $qmax ms"

"$KINJECT" evidence export --state "$S" --job "$JOB" --out "$T/ev.json"
"$KINJECT" verify "$T/ev.json" --ak "$S/ak.pem" --work-order "$S/WO.json" \
	>"$T/v.out" || fail "verify failed: $(cat "$T/v.out")"
cat "$T/v.out"
grep -q '^verdict: PASS$' "$T/v.out" || fail "no PASS verdict"
# A small lot's checks 6 and 7 fit in memory: no temporary file needed.
TMPDIR=$T/none "$KINJECT" verify "$T/ev.json" --ak "$S/ak.pem" \
	--work-order "$S/WO.json" >"$T/v2.out" 2>&1 ||
	fail "verify without a TMPDIR: $(tail -3 "$T/v2.out")"
echo "ok: a small lot verified without a temporary file"

# Usage and input errors: exit 2 / 1, naming the problem.
rc=0; "$KINJECT" verify "$T/ev.json" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- '--ak is required' "$T/err" || fail "verify without --ak: $rc"
rc=0; "$KINJECT" evidence export --state "$S" --out "$T/x.json" 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- '--job is required' "$T/err" || fail "export without --job: $rc"
expect_fail "no record of job \`WO-none'" "$KINJECT" evidence export --state "$S" \
	--job WO-none --out "$T/x.json"
printf '{"kinject_evidence": 1, "kinject_evidence": 1}' >"$T/dup.json"
expect_fail "duplicate object key" "$KINJECT" verify "$T/dup.json" --ak "$S/ak.pem"

# Structure of the bundle (§5).
n=$(jq '.records | length' "$T/ev.json")
[ "$n" -eq 2002 ] || fail "bundle has $n records"
jq -e '[.records[] | select((.inclusion | type) == "array" and
	(.inclusion | length) > 0)] | length == 2002' "$T/ev.json" >/dev/null ||
	fail "a record lacks an inclusion proof"
nc=$(jq '.checkpoints | length' "$T/ev.json")
[ "$nc" -ge 3 ] || fail "only $nc checkpoints"
jq -e '.consistency as $c | (.checkpoints | length) as $n |
	($c | length) == $n - 1 and
	([range(0; $n - 1) | . as $i | $c[$i].from == $i and $c[$i].to == $i + 1]
	 | all)' "$T/ev.json" >/dev/null || fail "consistency proofs do not chain"
jq -e '.appliance.secret_memory == "mlock" and .appliance.ek_certificate_pem == null' \
	"$T/ev.json" >/dev/null || fail "appliance block"

# Every checkpoint with tpm2-tools as the independent verifier.
qd_hex() { # tree_size root nv_counter
	{ printf 'KINJECT-CHECKPOINT-1'; printf '%016x' "$1" | xxd -r -p
	  printf '%s' "$2" | xxd -r -p; printf '%016x' "$3" | xxd -r -p; } |
		sha256sum | cut -c1-64
}
for i in $(seq 0 $((nc - 1))); do
	jq -r ".checkpoints[$i].quote_attest" "$T/ev.json" | base64 -d >"$T/q.msg"
	jq -r ".checkpoints[$i].quote_signature" "$T/ev.json" | base64 -d >"$T/q.sig"
	qd=$(qd_hex "$(jq -r ".checkpoints[$i].tree_size" "$T/ev.json")" \
		"$(jq -r ".checkpoints[$i].root" "$T/ev.json")" \
		"$(jq -r ".checkpoints[$i].nv_counter" "$T/ev.json")")
	tpm2_checkquote -u "$S/ak.pem" -m "$T/q.msg" -s "$T/q.sig" -q "$qd" \
		-g sha256 >/dev/null 2>"$T/cq.err" ||
		fail "tpm2_checkquote rejects checkpoint $i: $(cat "$T/cq.err")"
done
echo "ok: tpm2_checkquote accepts all $nc checkpoints"
# ... and rejects a qualifying data that is not the checkpoint's.
if tpm2_checkquote -u "$S/ak.pem" -m "$T/q.msg" -s "$T/q.sig" \
	-q "$(qd_hex 1 "$(printf '%064d' 0)" 1)" -g sha256 >/dev/null 2>&1; then
	fail "tpm2_checkquote accepted a wrong qualifying data"
fi

# --json and --golden.
"$KINJECT" verify "$T/ev.json" --ak "$S/ak.pem" --json >"$T/v.json"
jq -e '.verdict == "pass" and (.checks | length) == 9' "$T/v.json" >/dev/null ||
	fail "--json verdict: $(cat "$T/v.json")"
printf '{"kinject_golden": 1, "measurements": {"kinject": ["%s"], "kinject.ko": []}}\n' \
	"$(sha256sum "$MAKER" | cut -c1-64)" >"$T/golden.json"
"$KINJECT" verify "$T/ev.json" --ak "$S/ak.pem" --golden "$T/golden.json" \
	>"$T/v.out" || fail "golden: $(cat "$T/v.out")"
grep -q '\[pass   \] 8 golden' "$T/v.out" || fail "golden not checked"

# expect_check FILE CHECK ITEM [verify options]: verify fails, and the
# line of check CHECK says FAIL naming ITEM.
expect_check() {
	local f=$1 check=$2 item=$3 rc=0
	shift 3
	"$KINJECT" verify "$f" --ak "$S/ak.pem" "$@" >"$T/v.out" 2>"$T/v.err" ||
		rc=$?
	[ "$rc" -eq 1 ] || fail "verify $f: exit $rc, expected 1: $(cat "$T/v.out")"
	grep -E "^  \[FAIL *\] [0-9] $check " "$T/v.out" | grep -qF -- "$item" ||
		fail "expected check $check to fail naming '$item': $(cat "$T/v.out" "$T/v.err")"
	grep -q '^verdict: FAIL$' "$T/v.out" || fail "no FAIL verdict"
	echo "ok: caught, $check: $(grep -E "\] [0-9] $check " "$T/v.out" | sed 's/^ *//')"
}
tamper() { # CHECK ITEM JQ-FILTER
	jq -c "$3" "$T/ev.json" >"$T/t.json"
	expect_check "$T/t.json" "$1" "$2"
}
b64_edit() { # base64 in, sed-on-hex program, base64 out
	printf '%s' "$1" | base64 -d | xxd -p | tr -d '\n' | sed "$2" |
		xxd -r -p | base64 -w0
}

# Trailing bytes after TPMS_ATTEST.
att=$(jq -r '.checkpoints[1].quote_attest' "$T/ev.json")
att2=$(b64_edit "$att" 's/$/00/')
tamper quotes "checkpoint 1: parse" ".checkpoints[1].quote_attest = \"$att2\""
# An AK public area without `restricted' (TPMA_OBJECT bit 16: byte 7).
pub=$(jq -r '.appliance.ak_public' "$T/ev.json")
hex=$(printf '%s' "$pub" | base64 -d | xxd -p | tr -d '\n')
b7=$(( 0x${hex:14:2} & ~1 ))
pub2=$(printf '%s%02x%s' "${hex:0:14}" "$b7" "${hex:16}" | xxd -r -p | base64 -w0)
[ "$pub2" != "$pub" ] || fail "restricted bit was not set"
tamper quotes "AK attributes" ".appliance.ak_public = \"$pub2\""
# One byte of a record (still a valid record: only the log proves it).
tamper inclusion "record 5 (leaf 5)" \
	'.records[5].record |= sub("\"socket\":5,"; "\"socket\":6,")'
# A dropped record, a reordered record.
tamper completeness "record 100 (leaf 101)" 'del(.records[100])'
tamper completeness "record 10 (leaf 11)" \
	'.records[10] as $a | .records[11] as $b | .records[10] = $b | .records[11] = $a'
# A swapped checkpoint root.
tamper quotes "checkpoint 0: extraData" \
	'.checkpoints[0].root as $a | .checkpoints[1].root as $b |
	 .checkpoints[0].root = $b | .checkpoints[1].root = $a'
# A replayed old quote with a newer tree.
tamper quotes "checkpoint 2: extraData" \
	'.checkpoints[2].quote_attest = .checkpoints[0].quote_attest |
	 .checkpoints[2].quote_signature = .checkpoints[0].quote_signature'
# An edited event-log entry.
tamper pcrs "checkpoint 0: pcrDigest" \
	'.event_log[0].digest = "'"$(printf '%064d' 1)"'"'
# A PCR value that does not replay.
tamper pcrs "checkpoint 1: PCR 13 does not replay" \
	'.checkpoints[1].pcrs."13" = "'"$(printf '%064d' 2)"'"'
# An epoch (PCR lifetime) that starts without a TPM reset.
tamper clock "checkpoint 1: epoch 1 after epoch 0" '.checkpoints[1].epoch = 1'
# A log that did not only grow (a consistency proof cut short).
tamper consistency "checkpoint 0 -> 1" 'del(.consistency[0].proof[0])'
# Golden: the binary that ran is not the one the image lists.
printf '{"kinject_golden": 1, "measurements": {"kinject": ["%064d"]}}\n' 3 \
	>"$T/golden-bad.json"
expect_check "$T/ev.json" golden "event 0: kinject" --golden "$T/golden-bad.json"

# A quote over other PCRs than the policy's (13, 14, 15), by the TPM, and
# a quote from another AK (that state's): a second state on this TPM.
tpm_reset
"$MAKER" make-state "$T/s2" "$TCTI" 30 0 57344 >/dev/null 2>"$T/maker.err" ||
	fail "state maker (PCRs 13-15): $(tail -5 "$T/maker.err")"
"$KINJECT" evidence export --state "$T/s2" --job "$JOB" --out "$T/ev2.json"
cp "$S/ak.pem" "$T/ak1.pem"
# Bundle 2 carries its own AK: against ours, the AK check names the key.
expect_check "$T/ev2.json" quotes "AK key"
expect_check "$T/ev2.json" pcrs "checkpoint 0: pcrSelect" --ak "$T/s2/ak.pem"
# ... unless the customer's policy is those PCRs.
"$KINJECT" verify "$T/ev2.json" --ak "$T/s2/ak.pem" --pcrs 13,14,15 \
	>"$T/v.out" || fail "--pcrs 13,14,15: $(cat "$T/v.out")"
jq -c --slurpfile o "$T/ev2.json" \
	'.checkpoints[0].quote_attest = $o[0].checkpoints[0].quote_attest |
	 .checkpoints[0].quote_signature = $o[0].checkpoints[0].quote_signature' \
	"$T/ev.json" >"$T/t.json"
expect_check "$T/t.json" quotes "checkpoint 0: signature"

# `ok' records above the work order's quantity.
tpm_reset disorderly
"$MAKER" make-state "$T/s3" "$TCTI" 60 0 0 40 >/dev/null 2>"$T/maker.err" ||
	fail "state maker (quantity): $(tail -5 "$T/maker.err")"
"$KINJECT" evidence export --state "$T/s3" --job "$JOB" --out "$T/ev3.json"
"$KINJECT" verify "$T/ev3.json" --ak "$T/s3/ak.pem" >/dev/null ||
	fail "bundle 3 should verify without --work-order"
S=$T/s3 expect_check "$T/ev3.json" work-order "exceed the work order quantity 40" \
	--work-order "$T/s3/WO.json"
# That TPM was power-cycled without an orderly shutdown: clockInfo.safe = 0
# is a warning, and a failure with --strict-clock.
"$KINJECT" verify "$T/ev3.json" --ak "$T/s3/ak.pem" >"$T/v.out" ||
	fail "unsafe clock must only warn"
grep -q '\[warn   \] 3 clock' "$T/v.out" || fail "no clock warning: $(cat "$T/v.out")"
S=$T/s3 expect_check "$T/ev3.json" clock "clockInfo.safe = 0" --strict-clock
S=$T/s3 expect_check "$T/ev3.json" clock "not allowed" \
	--tpm-firmware-allow 0x1,2
echo "evidence_verify: all passed"
