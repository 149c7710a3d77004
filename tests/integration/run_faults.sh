# SPDX-License-Identifier: Apache-2.0
# ABORT codes provoked by sites and recorded with their result
# (PROTOCOL.md): READBACK, LOCKED_OUT, DUPLICATE, site ABORT, TIMEOUT,
# UNAUTHORIZED; a failed attempt's credential is burned, never reoffered.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 300 4096 800

cat >"$T/sites.json" <<'J'
{"kinject_sites": 1, "sites": {"line1": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
 30, 31], "slow": [0, 1]}}
J
kj_run_bg --sites "$T/sites.json" --program-timeout 1
kj_wait_listen
# Two devices too slow for the programming limit.
timeout -k 2 -s INT 3 "$KINJECT" sim --connect "unix:$KJ_SOCK" --hwrev B \
	--site slow --sockets 2 --devices 0 --program-delay-ms 2500 \
	--expect timeout --timeout 10 >"$T/slow.out" 2>&1 &
slow=$!
kj_track_pid $slow
# A site that is not in --sites.
timeout -k 2 -s INT 2 "$KINJECT" sim --connect "unix:$KJ_SOCK" --hwrev B \
	--site intruder --sockets 1 --devices 0 --expect unauthorized \
	--timeout 10 >/dev/null 2>&1 &
intr=$!
kj_track_pid $intr
sleep 3.5
kj_sim --hwrev B --site line1 --sockets 32 --devices 0 --seed 7 \
	--bad-readback-rate 0.04 --wrong-hwrev-rate 0.04 --duplicate-rate 0.04 \
	--site-abort-rate 0.04 >"$T/sim.out" 2>&1 || {
	rc=$?; [ $rc -eq 3 ] || fail "sim exit $rc: $(tail -5 "$T/sim.out")"; }
wait "$KJ_RUN_PID" || fail "run exit $?: $(tail -5 "$T/run.err")"

for r in readback locked_out duplicate site_abort timeout unauthorized; do
	n=$(kj_sql "select count(*) from records where result='$r'")
	[ "$n" -ge 1 ] || fail "no '$r' record"
	echo "$r: $n"
done
[ "$(kj_sql "select count(*) from records where result='ok'")" = 300 ] || fail "ok != 300"
kj_sql "select cast(jcs as text) from records where result='site_abort' limit 1" |
	grep -q '"site_code":7' || fail "site_abort record lacks the site's code"
# Refusals before OFFER carry no credential; failures after OFFER burn one.
[ "$(kj_sql "select count(*) from records where result in
	('locked_out','duplicate','unauthorized') and cred_index is not null")" = 0 ] ||
	fail "a refusal before OFFER took a credential"
dups=$(kj_sql "select cred_index from records where cred_index is not null
	group by cred_index having count(*) > 1")
[ -z "$dups" ] || fail "a burned credential was offered again: $dups"
echo "run_faults ok"
