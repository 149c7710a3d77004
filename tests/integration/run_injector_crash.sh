# SPDX-License-Identifier: Apache-2.0
# SPEC.md §2: an injector that dies mid-job has its in-flight devices
# recorded `internal'; the keeper starts a fresh injector and the job goes
# on to completion.  OUTCOMEs the dead injector had queued are journaled,
# but their COMMITs can no longer go: they are withdrawn (EVIDENCE.md §2),
# so every COMMIT a site saw is an ok record not withdrawn.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 300 8192

kj_run_bg --workers 1 --json-summary "$T/run.json"
kj_wait_listen
# Programming time keeps devices between OFFER and READBACK.
kj_sim --hwrev B --sockets 16 --devices 0 --program-delay-ms 150 --timeout 10 \
	--device-log "$T/dev1.jsonl" >/dev/null 2>&1 &
kj_track_pid $!
kj_wait_sql "select count(*) from records where result='ok'" 50 1200 0.05 ||
	fail "after 60 s: select count(*) from records where result='ok': $KJ_SQL_N, want >= 50"
kj_wait_sql "select count(*) from reservations where state='reserved' and attempt not in (select attempt from records where attempt is not null)" 1 6000 0.01 ||
	fail "after 60 s: select count(*) from reservations where state='reserved' and attempt not in (select attempt from records where attempt is not null): $KJ_SQL_N, want >= 1"
inj=$(pgrep -P "$KJ_RUN_PID" | head -1)
[ -n "$inj" ] || fail "no injector process under the keeper"
kill -9 "$inj"
sleep 0.5
pgrep -P "$KJ_RUN_PID" >/dev/null || fail "no fresh injector after the crash"
# The dead injector's sites lost their connections; the line reconnects.
kj_sim --hwrev B --sockets 16 --devices 0 --timeout 10 --device-log "$T/dev2.jsonl" \
	>/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "run exit $?: $(tail -5 "$T/run.err")"
ok=$(kj_sql "select count(*) from records where result='ok'")
wd=$(kj_sql "select count(*) from records where result='withdrawn'")
[ $((ok - wd)) = 300 ] || fail "job did not complete: $ok ok, $wd withdrawn"
kj_sql "select seq from records r where result='ok' and not exists
	(select 1 from records w where w.attempt = r.attempt and
	 w.result = 'withdrawn') order by seq" >"$T/ok.txt"
cat "$T/dev1.jsonl" "$T/dev2.jsonl" | grep '"outcome":"committed"' |
	grep -o '"leaf_index":[0-9]*' | cut -d: -f2 | sort -n >"$T/commit.txt"
extra=$(comm -13 "$T/ok.txt" "$T/commit.txt" | wc -l)
[ "$extra" = 0 ] || fail "$extra COMMIT(s) a site saw for records not ok or withdrawn"
# An ok whose COMMIT reached the injector as it died may not have reached
# its site (never the other way): at most one per connection.
missing=$(comm -23 "$T/ok.txt" "$T/commit.txt" | wc -l)
[ "$missing" -le 16 ] || fail "$missing ok records not withdrawn that no site saw COMMITted"
n=$(kj_sql "select count(*) from records where result='internal'")
[ "$n" -ge 1 ] || fail "in-flight devices of the dead injector were not recorded internal"
grep -q 'injector 0 .* died by signal 9' "$T/run.err" || fail "the crash was not logged"
grep -q '"injector_restarts":[1-9]' "$T/run.json" || fail "summary: $(cat "$T/run.json")"
echo "run_injector_crash ok ($n internal, $wd withdrawn, $missing COMMIT(s) lost with the injector)"
