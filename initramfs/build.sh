#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make image: the appliance initramfs and golden.json (docs/IMAGE.md).
#
#   initramfs/build.sh OUT_DIR KINJECT KINJECT_KO KVER
#
# Writes OUT_DIR/initramfs.cpio.gz and OUT_DIR/golden.json.  The same
# inputs give the same bytes: every file is copied into a fresh staging
# tree with fixed modes, owner 0:0 and mtime SOURCE_DATE_EPOCH (default 0),
# listed in C-locale order, archived by cpio --reproducible (newc, the
# inode numbers renumbered) and compressed by gzip -n (no name, no time).
set -euo pipefail

[ $# -eq 4 ] || { echo "usage: $0 OUT_DIR KINJECT KINJECT_KO KVER" >&2; exit 2; }
out=$1 kinject=$2 ko=$3 kver=$4
top=$(cd "$(dirname "$0")/.." && pwd)
epoch=${SOURCE_DATE_EPOCH:-0}
busybox=${BUSYBOX:-/bin/busybox}
export LC_ALL=C

for f in "$kinject" "$ko" "$busybox" "$top/initramfs/init"; do
	[ -f "$f" ] || { echo "image: $f: missing (make all kmod;" \
		"busybox-static: make deps)" >&2; exit 1; }
done
! ldd "$busybox" >/dev/null 2>&1 ||
	{ echo "image: $busybox is not static (apt-get install" \
		"busybox-static)" >&2; exit 1; }

mkdir -p "$out"
stage=$(mktemp -d "$out/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Copy one file to the same path under the stage, following links.
put() {
	local src=$1 dst=$stage$2 mode=$3
	mkdir -p "$(dirname "$dst")"
	cp -L "$src" "$dst"
	chmod "$mode" "$dst"
}

# A shared library and everything it needs, at the paths the loader uses.
put_libs() {
	local lib
	for lib in $(ldd "$@" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p;
		s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p' | sort -u); do
		[ -e "$stage$lib" ] || put "$lib" "$lib" 0755
	done
}

mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,run,etc/kinject,var/lib/kinject}
mkdir -p "$stage"/{usr/bin,usr/sbin,usr/share/kinject,lib/modules/"$kver"/extra}
put "$busybox" /bin/busybox 0755
for a in $("$busybox" --list-full); do
	[ -e "$stage/$a" ] || ln -s /bin/busybox "$stage/$a"
done

# kinject without its debug sections and build id: those name the build
# directory, and golden.json must not depend on where it was built.
objcopy --strip-debug --remove-section=.note.gnu.build-id \
	"$kinject" "$stage/usr/bin/kinject"
chmod 0755 "$stage/usr/bin/kinject"
put_libs "$kinject"
# tss2-tctildr dlopen()s the TCTI named by --tpm (device:/dev/tpmrm0).
tcti=$(ldconfig -p | sed -n 's/.*libtss2-tcti-device.so.0 .*=> //p' |
	head -1)
[ -n "$tcti" ] || { echo "image: libtss2-tcti-device.so.0 not found" \
	"(apt-get install libtss2-tcti-device0)" >&2; exit 1; }
put "$tcti" "$tcti" 0755
put_libs "$tcti"

put "$ko" /lib/modules/"$kver"/extra/kinject.ko 0644
cp -R "$top/policy" "$stage/usr/share/kinject/policy"
put "$top/initramfs/init" /init 0755

find "$stage" -type d -exec chmod 0755 {} +
find "$stage/usr/share/kinject/policy" -type f -exec chmod 0644 {} +
find "$stage" -exec touch -h -d "@$epoch" {} +
(cd "$stage" && find . -mindepth 1 | sort |
	cpio -o -H newc --reproducible --owner=0:0 --quiet) |
	gzip -n -9 >"$out/initramfs.cpio.gz.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"

# EVIDENCE.md §6 item 8: the PCR 13 digests the image's code gives.
sum() { sha256sum "$1" | cut -d' ' -f1; }
cat >"$out/golden.json.tmp" <<EOF
{"kinject_golden": 1,
 "measurements": {"kinject": ["$(sum "$stage/usr/bin/kinject")"],
                  "kinject.ko": ["$(sum "$stage/lib/modules/$kver/extra/kinject.ko")"]}}
EOF
mv "$out/golden.json.tmp" "$out/golden.json"
echo "image: $out/initramfs.cpio.gz ($(stat -c %s "$out/initramfs.cpio.gz") bytes), $out/golden.json"
