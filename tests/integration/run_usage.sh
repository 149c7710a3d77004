# SPDX-License-Identifier: Apache-2.0
# kinject run: usage errors exit 2 naming the flag; bad inputs exit 1
# naming the file, and leave the state dir (the ceremony's journal
# included) as it was.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"

rc=0; "$KINJECT" run 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- '--work-order is required' "$T/err" || fail "no flags: $rc $(cat "$T/err")"
rc=0; "$KINJECT" run --frobnicate 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--frobnicate" "$T/err" || fail "unknown flag"
rc=0; "$KINJECT" run --max-connections ten 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--max-connections: \`ten'" "$T/err" || fail "bad number: $(cat "$T/err")"
for f in rate:0:100000 rate:100001:100000 burst:0:65536 burst:65537:65536; do
	set -- $(tr : ' ' <<<"$f")
	rc=0; "$KINJECT" run --tls-sign-$1 $2 2>"$T/err" || rc=$?
	[ "$rc" -eq 2 ] && grep -q -- "--tls-sign-$1: \`$2' is out of range 1..$3" \
		"$T/err" || fail "--tls-sign-$1 $2: exit $rc: $(cat "$T/err")"
done
"$KINJECT" run --help >"$T/help"
grep -A1 -- '--tls-sign-rate N' "$T/help" | grep -q 'default 200' &&
	grep -A1 -- '--tls-sign-burst N' "$T/help" | grep -q 'default 4096' ||
	fail "run --help lacks the TLS signing limit"
rc=0; "$KINJECT" run --listen tcp:192.0.2.1:9000 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] && grep -qi 'TLS' "$T/err" || fail "non-loopback TCP: $(cat "$T/err")"

kj_job_setup 10 1024
printf 'x' >>"$T/in/WO.json"
state_sum() { (cd "$KJ_STATE" && find . -type f | sort | xargs sha256sum); }
state_sum >"$T/state.before"
rc=0; kj_run 2>"$T/err" >/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "tampered work order exit $rc"
grep -q 'WO.json' "$T/err" || fail "error does not name WO.json: $(cat "$T/err")"
state_sum | cmp -s - "$T/state.before" || fail "a refused job changed the state dir"
[ "$(kj_sql 'select count(*) from records')" = 0 ] || fail "a refused job left records"
echo "run_usage ok"
