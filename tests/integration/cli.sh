# SPDX-License-Identifier: Apache-2.0
# The dispatcher: help, unknown commands, exit codes.
. "$(dirname "$0")/../lib/common.sh"

"$KINJECT" --help | grep '^Usage: kinject' >/dev/null || fail "--help"
"$KINJECT" help version | grep '^Usage: kinject version' >/dev/null || fail "help version"
"$KINJECT" version --help | grep '^Usage: kinject version' >/dev/null || fail "version --help"
"$KINJECT" version | grep '^kinject ' >/dev/null || fail "version"

rc=0; "$KINJECT" frobnicate 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] || fail "unknown command exit $rc, want 2"
grep -q "unknown command \`frobnicate'" "$T/err" || fail "unknown command message"

rc=0; "$KINJECT" 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "no command exit $rc, want 2"

rc=0; "$KINJECT" help nosuch 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "help nosuch exit $rc, want 2"

# Only commands that exist are listed: each listed one must answer --help.
for c in $("$KINJECT" --help | awk '/^Commands:/{f=1;next} f&&/^  /{print $1}'); do
	[ "$c" = help ] && continue
	"$KINJECT" "$c" --help >/dev/null || fail "listed command $c has no --help"
done
echo "cli ok"
