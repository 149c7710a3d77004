# SPDX-License-Identifier: Apache-2.0
# Hostile sites (PROTOCOL.md, QUALITY.md): garbage, a 4 GiB length, a
# slow-loris HELLO, a half-open and a vanishing site run beside 63 honest
# sockets; the honest ones complete every device and their devices/s stays
# within 20 % of the same job's rate without the hostile ones.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 1200 16384 2000

kj_run_bg --hello-timeout 2
kj_wait_listen
kj_sim --hwrev B --sockets 63 --devices 500 --json-summary "$T/calm.json" \
	>"$T/calm.out" 2>&1 || fail "calm half: $(tail -3 "$T/calm.out")"
for mode in garbage huge-length slow-loris half-open vanish; do
	timeout -k 2 -s INT 8 "$KINJECT" sim --connect "unix:$KJ_SOCK" --hwrev B \
		--site "hostile-$mode" --sockets 1 --devices 0 --"$mode" \
		--timeout 10 >"$T/$mode.out" 2>&1 &
	kj_track_pid $!
done
sleep 0.5
rc=0
kj_sim --hwrev B --sockets 63 --devices 0 --json-summary "$T/storm.json" \
	>"$T/storm.out" 2>&1 || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 3 ] || fail "honest sockets: exit $rc: $(tail -3 "$T/storm.out")"
wait "$KJ_RUN_PID" || fail "run exit $?: $(tail -5 "$T/run.err")"

[ "$(kj_sql "select count(*) from records where result='ok'")" = 1200 ] ||
	fail "ok: $(kj_sql "select count(*) from records where result='ok'")"
calm=$(jq .devices_per_s "$T/calm.json")
storm=$(jq .devices_per_s "$T/storm.json")
echo "devices/s: calm $calm, with hostile sites $storm"
awk -v c="$calm" -v s="$storm" 'BEGIN { exit !(s >= 0.8 * c) }' ||
	fail "hostile sites slowed the honest ones: $storm < 80% of $calm"
# Pre-HELLO failures (garbage, 4 GiB, slow-loris) are counted, not
# recorded: only the sites that sent a valid HELLO have records.
n=$(kj_sql "select count(*) from records where cast(jcs as text) like
	'%\"site\":\"hostile-garbage\"%' or cast(jcs as text) like
	'%\"site\":\"hostile-huge-length\"%'")
[ "$n" = 0 ] || fail "pre-HELLO noise produced $n records"
[ "$(kj_sql "select count(*) from records where result='disconnected'")" -ge 1 ] ||
	fail "the vanished site's device was not recorded as disconnected"
echo "run_hostile ok"
