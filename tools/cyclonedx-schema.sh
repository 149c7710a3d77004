#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The CycloneDX JSON schemas into DIR, from the npm package the CycloneDX
# project publishes them in (pinned; npm checks the tarball's integrity).
# Nothing else is fetched.  Exit 77 if npm is not there (tests skip).
#
#   tools/cyclonedx-schema.sh DIR
set -euo pipefail
PKG=@cyclonedx/cyclonedx-library@10.3.0
dir=${1:?usage: cyclonedx-schema.sh DIR}
[ -s "$dir/bom-1.6.schema.json" ] && exit 0
command -v npm >/dev/null || { echo "cyclonedx-schema: no npm" >&2; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/res/schema
mkdir -p "$dir"
# The package names them *.SNAPSHOT.schema.json; their $ids do not.
for f in "$tmp"/package/res/schema/*.SNAPSHOT.schema.json; do
	b=$(basename "$f")
	cp "$f" "$dir/$b"
	cp "$f" "$dir/${b/.SNAPSHOT/}"
done
echo "cyclonedx-schema: $PKG -> $dir"
