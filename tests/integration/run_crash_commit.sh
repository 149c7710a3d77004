#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# EVIDENCE.md §2: kill -9 of the keeper while COMMITs wait for a checkpoint
# (many sockets, the default 200 ms cadence).  The resumed run appends
# `withdrawn' for every ok record beyond the last durable checkpoint: the
# sites' COMMITs are the ok records not withdrawn (an ok record inside that
# checkpoint stays ok: its COMMIT may have gone), and the job reaches its
# quantity in COMMITs the sites saw.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 600 8192

kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 64 --devices 0 --timeout 5 --device-log "$T/dev1.jsonl" \
	>/dev/null 2>&1 &
sim=$!
kj_track_pid $sim
kj_wait_sql "select count(*) from records where result='ok'" 150 400 0.05 ||
	fail "only ${KJ_SQL_N:-0} devices before the crash"
# Strike while ok records wait beyond the last stored checkpoint.
kj_wait_sql "select (select count(*) from records where result='ok') -
	(select count(*) from records where result='ok' and seq <
	 (select coalesce(max(tree_size), 0) from checkpoints))" 8 400 0.005 ||
	true
kill -9 "$KJ_RUN_PID"
wait "$KJ_RUN_PID" 2>/dev/null || true
covered=$(kj_sql "select coalesce(max(tree_size), 0) from checkpoints")
prev=$(kj_sql "select coalesce(max(tree_size), 0) from checkpoints
	where tree_size < $covered")
beyond=$(kj_sql "select count(*) from records where result='ok' and seq >= $covered")
for i in $(seq 200); do kill -0 "$sim" 2>/dev/null || break; sleep 0.05; done
kill -INT "$sim" 2>/dev/null || true
wait "$sim" 2>/dev/null || true
echo "crashed: $beyond ok record(s) beyond the last checkpoint (tree $covered)"
[ "$beyond" -ge 1 ] || fail "no ok record waited for a checkpoint: the test proves nothing"

kj_run_bg --json-summary "$T/run.json"
kj_wait_listen
kj_sim --hwrev B --sockets 64 --devices 0 --timeout 5 --device-log "$T/dev2.jsonl" \
	>/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "rerun exit $?: $(tail -5 "$T/run.err")"
grep -q "never had their COMMIT sent: recorded as withdrawn" "$T/run.err" ||
	fail "the resume does not say it withdrew: $(head -5 "$T/run.err")"

wd=$(kj_sql "select count(*) from records where result='withdrawn'")
[ "$wd" = "$beyond" ] || fail "$beyond ok beyond the checkpoint, $wd withdrawn"
# Sites' COMMITs against the ok records not withdrawn.
kj_sql "select seq from records r where result='ok' and not exists
	(select 1 from records w where w.attempt = r.attempt and
	 w.result = 'withdrawn') order by seq" >"$T/ok.txt"
cat "$T/dev1.jsonl" "$T/dev2.jsonl" | grep '"outcome":"committed"' |
	grep -o '"leaf_index":[0-9]*' | cut -d: -f2 | sort -n >"$T/commit.txt"
# Every COMMIT a site saw is an ok record not withdrawn...
extra=$(comm -13 "$T/ok.txt" "$T/commit.txt" | wc -l)
[ "$extra" = 0 ] || fail "$extra COMMIT(s) for records that are not ok or withdrawn"
# ...and every ok record no site saw is one the last checkpoint before
# the crash covered (its COMMIT was on its way), never one beyond it.
comm -23 "$T/ok.txt" "$T/commit.txt" | while read -r s; do
	[ "$s" -ge "$prev" ] && [ "$s" -lt "$covered" ] ||
		fail "ok record $s: no site saw its COMMIT and it is not withdrawn"
done
[ "$(wc -l <"$T/commit.txt")" -ge 600 ] ||
	fail "the sites saw $(wc -l <"$T/commit.txt") COMMITs, quantity 600"
ok=$(wc -l <"$T/ok.txt")
[ "$ok" = 600 ] || fail "$ok ok records not withdrawn, quantity 600"
jq -e '.exit_code == 0' "$T/run.json" >/dev/null || fail "summary: $(cat "$T/run.json")"
"$KINJECT" evidence export --state "$KJ_STATE" --job WO-2027-0315 --out "$T/ev.json"
"$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" --work-order "$T/in/WO.json" \
	--json >"$T/verify.json" 2>/dev/null || fail "verify: $(jq -c '.checks' "$T/verify.json")"
jq -e ".withdrawn == $wd and .ok == 600" "$T/verify.json" >/dev/null ||
	fail "verify --json: $(jq -c '{ok, withdrawn}' "$T/verify.json")"
echo "run_crash_commit ok ($wd withdrawn, $(wc -l <"$T/commit.txt") COMMITs)"
