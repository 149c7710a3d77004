# SPDX-License-Identifier: Apache-2.0
# Issue 5 / QUALITY.md: kill -9 of `kinject run' mid-job, then the same
# command again: the job completes, no credential index is used twice,
# indexes reserved at the crash are burned as `interrupted', and the final
# evidence verifies.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 600 16384

kj_run_bg
kj_wait_listen
# Programming time keeps reservations open, so the kill catches some.
kj_sim --hwrev B --sockets 64 --devices 0 --timeout 5 --program-delay-ms 150 \
	>/dev/null 2>&1 &
sim=$!
kj_track_pid $sim
kj_wait_sql "select count(*) from records where result='ok'" 150 400 0.05 ||
	fail "only ${KJ_SQL_N:-0} devices before the crash"
# Devices move in waves; strike while a wave holds reservations.
# open: `reserved' and no record yet (the `done' state is written in bulk,
# docs/JOURNAL.md)
kj_wait_sql "select count(*) from reservations where state='reserved' and attempt not in (select attempt from records where attempt is not null)" 1 200 0.01 ||
	true
kill -9 "$KJ_RUN_PID"
wait "$KJ_RUN_PID" 2>/dev/null || true
kill "$sim" 2>/dev/null || true
wait "$sim" 2>/dev/null || true
sleep 0.3
pgrep -f "kinject run.*$KJ_STATE" >/dev/null && fail "an injector outlived its keeper"
open=$(kj_sql "select count(*) from reservations where state='reserved' and attempt not in (select attempt from records where attempt is not null)")
n=$(kj_sql "select count(*) from records where result='ok'")
echo "crashed with $n ok, $open reservations open"

kj_run_bg --json-summary "$T/run.json"
kj_wait_listen
kj_sim --hwrev B --sockets 64 --devices 0 --timeout 5 >/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "rerun exit $?: $(tail -5 "$T/run.err")"

# EVIDENCE.md §2: ok records beyond the last checkpoint at the crash are
# withdrawn on resume (their COMMIT never left); the quantity counts the
# others.
ok=$(kj_sql "select count(*) from records where result='ok'")
wd=$(kj_sql "select count(*) from records where result='withdrawn'")
[ $((ok - wd)) = 600 ] || fail "ok records: $ok, withdrawn $wd"
dups=$(kj_sql "select cred_index from records where cred_index is not null
	and result != 'withdrawn' group by cred_index having count(*) > 1")
[ -z "$dups" ] || fail "credential indexes used twice: $dups"
intr=$(kj_sql "select count(*) from records where result='interrupted'")
[ "$intr" -eq "$open" ] || fail "$open reserved at the crash, $intr interrupted"
[ "$open" -ge 1 ] || fail "no reservation was open at the crash: test proves nothing"
[ "$(kj_sql "select count(*) from reservations where state='reserved' and attempt not in (select attempt from records where attempt is not null)")" = 0 ] ||
	fail "reservations left open after the job"

"$KINJECT" evidence export --state "$KJ_STATE" --job WO-2027-0315 \
	--out "$T/evidence.json"
"$KINJECT" verify "$T/evidence.json" --ak "$KJ_STATE/ak.pem" \
	--work-order "$T/in/WO.json" >"$T/verify.out" ||
	fail "verify after crash: $(cat "$T/verify.out")"
echo "run_crash ok ($intr interrupted)"
