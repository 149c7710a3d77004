# SPDX-License-Identifier: Apache-2.0
# Issue 5: 1,000 devices through 64 sockets: every device COMMITted exactly
# once, 1,000 `ok' records with distinct uids, serials and credential
# indexes, each site-computed digest matching; then the evidence verifies.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 1000 65536

kj_run_bg --json-summary "$T/run.json"
kj_wait_listen
kj_sim --hwrev B --sockets 64 --devices 1000 --device-log "$T/dev.jsonl" \
	>"$T/sim.out" || fail "sim: $(cat "$T/sim.out")"
wait "$KJ_RUN_PID" || fail "run exit $?: $(cat "$T/run.err")"

[ "$(wc -l <"$T/dev.jsonl")" -eq 1000 ] || fail "sim logged $(wc -l <"$T/dev.jsonl") devices"
grep -c '"outcome":"committed"' "$T/dev.jsonl" | grep -qx 1000 ||
	fail "not every device committed"
q() { kj_sql "select count(distinct $1) from records where kind='device' and result='ok'"; }
[ "$(q uid)" = 1000 ] || fail "distinct uids $(q uid)"
[ "$(q serial)" = 1000 ] || fail "distinct serials $(q serial)"
[ "$(q cred_index)" = 1000 ] || fail "distinct credential indexes $(q cred_index)"
[ "$(kj_sql "select count(*) from records where kind='device'")" = 1000 ] ||
	fail "device records are not exactly 1000"
[ "$(kj_sql "select count(*) from records where kind='job_end'")" = 1 ] ||
	fail "no job_end record"
grep -q '"outcome":"completed"' "$T/run.json" || fail "summary: $(cat "$T/run.json")"

# The site's digest is what the journal recorded for its uid.
uid=$(head -1 "$T/dev.jsonl" | sed 's/.*"uid":"\([0-9a-f]*\)".*/\1/')
dig=$(head -1 "$T/dev.jsonl" | sed 's/.*"digest":"\([0-9a-f]*\)".*/\1/')
kj_sql "select cast(jcs as text) from records where uid=x'$uid'" | grep -q "\"readback\":\"$dig\"" ||
	fail "journal readback for $uid differs from the site's digest"

"$KINJECT" evidence export --state "$KJ_STATE" --job WO-2027-0315 \
	--out "$T/evidence.json"
"$KINJECT" verify "$T/evidence.json" --ak "$KJ_STATE/ak.pem" \
	--work-order "$T/in/WO.json" >"$T/verify.out" ||
	fail "verify: $(cat "$T/verify.out")"
grep -q 'verdict: PASS' "$T/verify.out" || fail "no PASS verdict"

# A rerun of an ended job changes nothing and says so.
kj_run >"$T/again.out" 2>&1 || fail "rerun of an ended job: $(cat "$T/again.out")"
grep -q 'already ended' "$T/again.out" || fail "rerun did not say the job ended"
echo "run_e2e ok"
