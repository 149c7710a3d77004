#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `kinject demo' (what `make demo' runs), shorter: every stage runs, every
# external command is printed before it runs, its own verify step passes,
# the closing screen says where things are, and no swtpm is left behind.
. "$(dirname "$0")/../lib/common.sh"
for t in swtpm tpm2_startup softhsm2-util pkcs11-tool openssl; do
	command -v $t >/dev/null || { echo "skip: no $t"; exit 77; }
done
rc=0
"$KINJECT" demo --dir "$T/demo" --devices 40 --sockets 4 >"$T/out" 2>&1 || rc=$?
[ $rc -eq 0 ] || fail "demo exit $rc: $(tail -20 "$T/out")"
for s in "1. software TPM" "2. HSM token" "3. ceremony" "4. customer inputs" \
	"5. the job" "6. evidence" "7. audit"; do
	grep -q "^== $s" "$T/out" || fail "no stage '$s'"
done
grep -q '^verdict: PASS$' "$T/out" || fail "the demo's verify did not pass"
# The ceremony: init with 3 of 5 officers, the customer enrolled by three.
grep -q "^\\$ .*kinject ceremony init --state $T/demo/state .*--threshold 3" \
	"$T/out" || fail "no ceremony init line"
[ "$(grep -c '^\$ .*kinject ceremony apply ' "$T/out")" -eq 2 ] ||
	fail "not two approvals (init, enrol-customer)"
"$KINJECT" ceremony status --state "$T/demo/state" --json >"$T/status.json" ||
	fail "ceremony status"
jq -e '.threshold == 3 and (.officers | length) == 5' "$T/status.json" \
	>/dev/null || fail "officers/threshold: $(cat "$T/status.json")"
jq -e '[.customers[] | tostring | test("acme")] | any' "$T/status.json" \
	>/dev/null || fail "acme not enrolled: $(cat "$T/status.json")"
# The commands a newcomer repeats are on the page, runnable as printed.
grep -q '^\$ openssl cms -encrypt -binary -aes-256-gcm ' "$T/out" || fail "no cms line"
grep -q '^\$ softhsm2-util --init-token ' "$T/out" || fail "no softhsm line"
grep -q "^\\\$ .*kinject run --state $T/demo/state " "$T/out" || fail "no run line"
line=$(grep -m1 '^\$ openssl cms -sign -binary -in .*/WO.json ' "$T/out")
(cd "$T" && eval "${line#\$ } -out $T/again.sig") || fail "printed line does not run: $line"
[ -s "$T/again.sig" ] || fail "repeated step wrote nothing"
for f in evidence.json devices.csv report.html state/journal.db customer/WO.json; do
	[ -s "$T/demo/$f" ] || fail "no $f"
	grep -q "$f\|${f%%/*}/" "$T/out" || true
done
grep -q "^Everything is in $T/demo:" "$T/out" || fail "no closing screen"
[ "$(wc -l <"$T/demo/devices.csv")" -eq 41 ] || fail "devices.csv rows"
! pgrep -f "swtpm socket --tpm2 --tpmstate dir=$T/demo/tpm" >/dev/null ||
	fail "swtpm left running"
echo "demo ok"
