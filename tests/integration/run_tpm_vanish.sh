# SPDX-License-Identifier: Apache-2.0
# QUALITY.md faults: the TPM vanishing mid-job stops the line (no COMMIT
# without a covering quote, the run ends with an error instead of hanging);
# with the TPM back (same state, new port) the same job resumes and its
# evidence verifies across the TPM reset.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 400 8192

kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 32 --devices 0 --timeout 5 --device-log "$T/dev1.jsonl" \
	>/dev/null 2>&1 &
kj_track_pid $!
until [ "$(kj_sql "select count(*) from checkpoints" 2>/dev/null || echo 0)" -ge 3 ]; do
	sleep 0.05
done
kill -9 "$KJ_SWTPM_PID"
start=$(date +%s)
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ $rc -eq 1 ] || fail "TPM gone: exit $rc, want 1: $(tail -3 "$T/run.err")"
[ $(($(date +%s) - start)) -lt 40 ] || fail "the run took too long to notice the TPM was gone"
grep -qi "tpm" "$T/run.err" || fail "the error does not name the TPM"
cp "$T/run.err" "$T/run1.err"
sleep 0.5
# Every COMMIT the sites received is covered by a stored checkpoint.
covered=$(kj_sql "select max(tree_size) from checkpoints")
max_leaf=$(grep -o '"leaf_index":[0-9]*' "$T/dev1.jsonl" | cut -d: -f2 | sort -n | tail -1)
[ -z "$max_leaf" ] || [ "$max_leaf" -lt "$covered" ] ||
	fail "COMMIT sent for leaf $max_leaf, checkpoints cover only $covered"

# The TPM comes back on its state (a reset: a new PCR epoch).
kj_swtpm_start "$T/tpm" >/dev/null
kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 32 --devices 0 --timeout 5 >/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "resume with the TPM back: exit $?: $(tail -3 "$T/run.err")"
[ "$(kj_sql "select count(*) from records where result='ok'")" = 400 ] || fail "job did not complete"
"$KINJECT" evidence export --state "$KJ_STATE" --job WO-2027-0315 --out "$T/ev.json"
"$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" --work-order "$T/in/WO.json" \
	>"$T/verify.out" || fail "verify across the TPM reset: $(cat "$T/verify.out")"
grep -v "^progress" "$T/run1.err" | grep -iv "measured\|created\|sandbox" | tail -12 || true
echo "run_tpm_vanish ok"
