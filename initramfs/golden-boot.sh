#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The boot chain's golden values (docs/IMAGE.md, "Boot chain"): golden.json
# plus "pcrs" for one site's boot of the image.  make image cannot write
# them: PCR 9 covers the site's configuration archive and the kernel's
# command line, and PCR 4 the kernel as the firmware received it.
#
#   initramfs/golden-boot.sh GOLDEN_IN GOLDEN_OUT PCR4 LOAD_OPTIONS INITRD...
#
# PCR 9 is computed as Debian's EFI stub extends it: SHA-256 of the load
# options (UTF-16LE with the final NUL; under QEMU's -kernel OVMF passes
# the -append line followed by " initrd=initrd"), then SHA-256 of the
# initrd, every archive the kernel gets, concatenated in order.  PCR 4
# (hex) is given: recorded from a boot of the image (computing OVMF's
# value from the kernel file is not done: QEMU patches the kernel's setup
# header for -kernel before the firmware measures it).
set -euo pipefail

[ $# -ge 5 ] || {
	echo "usage: $0 GOLDEN_IN GOLDEN_OUT PCR4 LOAD_OPTIONS INITRD..." >&2
	exit 2
}
in=$1 out=$2 pcr4=$3 opts=$4
shift 4
[[ $pcr4 =~ ^[0-9a-fA-F]{64}$ ]] || {
	echo "$0: PCR4 '$pcr4': expected 64 hex digits" >&2
	exit 2
}
zero=$(printf '0%.0s' $(seq 64))
# SHA-256(PCR || DIGEST), both hex.
extend() { printf '%s%s' "$1" "$2" | xxd -r -p | sha256sum | cut -d' ' -f1; }
od=$( (printf '%s' "$opts" | iconv -f UTF-8 -t UTF-16LE; printf '\0\0') |
	sha256sum | cut -d' ' -f1)
id=$(cat "$@" | sha256sum | cut -d' ' -f1)
pcr9=$(extend "$(extend "$zero" "$od")" "$id")
pcr4=$(printf '%s' "$pcr4" | tr 'A-F' 'a-f')
jq --arg p4 "$pcr4" --arg p9 "$pcr9" '.pcrs = {"4": [$p4], "9": [$p9]}' \
	"$in" >"$out.tmp"
mv "$out.tmp" "$out"
echo "$pcr9"
