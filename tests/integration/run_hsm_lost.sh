# SPDX-License-Identifier: Apache-2.0
# QUALITY.md faults, issue 11: the HSM lost mid-job.  In issue mode the
# keeper signs every device's certificate with the issuing CA's key in the
# HSM; here the token's module (tests/lib/p11fault.c in front of SoftHSM2)
# starts answering as a pulled token (CKR_DEVICE_REMOVED,
# CKR_TOKEN_NOT_PRESENT) mid-job.  The keeper stops issuing: the devices
# that needed the HSM get ABORT INTERNAL and `internal' records, one
# message names the HSM with a hint, the run ends resumable (exit 1,
# summary "HSM lost (resumable)"), no COMMIT without its ok record.  A
# resume while the token is still gone is refused and writes nothing;
# with the token back the same command completes the quantity, no
# credential is used twice, `kinject audit verify' and `kinject verify'
# pass.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
QTY=300
KJ_CREDS_NOKEY=1 KJ_WO_EXTRA='"credential_mode": "issue"' \
	kj_job_setup $QTY 4096 $((QTY + 200))
kj_issuing_ca "$KJ_STATE" "$T" || fail "issuing CA"

# The fault module, in front of the real one.
${CC:-cc} -shared -fPIC -std=gnu11 -Wall -Wextra -Werror \
	$(pkg-config --cflags p11-kit-1) -o "$T/p11fault.so" \
	"$KJ_TESTS/lib/p11fault.c" -ldl || fail "building p11fault.so"
export KJ_P11FAULT_MODULE=$KJ_HSM_MODULE KJ_P11FAULT_TRIGGER=$T/token-pulled
KJ_HSM_URI_P11KIT="$KJ_HSM_URI_P11KIT?module-path=$T/p11fault.so"
line() { # DEVICE_LOG: the sites, until the run closes their connections
	kj_sim --hwrev B --sockets 16 --devices 0 --timeout 20 \
		--cred-mode issue --issuing-ca "$T/issuing.pem" \
		--program-delay-ms "${2:-20}" --device-log "$1" \
		>/dev/null 2>&1 &
	sim=$!
	kj_track_pid $sim
}
ok_count() { kj_sql "select count(*) from records where result='ok'" 2>/dev/null || echo 0; }

kj_run_bg --json-summary "$T/sum1.json"
kj_wait_listen
line "$T/dev1.jsonl"
until [ "$(ok_count)" -ge 60 ]; do
	kill -0 "$KJ_RUN_PID" 2>/dev/null || fail "run ended early: $(tail -3 "$T/run.err")"
	sleep 0.05
done
touch "$KJ_P11FAULT_TRIGGER"
start=$(date +%s)
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ $rc -eq 1 ] || fail "HSM lost: exit $rc, want 1: $(tail -5 "$T/run.err")"
[ $(($(date +%s) - start)) -lt 60 ] || fail "the run took too long to stop"
wait "$sim" 2>/dev/null || true
grep -q '"outcome":"HSM lost (resumable)"' "$T/sum1.json" ||
	fail "summary: $(cat "$T/sum1.json")"
# One message names the HSM (its URI) and says what to do.
msg=$(grep -F "module-path=$T/p11fault.so" "$T/run.err" |
	grep "run the same command again" || true)
[ "$(printf '%s\n' "$msg" | grep -c .)" = 1 ] ||
	fail "want one message naming the HSM with a hint: $(grep -v '^progress' "$T/run.err" | tail -8)"
grep -q "is the token" <<<"$msg" || fail "no hint in: $msg"
echo "ok: stopped: $msg"

# The devices that needed the HSM: ABORT INTERNAL, recorded `internal'.
burned=$(kj_sql "select count(*) from records where result='internal' and cred_index is not null")
refused=$(kj_sql "select count(*) from records where result='internal' and cred_index is null")
[ "$burned" -ge 1 ] || fail "no device recorded internal at the HSM's loss"
kj_sql "select hex(uid) from records where result='internal'" | tr 'A-F' 'a-f' |
	sort >"$T/internal.txt"
grep '"outcome":"abort_internal"' "$T/dev1.jsonl" |
	sed -n 's/.*"uid":"\([0-9a-f]*\)".*/\1/p' | sort >"$T/aborted.txt"
[ -z "$(comm -23 "$T/internal.txt" "$T/aborted.txt")" ] ||
	fail "internal records without ABORT INTERNAL at the site: $(comm -23 "$T/internal.txt" "$T/aborted.txt" | head -3)"
# No COMMIT without its ok record, and no ok record without the COMMIT.
commits1=$(grep -c '"outcome":"committed"' "$T/dev1.jsonl" || true)
[ "$commits1" = "$(ok_count)" ] ||
	fail "sites saw $commits1 COMMITs, the journal has $(ok_count) ok"
echo "ok: HSM lost after $commits1 devices: $burned credential(s) burned, $refused HELLO(s) refused, each told ABORT INTERNAL"

# Still gone: the resume is refused before it writes anything.
sum() { find "$KJ_STATE" -type f -print0 | sort -z | xargs -0 sha256sum; }
sum >"$T/before"
rc=0; kj_run >"$T/out2" 2>"$T/err2" || rc=$?
[ $rc -eq 1 ] || fail "resume without the token: exit $rc: $(cat "$T/err2")"
grep -q "no token matches" "$T/err2" || fail "resume without the token: $(cat "$T/err2")"
sum | cmp -s - "$T/before" || fail "a refused resume changed the state dir"
echo "ok: resume without the token refused: $(grep -m1 "no token" "$T/err2")"

# The token is back: the same command completes the job.
rm -f "$KJ_P11FAULT_TRIGGER"
kj_run_bg
kj_wait_listen
line "$T/dev2.jsonl" 0
wait "$KJ_RUN_PID" || fail "resume with the token back: exit $?: $(tail -5 "$T/run.err")"
wait "$sim" 2>/dev/null || true
[ "$(ok_count)" = $QTY ] || fail "job did not complete: $(ok_count) ok"
[ "$(kj_sql "select count(*) from records where kind='job_end'")" = 1 ] || fail "no job_end"
[ "$(kj_sql "select count(distinct json_extract(cast(jcs as text), '\$.cert_sha256'))
	from records where result='ok'")" = $QTY ] || fail "ok records without $QTY distinct certificates"
commits=$(cat "$T/dev1.jsonl" "$T/dev2.jsonl" | grep -c '"outcome":"committed"')
[ "$commits" = $QTY ] || fail "the sites saw $commits COMMITs, the quantity is $QTY"
dups=$(kj_sql "select cred_index from records where cred_index is not null
	group by cred_index having count(*) > 1")
[ -z "$dups" ] || fail "credential indexes used twice: $dups"
dups=$(kj_sql "select json_extract(cast(jcs as text), '\$.cert_sha256') c
	from records where result='ok' group by c having count(*) > 1")
[ -z "$dups" ] || fail "certificates issued twice: $dups"
"$KINJECT" audit verify --state "$KJ_STATE" >"$T/audit.out" 2>&1 ||
	fail "audit verify: $(tail -5 "$T/audit.out")"
"$KINJECT" evidence export --state "$KJ_STATE" --job WO-2027-0315 \
	--out "$T/ev.json" 2>"$T/export.err" || fail "export: $(cat "$T/export.err")"
"$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" \
	--work-order "$T/in/WO.json" >"$T/verify.out" 2>&1 ||
	fail "verify: $(tail -5 "$T/verify.out")"
echo "run_hsm_lost ok ($QTY devices, $commits1 before the loss, $burned burned)"
