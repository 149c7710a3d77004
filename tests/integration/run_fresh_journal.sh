# SPDX-License-Identifier: Apache-2.0
# A second journal on a TPM whose NV counter is in use (issue 12 item 5,
# EVIDENCE.md §4): the appliance's state copied before its first job, the
# job run on the original, then the same work order on the copy.  Without
# the officers' approval the copy is refused (nothing journaled, no
# checkpoint), naming the ceremony request; once M officers apply
# reset-journal it runs, and its first checkpoint names the counter value
# it started from.  Rename-and-rerun cannot make the same devices twice
# unseen.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 20 4096

# The state dir as the ceremony left it: no job, no checkpoint.
cp -a "$KJ_STATE" "$T/copy"

kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 4 --devices 0 --timeout 5 >/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "first job: exit $?: $(tail -5 "$T/run.err")"
[ "$(kj_sql "select count(*) from checkpoints")" -gt 0 ] ||
	fail "the first job took no checkpoint"

# The copy, after an orderly TPM restart (a second boot: its PCRs start
# afresh, the counter stays): refused, naming the ceremony request; it
# journals nothing.
tpm2_shutdown -T "$KJ_SWTPM_TCTI" || fail "tpm2_shutdown"
kj_swtpm_stop "$T/tpm"
kj_swtpm_start "$T/tpm" >/dev/null || fail "swtpm restart"
first=$KJ_STATE
KJ_STATE=$T/copy
before=$(kj_sql "select count(*) from records")
rc=0; kj_run >/dev/null 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || fail "a fresh journal on a used counter: exit $rc, want 1"
grep -q 'ceremony request reset-journal' "$T/err" ||
	fail "the refusal does not name the ceremony request: $(cat "$T/err")"
[ "$(kj_sql "select count(*) from records")" = "$before" ] ||
	fail "the refused run journaled records"
[ "$(kj_sql "select count(*) from checkpoints")" = 0 ] ||
	fail "the refused run took a checkpoint"

# One officer's signature is not an approval (2 of 3).
"$KINJECT" ceremony request reset-journal --state "$KJ_STATE" \
	--reason "second line, same TPM" --out "$T/reset.req" ||
	fail "request reset-journal"
kj_officer_sign "$T/reset.req" "$T/officers" 1 || fail "sign 1"
rc=0
"$KINJECT" ceremony apply --state "$KJ_STATE" "$T/reset.req" \
	"$T/reset.req.1.sig" >/dev/null 2>"$T/err" || rc=$?
[ $rc -ne 0 ] || fail "reset-journal applied with one signature"
kj_sign_apply "$KJ_STATE" "$T/reset.req" "$T/officers" 2 >/dev/null ||
	fail "apply reset-journal with 2 of 3"

kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 4 --devices 0 --timeout 5 >/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "approved fresh journal: exit $?: $(tail -5 "$T/run.err")"
[ "$(kj_sql "select count(*) from records where result='ok'")" = 20 ] ||
	fail "the approved journal did not complete"
start=$(kj_sql "select value from meta where key='checkpoint_nv_start'")
first_max=$(sqlite3 -readonly "$first/journal.db" \
	"select max(nv_counter) from checkpoints")
[ -n "$start" ] && [ "$start" -ge "$first_max" ] ||
	fail "the fresh journal's start value '$start' is not past the first journal's last counter $first_max"
echo "run_fresh_journal ok"
