#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# EVIDENCE.md §2, the injector's side: an injector dies with OUTCOMEs still
# queued for the keeper.  The keeper drains them (the devices' `ok' records
# are journaled) but their COMMITs have nowhere to go: each gets its
# `withdrawn' record, so the sites' COMMITs are exactly the ok records not
# withdrawn (the "76 ok vs 72 COMMITs" found before), and the job completes.
#
# No step is placed by time (it stopped the keeper "100 ms into a wave"
# before, and a slow commit-to-OFFER gap left nothing to drain).  Each
# step is held by SIGSTOP (the keeper, the injector, the sites) and
# released on what the sockets show (`ss -x': bytes a stopped process has
# not read stay in its receive queue, bytes written to a stopped reader
# count in the writer's send queue): four new sites' HELLOs written, their
# OFFERs (with the firmware) delivered, R >= 1 READBACKs written, then
# read by the injector and its OUTCOMEs queued for the stopped keeper
# (the injector back in io_uring_enter); the injector killed, its end of
# the keeper channel released; only then does the keeper go on.  Those R
# devices must be `ok', then `withdrawn'; with a keeper that does not
# drain (treating POLLHUP as death before reading), they are `internal'
# and the test fails.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
N=200 FW=4096 W=4
kj_job_setup $N $FW

