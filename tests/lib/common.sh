# SPDX-License-Identifier: Apache-2.0
# Sourced by integration tests: temp dir, failure helpers, cleanup of every
# process a test started (register with kj_track_pid).
set -euo pipefail
: "${KINJECT:?KINJECT must point to the kinject binary}"
KJ_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T=$(mktemp -d /tmp/kinject-test.XXXXXX)
KJ_PIDS=()

kj_track_pid() { KJ_PIDS+=("$1"); }

kj_cleanup() {
	local p
	for p in "${KJ_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${KJ_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap kj_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_fail "<substring of stderr>" cmd...: command must exit non-zero and
# its stderr must name the problem.
expect_fail() {
	local want=$1; shift
	local rc=0
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -ne 0 ] || fail "expected failure: $*"
	grep -qF -- "$want" "$T/err" ||
		fail "stderr of '$*' lacks '$want': $(cat "$T/err")"
	echo "ok: refused with '$want'"
}
