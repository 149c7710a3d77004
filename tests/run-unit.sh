#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Run cmocka test programs; exit 77 means "kernel lacks the feature: skip".
set -u
pass=0 fail=0 skip=0 failed=()
for t in "$@"; do
	name=$(basename "$t")
	out=$("$t" 2>&1)
	rc=$?
	case $rc in
	0) pass=$((pass + 1)); echo "PASS $name" ;;
	77) skip=$((skip + 1)); echo "SKIP $name" ;;
	*) fail=$((fail + 1)); failed+=("$name"); echo "FAIL $name (exit $rc)"
	   # cmocka's verdicts first: the tail may be all sanitizer report.
	   printf '%s\n' "$out" | grep -E -B2 -A4 '^\[  (FAILED|ERROR) +\]|Failure!|error: ' |
		head -n 60
	   echo "--- last lines:"
	   printf '%s\n' "$out" | tail -n 40 ;;
	esac
done
echo "unit: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
