#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Run every tests/integration/*.sh with $KINJECT set; 77 = skip.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${KINJECT:?KINJECT must point to the kinject binary}"
export KINJECT
pass=0 fail=0 skip=0 failed=()
for t in "$here"/integration/*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	log=$(mktemp)
	start=$(date +%s)
	bash "$t" >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	case $rc in
	0) pass=$((pass + 1)); echo "PASS $name (${secs}s)" ;;
	77) skip=$((skip + 1)); echo "SKIP $name" ;;
	*) fail=$((fail + 1)); failed+=("$name"); echo "FAIL $name (exit $rc)"
	   tail -n 60 "$log" ;;
	esac
	rm -f "$log"
done
echo "integration: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
