# SPDX-License-Identifier: Apache-2.0
# SPEC.md §2: an injector that dies mid-job has its in-flight devices
# recorded `internal'; the keeper starts a fresh injector and the job goes
# on to completion.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 300 8192

kj_run_bg --workers 1 --json-summary "$T/run.json"
kj_wait_listen
# Programming time keeps devices between OFFER and READBACK.
kj_sim --hwrev B --sockets 16 --devices 0 --program-delay-ms 150 --timeout 10 \
	>/dev/null 2>&1 &
kj_track_pid $!
until [ "$(kj_sql "select count(*) from records where result='ok'" 2>/dev/null || echo 0)" -ge 50 ]; do
	sleep 0.05
done
until [ "$(kj_sql "select count(*) from reservations where state='reserved'" 2>/dev/null || echo 0)" -ge 1 ]; do
	sleep 0.01
done
inj=$(pgrep -P "$KJ_RUN_PID" | head -1)
[ -n "$inj" ] || fail "no injector process under the keeper"
kill -9 "$inj"
sleep 0.5
pgrep -P "$KJ_RUN_PID" >/dev/null || fail "no fresh injector after the crash"
# The dead injector's sites lost their connections; the line reconnects.
kj_sim --hwrev B --sockets 16 --devices 0 --timeout 10 >/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "run exit $?: $(tail -5 "$T/run.err")"
[ "$(kj_sql "select count(*) from records where result='ok'")" = 300 ] || fail "job did not complete"
n=$(kj_sql "select count(*) from records where result='internal'")
[ "$n" -ge 1 ] || fail "in-flight devices of the dead injector were not recorded internal"
grep -q 'injector 0 .* died by signal 9' "$T/run.err" || fail "the crash was not logged"
grep -q '"injector_restarts":[1-9]' "$T/run.json" || fail "summary: $(cat "$T/run.json")"
echo "run_injector_crash ok ($n internal)"
