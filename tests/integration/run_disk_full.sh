# SPDX-License-Identifier: Apache-2.0
# QUALITY.md faults: the state dir's disk fills up mid-job.  The line stops
# issuing, no site gets a COMMIT for a record that is not durable, the run
# ends with an error naming the full disk; with room again the same command
# resumes and completes the job, and the evidence verifies.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
# The state dir is a small tmpfs from the start: the ceremony's state
# (kj_job_setup) lives there too.
mkdir -p "$T/state"
mount -t tmpfs -o size=1m,mode=0700 tmpfs "$T/state" 2>/dev/null || {
	echo "cannot mount a tmpfs here: skipped"; exit 77; }
trap 'umount "$T/state" 2>/dev/null; kj_cleanup' EXIT
kj_job_setup 3000 4096

kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 32 --devices 0 --timeout 5 --device-log "$T/dev.jsonl" \
	>/dev/null 2>&1 &
kj_track_pid $!
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ $rc -eq 1 ] || fail "disk full: exit $rc, want 1: $(tail -3 "$T/run.err")"
grep -qi 'disk is full\|no space' "$T/run.err" || fail "the error does not say the disk is full: $(grep -v progress "$T/run.err" | tail -3)"
ok=$(kj_sql "select count(*) from records where result='ok'")
[ "$ok" -lt 3000 ] || fail "the disk never filled: the test proves nothing"
# Every COMMIT a site received names a durable record.
committed=$(grep -c '"outcome":"committed"' "$T/dev.jsonl" || true)
[ "$committed" -le "$ok" ] || fail "$committed COMMITs sent, only $ok ok records durable"
grep -v "^progress" "$T/run.err" | tail -3
echo "disk full after $ok devices ($committed COMMITs received)"

mount -o remount,size=64m "$T/state"
kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 32 --devices 0 --timeout 5 >/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "resume with room: exit $?: $(tail -3 "$T/run.err")"
# EVIDENCE.md §2: the ok records whose COMMIT waited for a checkpoint at
# the error are withdrawn on resume; the job still reaches its quantity.
ok=$(kj_sql "select count(*) from records where result='ok'")
wd=$(kj_sql "select count(*) from records where result='withdrawn'")
[ $((ok - wd)) = 3000 ] || fail "job did not complete: $ok ok, $wd withdrawn"
"$KINJECT" evidence export --state "$KJ_STATE" --job WO-2027-0315 --out "$T/ev.json"
"$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" --work-order "$T/in/WO.json" \
	>"$T/verify.out" || fail "verify after the full disk: $(cat "$T/verify.out")"
echo "run_disk_full ok"
