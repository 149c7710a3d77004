#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make check-image: two `make image' builds, in two directories at two
# times under two umasks, give the same initramfs, UKI, ESP and golden.json
# bytes.
#   KVER=... tests/vm/reproducible.sh KINJECT KINJECT_KO
set -euo pipefail
: "${KVER:?}"
top=$(cd "$(dirname "$0")/../.." && pwd)
kinject=$1 ko=$2
T=$(mktemp -d /tmp/kinject-image.XXXXXX)
trap 'rm -rf "$T"' EXIT
(umask 022 && "$top/initramfs/build.sh" "$T/a" "$kinject" "$ko" "$KVER") \
	>/dev/null
# A copy of the inputs with other mtimes, from another directory.
mkdir -p "$T/in"
cp "$kinject" "$ko" "$T/in/"
touch -d '2001-02-03 04:05:06' "$T/in/"*
(umask 077 && cd "$T" && "$top/initramfs/build.sh" "$T/b" \
	"$T/in/$(basename "$kinject")" "$T/in/$(basename "$ko")" "$KVER") \
	>/dev/null
for f in initramfs.cpio.gz kinject.efi esp.img golden.json; do
	cmp "$T/a/$f" "$T/b/$f" ||
		{ echo "check-image: $f differs between two builds" >&2; exit 1; }
done
echo "ok: two image builds are byte-identical (esp.img $(sha256sum <"$T/a/esp.img" | cut -c1-16)...)"
