#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make bench: QUALITY.md scenarios, one JSON line each, then a short table.
set -euo pipefail
: "${BUILD:?}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$BUILD/bench/pump" --sockets 1000 --devices 30000 --size 65536 | tee -a "$out"
"$BUILD/bench/pump" --sockets 1000 --devices 3000 --size 1048576 | tee -a "$out"
echo
printf '%-10s %8s %12s %12s %14s\n' scenario sockets fw_bytes devices/s bytes/s
sed -E 's/.*"scenario":"([^"]*)".*"sockets":([0-9]+).*"firmware_bytes":([0-9]+).*"devices_per_s":([0-9]+).*"bytes_per_s":([0-9]+).*/\1 \2 \3 \4 \5/' "$out" |
	while read -r s n f d b; do
		printf '%-10s %8s %12s %12s %14s\n' "$s" "$n" "$f" "$d" "$b"
	done
