#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# QUALITY.md crash bar, attestation side: kill -9 of a job's keeper (the
# unit test's state maker, which drives the journal, the pipelined
# checkpointer and the TPM as the keeper does) mid-job, then the same job
# again: the NV counter check accepts the journal, the measurement epoch
# goes on, the job ends, and `kinject verify` passes on the evidence that
# spans both runs.  A copy of the journal taken before the second run is
# refused afterwards (an old journal restored).
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/swtpm.sh"

kj_evidence_maker
JOB=WO-2027-0315
QTY=300000

kj_swtpm_start "$T/tpm"
TCTI=$KJ_SWTPM_TCTI
S=$T/state

"$MAKER" make-state "$S" "$TCTI" "$QTY" 500 0 "$QTY" >/dev/null 2>"$T/m1.err" &
pid=$!
kj_track_pid "$pid"
for i in $(seq 1 100); do
	sleep 0.1
	n=$(sqlite3 "file:$S/journal.db?mode=ro" \
		'SELECT count(*) FROM checkpoints' 2>/dev/null || echo 0)
	[ "${n:-0}" -ge 2 ] && break
done
kill -9 "$pid"
wait "$pid" 2>/dev/null && fail "the maker finished before the kill"
n1=$(sqlite3 "file:$S/journal.db?mode=ro" 'SELECT count(*) FROM records')
echo "killed after $n1 records"
[ "$n1" -gt 1 ] || fail "nothing written before the kill"
# The process is dead: journal.db and its WAL together are its last state.
cp "$S/journal.db" "$T/journal.old"
cp "$S/journal.db-wal" "$T/journal.old-wal" 2>/dev/null || true

# The same job again: resumes, ends with job_end and a final checkpoint.
"$MAKER" make-state "$S" "$TCTI" 300 100 0 "$QTY" >"$T/m2.out" 2>"$T/m2.err" ||
	fail "rerun after kill -9: $(tail -5 "$T/m2.err")"
grep -q 'epoch 0: continue' "$T/m2.err" || fail "epoch did not go on: $(cat "$T/m2.err")"
"$KINJECT" evidence export --state "$S" --job "$JOB" --out "$T/ev.json"
"$KINJECT" verify "$T/ev.json" --ak "$S/ak.pem" --work-order "$S/WO.json" \
	>"$T/v.out" || fail "verify after a crash: $(cat "$T/v.out")"
grep -q '^verdict: PASS$' "$T/v.out" || fail "no PASS"
grep 'completeness' "$T/v.out"
jq -e '[.event_log[] | select(.epoch == 0)] | length >= 4' "$T/ev.json" \
	>/dev/null || fail "both runs' measurements should be in epoch 0"
if command -v "$KINJECT" >/dev/null && "$KINJECT" audit --help >/dev/null 2>&1; then
	"$KINJECT" audit verify --state "$S" >/dev/null 2>"$T/a.err" ||
		fail "audit verify: $(tail -5 "$T/a.err")"
fi

# The pre-rerun copy restored: its checkpoints are behind the TPM's counter.
cp "$T/journal.old" "$S/journal.db"
rm -f "$S/journal.db-wal" "$S/journal.db-shm"
[ -f "$T/journal.old-wal" ] && cp "$T/journal.old-wal" "$S/journal.db-wal"
expect_fail "an old copy of the journal restored" \
	"$MAKER" make-state "$S" "$TCTI" 10 0 0 "$QTY"
echo "evidence_crash: all passed"
