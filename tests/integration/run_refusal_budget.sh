# SPDX-License-Identifier: Apache-2.0
# Issue 11 item 10: one connection cannot append refusal records without
# end.  A site whose hardware revision is locked out gets LOCKED_OUT for
# each HELLO on its connection; after KJ_REFUSAL_BUDGET (32) in a row the
# appliance closes the connection, counts it (refusal_closed in the
# summary) and logs it rate-limited.  The sim connects again each time:
# no connection carries more than 32 refusals.  Honest sites are served
# meanwhile.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 50 4096

kj_run_bg --json-summary "$T/sum.json"
kj_wait_listen
timeout 3 "$KINJECT" sim --connect "unix:$KJ_SOCK" --hwrev Z --sockets 1 \
	--devices 0 --expect locked_out >"$T/bad.out" 2>&1 || true
kj_sim --hwrev B --sockets 4 --devices 50 >/dev/null 2>&1 ||
	fail "honest sites next to the refused one: $?"
wait "$KJ_RUN_PID" || fail "run exit $?: $(tail -3 "$T/run.err")"
n=$(kj_sql "select count(*) from records where result='locked_out'")
closed=$(sed -n 's/.*"refusal_closed":\([0-9]*\),.*/\1/p' "$T/sum.json")
[ -n "$closed" ] && [ "$closed" -ge 1 ] ||
	fail "summary does not count closed connections: $(cat "$T/sum.json")"
# Every closed connection carried exactly 32; the last one, open when
# the sim stopped, fewer.
[ "$n" -ge $((32 * closed)) ] && [ "$n" -lt $((32 * (closed + 1))) ] ||
	fail "$n locked_out records over $closed closed connections"
lines=$(grep -c '32 refusals in a row (last locked_out): closing it' "$T/run.err")
[ "$lines" -ge 1 ] || fail "no log line for a closed connection"
[ "$closed" -le 20 ] || [ "$lines" -lt "$closed" ] ||
	fail "$lines log lines for $closed closures: not rate-limited"
echo "run_refusal_budget ok: $closed connections closed, $n refusals, $lines log lines"
