#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make image: the appliance's boot disk and golden.json (docs/IMAGE.md).
#
#   initramfs/build.sh OUT_DIR KINJECT KINJECT_KO KVER
#
# Writes OUT_DIR/initramfs.cpio.gz, OUT_DIR/kinject.efi (a unified kernel
# image: systemd's EFI stub carrying Debian's kernel, the initramfs and the
# command line), OUT_DIR/esp.img (the EFI system partition the appliance
# boots, the UKI as \EFI\BOOT\BOOTX64.EFI) and OUT_DIR/golden.json with
# the PCR 13 digests and the boot chain's PCRs 4 and 9 computed from those
# bytes (initramfs/bootchain.py).  The same inputs give the same bytes:
# every file is copied into a fresh staging tree with fixed modes, owner
# 0:0 and mtime SOURCE_DATE_EPOCH (default 0), listed in C-locale order,
# archived by cpio --reproducible (newc, the inode numbers renumbered) and
# compressed by gzip -n (no name, no time); the UKI's COFF time stamp is
# SOURCE_DATE_EPOCH; the FAT file system has a fixed volume id and label,
# and its files and directories the time 1980-01-01 (FAT's first).
set -euo pipefail

[ $# -eq 4 ] || { echo "usage: $0 OUT_DIR KINJECT KINJECT_KO KVER" >&2; exit 2; }
out=$1 kinject=$2 ko=$3 kver=$4
top=$(cd "$(dirname "$0")/.." && pwd)
epoch=${SOURCE_DATE_EPOCH:-0}
busybox=${BUSYBOX:-/bin/busybox}
stub=${KJ_EFI_STUB:-/usr/lib/systemd/boot/efi/linuxx64.efi.stub}
vmlinuz=${KJ_VMLINUZ:-/boot/vmlinuz-$kver}
# The appliance's command line, fixed in the UKI (and measured: PCR 9).
cmdline="console=ttyS0 panic=-1 loglevel=6"
# The site disk's driver (the init reads the site's configuration from a
# virtio disk), in load order; Debian builds them as modules.
virtio_mods="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev
	virtio_pci virtio_blk"
# kTLS (the `tls' TCP ULP) for `--listen tls:' (docs/TLS.md) and the
# gcm(aes) its TLS_TX/TLS_RX ask the crypto API for, the generic code that
# every x86-64 CPU runs: the image has no modules.dep for the kernel to
# load them on demand, so the init does.
net_mods="gf128mul ghash-generic ctr gcm tls"
# Loaded after those by initramfs/cpu-modules, each only when the CPU has
# the flags named (/lib/modules/$KVER/boot.cpu), never failing the boot:
# aesni-intel (and the two it depends on) registers gcm(aes) at a higher
# priority than the generic template; its init refuses a CPU without
# `aes' (Debian's 6.1: it picks its AVX or AVX2 GCM code itself when the
# CPU has them, so `aes' is all it needs).
cpu_mods="aes:cryptd aes:crypto_simd aes:aesni-intel"
export LC_ALL=C

for f in "$kinject" "$ko" "$busybox" "$top/initramfs/init" "$vmlinuz" \
	"$top/initramfs/cpu-modules"; do
	[ -f "$f" ] || { echo "image: $f: missing (make all kmod;" \
		"busybox-static, linux-image-amd64: make deps)" >&2; exit 1; }
done
[ -f "$stub" ] || { echo "image: $stub: missing (systemd's EFI stub:" \
	"apt-get install systemd-boot-efi, or make deps)" >&2; exit 1; }
for t in objcopy mkfs.fat mcopy python3; do
	command -v $t >/dev/null || { echo "image: $t missing (binutils," \
		"dosfstools, mtools, python3: make deps)" >&2; exit 1; }
done
! ldd "$busybox" >/dev/null 2>&1 ||
	{ echo "image: $busybox is not static (apt-get install" \
		"busybox-static)" >&2; exit 1; }

mkdir -p "$out"
stage=$(mktemp -d "$out/stage.XXXXXX")
esp=$(mktemp -d "$out/esp.XXXXXX")
trap 'rm -rf "$stage" "$esp"' EXIT

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
# At their packaged paths (the SBOM finds their package); the init loads
# the paths listed in boot.order, in order, then those of boot.cpu
# ("FLAGS PATH" lines) whose CPU flags are there.
kmod_path() {
	local f
	f=$(find "/lib/modules/$kver/kernel/drivers" \
		"/lib/modules/$kver/kernel/crypto" \
		"/lib/modules/$kver/kernel/net" \
		"/lib/modules/$kver/kernel/arch/x86/crypto" -name "$1.ko" |
		head -1)
	[ -n "$f" ] || { echo "image: $1.ko not under /lib/modules/$kver" \
		"(linux-image-amd64)" >&2; return 1; }
	put "$f" "$f" 0644
	echo "$f"
}
for m in $virtio_mods $net_mods; do
	kmod_path "$m" || exit 1
done >"$stage/lib/modules/$kver/boot.order"
for m in $cpu_mods; do
	f=$(kmod_path "${m#*:}") || exit 1
	echo "${m%%:*} $f"
done >"$stage/lib/modules/$kver/boot.cpu"
chmod 0644 "$stage/lib/modules/$kver/boot.order" \
	"$stage/lib/modules/$kver/boot.cpu"
cp -R "$top/policy" "$stage/usr/share/kinject/policy"
put "$top/initramfs/init" /init 0755
put "$top/initramfs/site-install" /usr/lib/kinject/site-install 0755
put "$top/initramfs/cpu-modules" /usr/lib/kinject/cpu-modules 0755

find "$stage" -type d -exec chmod 0755 {} +
find "$stage/usr/share/kinject/policy" -type f -exec chmod 0644 {} +
find "$stage" -exec touch -h -d "@$epoch" {} +
(cd "$stage" && find . -mindepth 1 | sort |
	cpio -o -H newc --reproducible --owner=0:0 --quiet) |
	gzip -n -9 >"$out/initramfs.cpio.gz.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"

# The UKI: systemd's stub with the kernel, the initramfs and the command
# line (initramfs/bootchain.py uki: objcopy, then the time stamp).
python3 "$top/initramfs/bootchain.py" uki "$stub" "$vmlinuz" \
	"$out/initramfs.cpio.gz" "$cmdline" "$epoch" "$out/kinject.efi"

# The EFI system partition, as a whole-disk FAT file system (UEFI boots a
# disk without a partition table from its removable-media path).
mkdir -p "$esp/fs/EFI/BOOT"
cp "$out/kinject.efi" "$esp/fs/EFI/BOOT/BOOTX64.EFI"
find "$esp/fs" -exec touch -h -d '1980-01-01 00:00:00 UTC' {} +
kib=$(( ($(stat -c %s "$out/kinject.efi") / 1048576 + 2) * 1024 ))
rm -f "$out/esp.img.tmp"
mkfs.fat --invariant -i 4b494e4a -n KINJECT -C "$out/esp.img.tmp" "$kib" \
	>/dev/null
TZ=UTC mcopy -s -m -i "$out/esp.img.tmp" "$esp/fs/EFI" ::
mv "$out/esp.img.tmp" "$out/esp.img"

# EVIDENCE.md §6 item 8: the PCR 13 digests the image's code gives, and
# the PCRs 4 and 9 its boot gives (initramfs/bootchain.py).
sum() { sha256sum "$1" | cut -d' ' -f1; }
cat >"$out/golden.json.tmp" <<EOF
{"kinject_golden": 1,
 "measurements": {"kinject": ["$(sum "$stage/usr/bin/kinject")"],
                  "kinject.ko": ["$(sum "$stage/lib/modules/$kver/extra/kinject.ko")"]}}
EOF
python3 "$top/initramfs/bootchain.py" golden "$out/golden.json.tmp" \
	"$out/golden.json.tmp" "$out/kinject.efi"
mv "$out/golden.json.tmp" "$out/golden.json"
echo "image: $out/esp.img ($(stat -c %s "$out/esp.img") bytes), $out/golden.json"
