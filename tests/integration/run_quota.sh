# SPDX-License-Identifier: Apache-2.0
# The quantity is never exceeded, even with more sites than devices left:
# 64 sockets ask for 400 devices of a 50-device work order.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 50 4096

kj_run_bg
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
echo "run_quota ok"
