#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make sbom' on the appliance image (SPEC.md §6, issue 15): every regular
# file of the initramfs that a Debian package installed, and kinject.ko,
# stands in the SBOM with the SHA-512 of the bytes the image ships; the
# SBOM validates against the CycloneDX 1.6 schema; the UKI's kernel and
# EFI stub (BOOT_FILES, from the Makefile) are listed under their packages
# with the hashes of the bytes the UKI carries.  A file the SBOM
# misses (a library copied in by hand, the TCTI the binary loads by name)
# fails the test.
. "$(dirname "$0")/../lib/common.sh"
: "${IMAGE:?IMAGE must name the image directory (make image)}"
top=$KJ_TESTS/..
cpio=$IMAGE/initramfs.cpio.gz
schemas=$top/build/cyclonedx-schema
"$top/tools/cyclonedx-schema.sh" "$schemas" >/dev/null
[ $? -ne 77 ] || { echo "skip: no npm for the CycloneDX schema"; exit 77; }
boot=()
for f in ${BOOT_FILES:-}; do boot+=(--boot-file "$f"); done
/usr/bin/python3 "$top/tools/sbom.py" --binary "$KINJECT" --version 0.0.0 \
	--image "$cpio" "${boot[@]}" --out "$T/bom.json" >/dev/null ||
	fail "sbom.py --image"
/usr/bin/python3 "$top/tools/sbom_check.py" --schema-dir "$schemas" \
	"$T/bom.json" >/dev/null || fail "the image's SBOM does not validate"
mkdir -p "$T/img"
(cd "$T/img" && gzip -dc "$cpio" | cpio -id --quiet) || fail "unpack the image"
jq -r '.. | objects | select(.alg? == "SHA-512") | .content' "$T/bom.json" |
	sort -u >"$T/listed"
n=0
while read -r f; do
	real=$(realpath -e "/$f" 2>/dev/null) || continue
	case "$f" in
	*kinject.ko) ;;
	*) dpkg-query -S "$real" >/dev/null 2>&1 ||
		dpkg-query -S "${real#/usr}" >/dev/null 2>&1 || continue ;;
	esac
	h=$(sha512sum "$T/img/$f" | cut -d' ' -f1)
	grep -qx "$h" "$T/listed" || fail "the SBOM misses /$f (SHA-512 $h)"
	n=$((n + 1))
done < <(gzip -dc "$cpio" | cpio -itv --quiet | awk '/^-/ {print $NF}')
[ "$n" -ge 15 ] || fail "only $n packaged files found in the image"
for p in busybox-static libtss2-tcti-device0; do
	jq -e --arg p "$p" '[.components[].name] | index($p)' "$T/bom.json" \
		>/dev/null || fail "the SBOM lacks $p"
done
# The UKI's kernel and EFI stub, hashed as shipped, under their packages.
for f in ${BOOT_FILES:-}; do
	h=$(sha512sum "$f" | cut -d' ' -f1)
	grep -qx "$h" "$T/listed" || fail "the SBOM misses the UKI's $f"
	p=$(dpkg-query -S "$(realpath "$f")" | cut -d: -f1)
	jq -e --arg p "$p" '[.components[].name] | index($p)' "$T/bom.json" \
		>/dev/null || fail "the SBOM lacks $p (the UKI's $f)"
done
[ -n "${BOOT_FILES:-}" ] || fail "BOOT_FILES unset: the UKI's kernel and stub are not checked"
echo "ok: the image's $n packaged files and kinject.ko are in its SBOM"
