#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 12 item 6: `kinject evidence export` and `kinject verify` use
# bounded memory.  Two real jobs (swtpm, journal, checkpoints) of N and 4N
# devices: exporting and verifying the 4N bundle may take at most 2 MiB
# and PER_DEVICE bytes a device more peak RSS than the N bundle
# (docs/EVIDENCE-IMPL.md "Large lots": the tree on disk, checks 6 and 7 by
# external sorts); the in-memory tree (64 bytes a record) and hash tables
# (220 bytes a device) fail it, let alone a verifier that holds the
# records.  Also: a bundle whose records come before its checkpoints (read
# twice, sought back to), duplicate uids (the least one named, a withdrawn
# one not counted), withdrawn records that do not pair (the earliest fault
# of check 6 named), a tampered record found in the stream, and a bundle
# with bytes after its end refused, a TMPDIR too small told with the bytes
# it needs.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/swtpm.sh"

kj_evidence_maker
[ -x /usr/bin/time ] || { echo "skip: /usr/bin/time missing"; exit 77; }
JOB=WO-2027-0315
N=${KJ_LARGE_N:-20000}
PER_DEVICE=8              # bytes of memory per extra device
SLACK=$((2 * 1024))       # KiB

# job N: N devices, ten checkpoints, on a TPM of its own (its PCRs and
# counter belong to one journal); peak RSS (KiB) of export in $T/xrssN,
# of verify in $T/rssN
job() {
	local n=$1 S=$T/s$1
	kj_swtpm_start "$T/tpm$n" >/dev/null
	"$MAKER" make-state "$S" "$KJ_SWTPM_TCTI" "$n" $((n / 10)) \
		>/dev/null 2>"$T/maker$n.err" ||
		fail "state maker: $(tail -5 "$T/maker$n.err")"
	kj_swtpm_stop "$T/tpm$n" >/dev/null 2>&1
	/usr/bin/time -f "%M" -o "$T/xrss$n" \
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
bytes=$(stat -c %s "$T/ev$((4 * N)).json")
asan=
grep -qa __asan_init "$KINJECT" && asan=1
for what in export verify; do
	f=rss; [ $what = export ] && f=xrss
	small=$(cat "$T/$f$N")
	big=$(cat "$T/$f$((4 * N))")
	limit=$((small + SLACK + 3 * N * PER_DEVICE / 1024))
	echo "$what peak RSS: $N devices $small KiB, $((4 * N)) devices" \
		"$big KiB (bundle $((bytes >> 20)) MiB), limit $limit KiB"
	# ASan's quarantine and shadow memory follow the bytes allocated
	# over the run, not those held: the bound is for the real build.
	if [ -n "$asan" ]; then
		echo "(ASan build: the bound is not checked)"
		continue
	fi
	[ "$big" -le "$limit" ] ||
		fail "$what's memory grows with the bundle: $small -> $big KiB (limit $limit)"
done

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

# The 4N bundle: its names (uids, serials) go to the temporary file too.
B=$T/ev$((4 * N)).json
jq -c '.records[5].record |= (fromjson | .uid = "0000000aa5" | tojson)' \
	"$B" >"$T/dupbig.json"
rc=0
"$KINJECT" verify "$T/dupbig.json" --ak "$T/s$((4 * N))/ak.pem" \
	--work-order "$T/s$((4 * N))/WO.json" >"$T/dup.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "a duplicate uid in $((4 * N)): exit $rc"
grep -q "FAIL.*work-order.*uid 0000000aa5 has more than one ok record" \
	"$T/dup.out" || fail "duplicate uid not named: $(cat "$T/dup.out")"
echo "ok: duplicate uid named from the names on disk"

# The sorts need a writable TMPDIR once they outgrow memory, and say so.
TMPDIR=$T/none expect_fail "set TMPDIR to a writable directory" \
	"$KINJECT" verify "$B" --ak "$T/s$((4 * N))/ak.pem"
grep -q "verdict" "$T/out" && fail "no temporary file, yet a verdict"

# A TMPDIR too small (a 2 MiB tmpfs, in a mount namespace of its own):
# refused, naming it and the bytes needed, no verdict.
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	mkdir -p "$T/small"
	# shellcheck disable=SC2016
	expect_fail "$T/small: no room for the verifier's temporary files" \
		unshare -m sh -c 'mount -t tmpfs -o size=2m tmpfs "$1" &&
		TMPDIR="$1" exec "$2" verify "$3" --ak "$4" --work-order "$5"' \
		sh "$T/small" "$KINJECT" "$B" "$T/s$((4 * N))/ak.pem" \
		"$T/s$((4 * N))/WO.json"
	grep -q "bytes more are needed now and [0-9]* are free" "$T/err" ||
		fail "a full TMPDIR without the bytes needed: $(cat "$T/err")"
	grep -q "verdict" "$T/out" && fail "a full TMPDIR, yet a verdict"
else
	echo "skip: a full TMPDIR (needs root and unshare -m for a tmpfs)"
fi

# edit OUT JQ: the bundle E with its records edited by the jq filter
# (on the record objects, .[i]); verify it, expect exit 1, output in $T/ed.
edit() {
	local out=$1 rc=0
	jq -c ".records |= (map(.record |= fromjson) | ($2) |
		map(.record |= tojson))" "$E" >"$T/$out.json"
	"$KINJECT" verify "$T/$out.json" --ak "$T/s$N/ak.pem" \
		--work-order "$T/s$N/WO.json" >"$T/ed" 2>&1 || rc=$?
	[ $rc -eq 1 ] || fail "$out: exit $rc: $(tail -3 "$T/ed")"
}
# want RE: the output has a line matching RE
want() { grep -q "$1" "$T/ed" || fail "no /$1/ in: $(cat "$T/ed")"; }
# r I: record I withdrawn as a copy of record J (same attempt and fields)
wd='.[$j].record + {result: "withdrawn", job_seq: $i, seq: .[$i].record.seq}'

