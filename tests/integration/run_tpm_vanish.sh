# SPDX-License-Identifier: Apache-2.0
# QUALITY.md faults: the TPM vanishing mid-job stops the line (no COMMIT
# without a covering quote, the run ends with an error instead of hanging,
# still writing its summary); the devices whose COMMIT waited get ABORT
# INTERNAL and `withdrawn' records (EVIDENCE.md §2); with the TPM back
# (same state, new port) the same job resumes, and the sites' COMMITs
# equal the bundle's ok records that are not withdrawn, exactly.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 400 8192

kj_run_bg --json-summary "$T/sum1.json"
kj_wait_listen
kj_sim --hwrev B --sockets 32 --devices 0 --timeout 5 --device-log "$T/dev1.jsonl" \
	>/dev/null 2>&1 &
kj_track_pid $!
kj_wait_sql "select count(*) from checkpoints" 3 1200 0.05 ||
	fail "after 60 s: select count(*) from checkpoints: $KJ_SQL_N, want >= 3"
kill -9 "$KJ_SWTPM_PID"
start=$(date +%s)
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ $rc -eq 1 ] || fail "TPM gone: exit $rc, want 1: $(tail -3 "$T/run.err")"
[ $(($(date +%s) - start)) -lt 40 ] || fail "the run took too long to notice the TPM was gone"
grep -qi "tpm" "$T/run.err" || fail "the error does not name the TPM"
grep -q "run the same command again" "$T/run.err" || fail "no hint: $(cat "$T/run.err")"
grep -q '"outcome":"TPM lost' "$T/sum1.json" || fail "no --json-summary on the TPM's loss"
cp "$T/run.err" "$T/run1.err"
# The sim ends once the run closed its connections.
for i in $(seq 200); do pgrep -f "device-log $T/dev1.jsonl" >/dev/null || break; sleep 0.05; done
# Every COMMIT the sites received is covered by a stored checkpoint.
covered=$(kj_sql "select max(tree_size) from checkpoints")
max_leaf=$(grep -o '"leaf_index":[0-9]*' "$T/dev1.jsonl" | cut -d: -f2 | sort -n | tail -1)
[ -z "$max_leaf" ] || [ "$max_leaf" -lt "$covered" ] ||
	fail "COMMIT sent for leaf $max_leaf, checkpoints cover only $covered"
# Every ok record beyond the last checkpoint is withdrawn, none inside.
unwd=$(kj_sql "select count(*) from records r where result='ok' and seq >= $covered and not exists (select 1 from records w where w.attempt = r.attempt and w.result='withdrawn')")
[ "$unwd" = 0 ] || fail "$unwd ok record(s) beyond the checkpoint (tree $covered) not withdrawn"
# The sites' COMMITs are exactly the ok records not withdrawn.
kj_sql "select seq from records r where result='ok' and not exists (select 1 from records w where w.attempt = r.attempt and w.result='withdrawn') order by seq" >"$T/ok1.txt"
grep '"outcome":"committed"' "$T/dev1.jsonl" | grep -o '"leaf_index":[0-9]*' | cut -d: -f2 | sort -n >"$T/commit1.txt"
cmp -s "$T/ok1.txt" "$T/commit1.txt" ||
	fail "sites saw $(wc -l <"$T/commit1.txt") COMMITs, the journal has $(wc -l <"$T/ok1.txt") ok records not withdrawn: $(diff "$T/ok1.txt" "$T/commit1.txt" | head -5)"
nwd=$(kj_sql "select count(*) from records where result='withdrawn'")
# The withdrawn devices were told: ABORT INTERNAL, each one.
kj_sql "select attempt from records where result='withdrawn' order by 1" >"$T/wd1.txt"
grep '"outcome":"abort_internal"' "$T/dev1.jsonl" | grep -o '"attempt":[0-9]*' |
	cut -d: -f2 | sort -n >"$T/abort1.txt"
[ -z "$(comm -23 "$T/wd1.txt" "$T/abort1.txt")" ] ||
	fail "withdrawn devices without ABORT INTERNAL: $(comm -23 "$T/wd1.txt" "$T/abort1.txt" | head -3)"
echo "TPM lost: $(wc -l <"$T/commit1.txt") COMMITs, $nwd withdrawn, each told ABORT INTERNAL"

# The TPM comes back on its state (a reset: a new PCR epoch).
kj_swtpm_start "$T/tpm" >/dev/null
kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 32 --devices 0 --timeout 5 --device-log "$T/dev2.jsonl" \
	>/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "resume with the TPM back: exit $?: $(tail -3 "$T/run.err")"
ok=$(kj_sql "select count(*) from records where result='ok'")
wd=$(kj_sql "select count(*) from records where result='withdrawn'")
[ $((ok - wd)) = 400 ] || fail "job did not complete: $ok ok, $wd withdrawn"
[ "$(kj_sql "select count(*) from records where kind='job_end'")" = 1 ] || fail "no job_end"
commits=$(cat "$T/dev1.jsonl" "$T/dev2.jsonl" | grep -c '"outcome":"committed"')
[ "$commits" = 400 ] || fail "the sites saw $commits COMMITs, the job's quantity is 400"
"$KINJECT" evidence export --state "$KJ_STATE" --job WO-2027-0315 --out "$T/ev.json"
"$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" --work-order "$T/in/WO.json" \
	>"$T/verify.out" 2>"$T/verify.err" || fail "verify across the TPM reset: $(cat "$T/verify.out")"
# The power loss shows: the counter's jump with its bound, once.
grep -q "checkpoints not seen" "$T/verify.out" || fail "no counter jump shown: $(cat "$T/verify.out")"
[ "$(grep -c "checkpoints not seen" "$T/verify.err")" = 1 ] || fail "the jump is not told once: $(cat "$T/verify.err")"
"$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" --strict-clock >/dev/null 2>&1 &&
	fail "--strict-clock passes a bundle with a counter jump"
"$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" --json >"$T/verify.json" 2>/dev/null
jq -e '.checks[2].details.counter_jumps[0].not_seen_max >= 1' "$T/verify.json" >/dev/null ||
	fail "--json has no counter_jumps: $(jq -c '.checks[2]' "$T/verify.json")"
jq -e '.job_ended and .withdrawn == '"$wd" "$T/verify.json" >/dev/null ||
	fail "--json: job_ended / withdrawn wrong: $(jq -c '{job_ended, withdrawn}' "$T/verify.json")"
grep -v "^progress" "$T/run1.err" | grep -iv "measured\|created\|sandbox" | tail -12 || true
echo "run_tpm_vanish ok"
