#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 12 item 6: `kinject verify` streams the bundle.  Two real jobs
# (swtpm, journal, checkpoints) of N and 4N devices: verifying the 4N
# bundle may use at most KJ_PER_DEVICE bytes more per extra device than
# the N bundle (the compact indexes of checks 6 and 7, docs/EVIDENCE-IMPL.md
# "Large lots"), plus a fixed slack; a verifier that holds the records
# (about 4 KB a record) fails it.  Also: a bundle whose records come
# before its checkpoints (read twice, sought back to), a duplicate uid and
# a tampered record found in the stream, and a bundle with bytes after its
# end refused.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/swtpm.sh"

MAKER=$(dirname "$KINJECT")/tests/test_evidence
if [ ! -x "$MAKER" ]; then
	echo "skip: $MAKER not built (make check-unit builds it)"
	exit 77
fi
[ -x /usr/bin/time ] || { echo "skip: /usr/bin/time missing"; exit 77; }
JOB=WO-2027-0315
N=${KJ_LARGE_N:-20000}
PER_DEVICE=384            # bytes of verifier memory per extra device
SLACK=$((8 * 1024))       # KiB

# job N: N devices, ten checkpoints, on a TPM of its own (its PCRs and
# counter belong to one journal); verify's peak RSS (KiB) in $T/rssN
job() {
	local n=$1 S=$T/s$1
	kj_swtpm_start "$T/tpm$n" >/dev/null
	"$MAKER" make-state "$S" "$KJ_SWTPM_TCTI" "$n" $((n / 10)) \
		>/dev/null 2>"$T/maker$n.err" ||
		fail "state maker: $(tail -5 "$T/maker$n.err")"
	kj_swtpm_stop "$T/tpm$n" >/dev/null 2>&1
	"$KINJECT" evidence export --state "$S" --job "$JOB" \
		--out "$T/ev$n.json" 2>"$T/export$n.err" ||
		fail "export: $(cat "$T/export$n.err")"
	/usr/bin/time -f "%M" -o "$T/rss$n" "$KINJECT" verify "$T/ev$n.json" \
		--ak "$S/ak.pem" --work-order "$S/WO.json" \
		>"$T/verify$n.out" 2>&1 ||
		fail "verify of $n devices: $(tail -5 "$T/verify$n.out")"
	grep -q "verdict: PASS" "$T/verify$n.out" ||
		fail "verify of $n devices: $(tail -3 "$T/verify$n.out")"
}
job "$N"
job $((4 * N))
small=$(cat "$T/rss$N")
big=$(cat "$T/rss$((4 * N))")
bytes=$(stat -c %s "$T/ev$((4 * N)).json")
limit=$((small + SLACK + 3 * N * PER_DEVICE / 1024))
echo "verify peak RSS: $N devices $small KiB, $((4 * N)) devices $big KiB" \
	"(bundle $((bytes >> 20)) MiB), limit $limit KiB"
[ "$big" -le "$limit" ] ||
	fail "verify's memory grows with the bundle: $small -> $big KiB (limit $limit)"

# Records before checkpoints: still verified, from a second read.
E=$T/ev$N.json
jq -c '{kinject_evidence, records, appliance, event_log, checkpoints,
	consistency}' "$E" >"$T/reordered.json"
"$KINJECT" verify "$T/reordered.json" --ak "$T/s$N/ak.pem" \
	--work-order "$T/s$N/WO.json" >"$T/re.out" 2>&1 ||
	fail "records before checkpoints: $(tail -5 "$T/re.out")"
echo "ok: records before checkpoints verified"

# A second ok record of one uid is found without holding the records.
jq -c '.records[5].record |= (fromjson | .uid = "0000000aa5" | tojson)' \
	"$E" >"$T/dupuid.json"
rc=0
"$KINJECT" verify "$T/dupuid.json" --ak "$T/s$N/ak.pem" \
	--work-order "$T/s$N/WO.json" >"$T/dup.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "a duplicate uid: exit $rc: $(tail -3 "$T/dup.out")"
grep -q "FAIL.*work-order.*uid 0000000aa5 has more than one ok record" \
	"$T/dup.out" || fail "duplicate uid not named: $(cat "$T/dup.out")"
grep -q "FAIL.*inclusion.*record 5 " "$T/dup.out" ||
	fail "the edited record 5 not named: $(cat "$T/dup.out")"
echo "ok: duplicate uid and the edited record named"

# Bytes after the bundle, and a bundle cut inside its records.
{ cat "$E"; echo '{}'; } >"$T/trail.json"
expect_fail "end of file expected" \
	"$KINJECT" verify "$T/trail.json" --ak "$T/s$N/ak.pem"
head -c $(($(stat -c %s "$E") / 2)) "$E" >"$T/half.json"
expect_fail "the file ends inside a value" \
	"$KINJECT" verify "$T/half.json" --ak "$T/s$N/ak.pem"
grep -q "verdict" "$T/out" && fail "a broken bundle printed a verdict"
echo "evidence_large: all passed"
