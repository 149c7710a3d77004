# SPDX-License-Identifier: Apache-2.0
# The quantity is never exceeded, even with more sites than devices left:
# 64 sockets ask for 400 devices of a 50-device work order.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 50 4096

# On a terminal (script(1) gives it one) run draws a live progress line.
rm -f "$KJ_SOCK"
script -qfec "$(printf '%q ' "$KINJECT" run $(kj_run_args))" "$T/tty.log" \
	>/dev/null 2>&1 &
KJ_RUN_PID=$!
kj_track_pid $KJ_RUN_PID
kj_wait_listen
rc=0
kj_sim --hwrev B --sockets 64 --devices 400 --expect quota \
	--json-summary "$T/sim.json" >"$T/sim.out" 2>&1 || rc=$?
[ "$rc" -eq 3 ] || fail "sim exit $rc, want 3 (the job ended): $(cat "$T/sim.out")"
wait "$KJ_RUN_PID" || fail "run exit $?"
[ "$(kj_sql "select count(*) from records where result='ok'")" = 50 ] ||
	fail "ok records: $(kj_sql "select count(*) from records where result='ok'")"
[ "$(kj_sql "select count(*) from reservations")" -le 50 ] ||
	fail "more reservations than the quantity with no failures"
grep -q '"committed":50' "$T/sim.json" || fail "sim saw: $(cat "$T/sim.json")"
grep -q $'\r' "$T/tty.log" && grep -aq '\[#*\.*\] *[0-9]*/50 ' "$T/tty.log" ||
	fail "no live progress line on the terminal: $(tail -c 300 "$T/tty.log")"
grep -aq 'job WO-2027-0315: completed' "$T/tty.log" || fail "no summary on the terminal"
echo "run_quota ok"