# Two uids with two ok records each: the least is named; the uid of a
# withdrawn ok record (00000001a5, less still) counted once only.
edit dup2 ".[9].record.uid = .[3].record.uid |
	.[7].record.uid = .[2].record.uid |
	(20 as \$i | 1 as \$j | .[\$i].record = $wd) |
	.[22].record.uid = .[1].record.uid"
want "FAIL.*work-order.*uid 00000002a5 has more than one ok record"
echo "ok: the least duplicate uid named, a withdrawn one not counted"

# Check 6 names its earliest fault, from the stream or from the pairing.
edit wdiff ".[20].record += {result: \"withdrawn\", attempt: 10}"
want "FAIL.*completeness.*record 20 (leaf [0-9]*): withdrawn record differs from the ok record 10 of attempt 10 "
edit wtwice "(20 as \$i | 10 as \$j | .[\$i].record = $wd) |
	(30 as \$i | 10 as \$j | .[\$i].record = $wd)"
want "FAIL.*completeness.*record 30 (leaf [0-9]*): attempt 10 withdrawn a second time"
edit wseq "(20 as \$i | 10 as \$j | .[\$i].record = $wd) |
	(30 as \$i | 10 as \$j | .[\$i].record = $wd) |
	.[25].record.job_seq = 99"
want "FAIL.*completeness.*record 25 (leaf [0-9]*): job_seq 99 where 25 was expected"
edit wearly ".[20].record += {result: \"withdrawn\", attempt: 40}"
want "FAIL.*completeness.*record 20 (leaf [0-9]*): withdrawn without an earlier ok record of its attempt"
echo "ok: withdrawn records that do not pair, the earliest fault named"

# Bytes after the bundle, and a bundle cut inside its records.
{ cat "$E"; echo '{}'; } >"$T/trail.json"
expect_fail "end of file expected" \
	"$KINJECT" verify "$T/trail.json" --ak "$T/s$N/ak.pem"
head -c $(($(stat -c %s "$E") / 2)) "$E" >"$T/half.json"
expect_fail "the file ends inside a value" \
	"$KINJECT" verify "$T/half.json" --ak "$T/s$N/ak.pem"
grep -q "verdict" "$T/out" && fail "a broken bundle printed a verdict"
echo "evidence_large: all passed"
