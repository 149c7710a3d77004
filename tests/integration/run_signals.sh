# SPDX-License-Identifier: Apache-2.0
# Issue 11 item 9: every terminating signal stops the job as SIGTERM does
# (HUP like TERM): the devices in flight finish, no reservation stays
# open, a final checkpoint covers every record, exit 3 (resumable).  A
# HUP or QUIT sent to the whole process group (a closed terminal, ^\)
# does not kill the injectors either.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 2000 8192 2100

ok_count() { kj_sql "select count(*) from records where result='ok'" 2>/dev/null || echo 0; }
for sig in HUP QUIT USR1 USR2 ALRM XCPU; do
	before=$(ok_count)
	# setsid: its own process group, so a group signal reaches only it.
	rm -f "$KJ_SOCK"
	setsid "$KINJECT" run $(kj_run_args) >"$T/run.out" 2>"$T/run.err" &
	KJ_RUN_PID=$!
	kj_track_pid $KJ_RUN_PID
	kj_wait_listen
	kj_sim --hwrev B --sockets 8 --devices 0 --timeout 5 >/dev/null 2>&1 &
	kj_track_pid $!
	until [ "$(ok_count)" -ge $((before + 20)) ]; do
		kill -0 "$KJ_RUN_PID" 2>/dev/null ||
			fail "SIG$sig: kinject run died: $(tail -3 "$T/run.err")"
		sleep 0.05
	done
	case $sig in
	HUP | QUIT) kill -s "$sig" -- "-$KJ_RUN_PID" ;; # the whole group
	*) kill -s "$sig" "$KJ_RUN_PID" ;;
	esac
	rc=0; wait "$KJ_RUN_PID" || rc=$?
	[ $rc -eq 3 ] || fail "SIG$sig: exit $rc, want 3: $(tail -3 "$T/run.err")"
	grep -q 'died by signal' "$T/run.err" &&
		fail "SIG$sig: an injector died: $(grep 'died by' "$T/run.err")"
	[ "$(kj_sql "select count(*) from reservations where state='reserved' and attempt not in (select attempt from records where attempt is not null)")" = 0 ] ||
		fail "SIG$sig: reservations left open"
	n=$(kj_sql "select count(*) from records")
	c=$(kj_sql "select max(tree_size) from checkpoints")
	[ "$c" = "$n" ] || fail "SIG$sig: last checkpoint covers $c of $n records"
	echo "ok: SIG$sig stopped the job (exit 3), checkpoint covers all $n records"
done
echo "run_signals ok"