# Every stopped process is continued on any exit (a stopped process
# ignores kj_cleanup's SIGTERM until then).
held=()
thaw() { [ ${#held[@]} -eq 0 ] || kill -CONT "${held[@]}" 2>/dev/null || true; }
trap 'thaw; kj_cleanup' EXIT
stop() { held+=("$@"); kill -STOP "$@"; }
cont() { kill -CONT "$@"; }

# socks PID: "RECVQ SENDQ" of each of PID's unix stream sockets.
socks() {
	ss -xpn 2>/dev/null |
		awk -v p="pid=$1," '$1 == "u_str" && index($0, p) { print $3, $4 }'
}
# until_ok DESC CMD...: poll CMD until it holds (60 s at most).
until_ok() {
	local desc=$1 end=$((SECONDS + 60))
	shift
	until "$@"; do
		[ $SECONDS -lt $end ] ||
			fail "after 60 s: $desc (sites: $(socks "$sim2" | tr '\n' ';'))"
		sleep 0.01
	done
}
# all_socks PID AWK-COND: all W of PID's sockets satisfy COND ($1 recv-q,
# $2 send-q).
all_socks() {
	socks "$1" | awk "$2 { n++ } END { exit !(n == $W) }"
}
# The bytes queued for the keeper on its channels (its ends of the
# injectors' seqpacket pairs).
kq() {
	ss -xpn 2>/dev/null | grep "pid=$KJ_RUN_PID," |
		awk '$1 == "u_seq" { n += $3 } END { print n + 0 }'
}
# The injector waits in io_uring_enter (426): its loop turn is done, what
# it had to send is sent.
inj_idle() {
	[ "$(awk '{ print $3 }' "/proc/$inj/stat" 2>/dev/null)" = S ] &&
		[ "$(cut -d' ' -f1 "/proc/$inj/syscall" 2>/dev/null)" = 426 ]
}

kj_run_bg --workers 1
kj_wait_listen
# The line: 16 sites, 200 ms of programming each.
# (The sims are started without a subshell: $! is the process stopped.)
sim() { exec "$KINJECT" sim --connect "unix:$KJ_SOCK" --hwrev B "$@"; }
(sim --sockets 16 --devices 0 --program-delay-ms 200 --timeout 60 \
	--device-log "$T/dev1.jsonl" >/dev/null 2>&1) &
sim1=$!
kj_track_pid $sim1
kj_wait_sql "select count(*) from records where result='ok'" 30 1200 0.05 ||
	fail "after 60 s: select count(*) from records where result='ok': $KJ_SQL_N, want >= 30"
# The injector by its entry point: no other child of the keeper may be
# taken for it (the kill below must land on the process holding the
# devices in flight).
inj=$(pgrep -P "$KJ_RUN_PID" -f " __injector " || true)
[ -n "$inj" ] && [ "$(wc -w <<<"$inj")" = 1 ] ||
	fail "not one injector process under the keeper: '$inj' (children: $(pgrep -a -P "$KJ_RUN_PID" | tr '\n' ';'))"

# The line's sites hold still; the appliance holds still; W new sites
# connect and write their HELLOs, which wait unread (the injector is
# stopped): each of their sockets has bytes in its send queue.
stop $sim1 "$KJ_RUN_PID" "$inj"
(sim --sockets $W --devices 0 --uid-seed 4242 --timeout 60 \
	--device-log "$T/dev2.jsonl" >/dev/null 2>&1) &
sim2=$!
kj_track_pid $sim2
until_ok "the $W new sites' HELLOs written" all_socks $sim2 '$2 > 0'
stop $sim2
# The appliance admits them: each site's OFFER and DATA (the firmware)
# wait unread in its receive queue.
cont "$KJ_RUN_PID" "$inj"
until_ok "the $W sites' OFFERs delivered" all_socks $sim2 "\$1 >= $FW"
# The keeper stops reading; the injector finishes its turn and stops.
kill -STOP "$KJ_RUN_PID"
until_ok "the injector idle" inj_idle
kill -STOP "$inj"
# The sites program and write their READBACKs, unread by the injector.
# R of them at least: now and then `kinject sim' leaves a site that read
# its whole OFFER without a READBACK after the SIGCONT (its device ends
# `internal' with the injector; not what this test is about).
cont $sim2
readbacks() { socks $sim2 | awk '$2 > 0 { n++ } END { print n + 0 }'; }
until_ok "the sites' READBACKs written" \
	eval 'all_socks $sim2 "\$1 == 0" && [ "$(readbacks)" -ge 1 ]'
R=$(readbacks)
q0=$(kq)
# The injector reads them and queues the OUTCOMEs for the stopped keeper.
cont "$inj"
outcomes_queued() {
	all_socks $sim2 '$2 == 0' && [ "$(kq)" -gt "$q0" ] && inj_idle
}
until_ok "the READBACKs read and OUTCOMEs queued ($q0 bytes before)" \
	outcomes_queued
queued=$(kq)
# The injector's end of the keeper channel (its socket's inode).
ch=$(ss -xpn 2>/dev/null |
	awk -v p="pid=$inj," '$1 == "u_seq" && index($0, p) { print $6 }' |
	tr '\n' ' ')
[ -n "$ch" ] || fail "no keeper channel of injector $inj"
kill -9 "$inj" || fail "kill -9 of injector $inj failed"
# Dead before the keeper goes on: its end of the channel released, so the
# keeper reads the queued OUTCOMEs, then EOF.  A zombie is not enough:
# its io_uring, torn down after the exit, still holds the socket a while,
# and meanwhile the keeper's sends to it succeed.
ch_released() {
	! ss -xn 2>/dev/null | awk -v c="$ch" \
		'$1 == "u_seq" && index(" " c " ", " " $6 " ") { f = 1 }
		 END { exit !f }'
}
until_ok "injector $inj's keeper channel ($ch) released" ch_released
cont "$KJ_RUN_PID" $sim1
for s in $sim1 $sim2; do
	for i in $(seq 200); do kill -0 "$s" 2>/dev/null || break; sleep 0.05; done
	kill -INT "$s" 2>/dev/null || true
	wait "$s" 2>/dev/null || true
done
kj_sim --hwrev B --sockets 16 --devices 0 --timeout 10 --device-log "$T/dev3.jsonl" \
	>/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "run exit $?: $(tail -5 "$T/run.err")"

# The R devices whose OUTCOMEs were queued: ok, then withdrawn.
uid2="hex(uid) like '0000000000001092%'"
wd2=$(kj_sql "select count(*) from records where result='withdrawn' and $uid2")
ok2=$(kj_sql "select count(*) from records where result='ok' and $uid2")
[ "$wd2" -ge "$R" ] && [ "$ok2" = "$wd2" ] ||
	fail "the $R drained OUTCOMEs: $ok2 ok, $wd2 withdrawn, want $R each: $(kj_sql "select result, count(*) from records where $uid2 group by 1" | tr "\n" " "); injector $inj, $queued bytes queued; $(grep -v "measured\|clock run\|progress" "$T/run.err" | tail -8)"
wd=$(kj_sql "select count(*) from records where result='withdrawn'")
ok=$(kj_sql "select count(*) from records where result='ok'")
[ $((ok - wd)) = $N ] || fail "job did not complete: $ok ok, $wd withdrawn"
kj_sql "select seq from records r where result='ok' and not exists
	(select 1 from records w where w.attempt = r.attempt and
	 w.result = 'withdrawn') order by seq" >"$T/ok.txt"
cat "$T"/dev[123].jsonl | grep '"outcome":"committed"' |
	grep -o '"leaf_index":[0-9]*' | cut -d: -f2 | sort -n >"$T/commit.txt"
cmp -s "$T/ok.txt" "$T/commit.txt" ||
	fail "sites saw $(wc -l <"$T/commit.txt") COMMITs, $(wc -l <"$T/ok.txt") ok records not withdrawn: $(diff "$T/ok.txt" "$T/commit.txt" | head -5)"
echo "run_injector_drain ok ($wd withdrawn, $wd2 of them the held sites' ($R READBACKs held), $(wc -l <"$T/commit.txt") COMMITs)"
