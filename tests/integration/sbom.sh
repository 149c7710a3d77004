#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make sbom's pieces on the binary under test: the SBOM validates against
# the CycloneDX 1.6 JSON schema (from the CycloneDX npm package, checked
# by Debian's python3-jsonschema) with the BSI TR-03183-2 fields; it
# names kinject with the binary's real SHA-512 and every library `kinject
# version' lists, each with the version dpkg has; and the checker refuses
# a broken SBOM, so a pass means something.
. "$(dirname "$0")/../lib/common.sh"
top=$(cd "$KJ_TESTS/.." && pwd)
schemas=$(dirname "$KINJECT")/cyclonedx-schema
rc=0; "$top/tools/cyclonedx-schema.sh" "$schemas" >/dev/null || rc=$?
[ "$rc" -eq 77 ] && { echo "skip: no npm for the CycloneDX schema"; exit 77; }
[ "$rc" -eq 0 ] || fail "cannot get the CycloneDX schema"
/usr/bin/python3 -c 'import jsonschema' 2>/dev/null ||
	{ echo "skip: no python3-jsonschema"; exit 77; }

ver=$("$KINJECT" version | sed -n 's/^kinject //p')
/usr/bin/python3 "$top/tools/sbom.py" --binary "$KINJECT" --version "$ver" \
	--out "$T/bom.json" >/dev/null || fail "sbom.py"
/usr/bin/python3 "$top/tools/sbom_check.py" --schema-dir "$schemas" \
	"$T/bom.json" || fail "the SBOM does not validate"

want=$(sha512sum "$KINJECT" | cut -d' ' -f1)
jq -e --arg h "$want" '.metadata.component | .name == "kinject" and
	(.hashes[] | select(.alg == "SHA-512") | .content) == $h' \
	"$T/bom.json" >/dev/null || fail "kinject's SHA-512 is not the binary's"
echo "ok: kinject $ver with the binary's SHA-512"

# `kinject version' names every library kinject links, with the version
# it was built against.
for p in openssl tss2-esys tss2-mu tss2-tctildr tss2-rc p11-kit-1 \
	libseccomp liburing sqlite3 jansson; do
	v=$(pkg-config --modversion $p)
	"$KINJECT" version | grep -E >/dev/null "^  $p +[^ ]+ +$v\$" ||
		fail "kinject version lacks $p $v: $("$KINJECT" version)"
done
"$KINJECT" version | grep -E >/dev/null '^  sqlite3 +3\.[0-9.]+ ' || fail "no runtime sqlite version"
echo "ok: kinject version lists the 10 libraries with their versions"

# Every shared object `kinject version' lists is hashed in the SBOM, in
# the package dpkg says owns it, at dpkg's version.
n=0
while read -r so; do
	h=$(sha512sum "$so" | cut -d' ' -f1)
	pkg=$(dpkg-query -S "$so" 2>/dev/null || dpkg-query -S "${so/#\/usr\/lib\//\/lib\/}")
	pkg=${pkg%%:*}
	v=$(dpkg-query -W -f '${Version}' "$pkg")
	jq -e --arg h "$h" --arg p "$pkg" --arg v "$v" '[.components[] |
		select(.name == $p and .version == $v) |
		(., .components[]?) | .hashes[]? | select(.content == $h)] |
		length == 1' "$T/bom.json" >/dev/null ||
		fail "$so ($pkg $v) is not in the SBOM with its hash"
	n=$((n + 1))
done < <("$KINJECT" version | sed -n '/^shared objects loaded:/,$p' |
	sed -n 's/^  \(\/.*\)/\1/p')
[ "$n" -ge 10 ] || fail "only $n shared objects listed by kinject version"
echo "ok: all $n shared objects in the SBOM with package, version, hash"

# The checker is not a rubber stamp.
jq '.bomFormat = "SPDX"' "$T/bom.json" >"$T/bad1.json"
jq 'del(.components[0].hashes)' "$T/bom.json" >"$T/bad2.json"
jq '.components[1].licenses = [{"license": {"id": "NOT-A-LICENCE"}}]' \
	"$T/bom.json" >"$T/bad3.json"
for b in bad1 bad2 bad3; do
	if /usr/bin/python3 "$top/tools/sbom_check.py" --schema-dir \
		"$schemas" "$T/$b.json" >"$T/$b.out"; then
		fail "sbom_check accepted $b"
	fi
done
grep -q "bomFormat" "$T/bad1.out" || fail "bad1: $(cat "$T/bad1.out")"
grep -q "no SHA-512" "$T/bad2.out" || fail "bad2: $(cat "$T/bad2.out")"
grep -q "NOT-A-LICENCE" "$T/bad3.out" || fail "bad3: $(cat "$T/bad3.out")"
echo "ok: a wrong format, a missing hash and a made-up licence id fail"
