#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check a kinject SBOM: valid CycloneDX 1.6 and the BSI TR-03183-2 fields.

  sbom_check.py --schema-dir DIR BOM.json

DIR holds the CycloneDX JSON schemas as the npm package
@cyclonedx/cyclonedx-library ships them (res/schema: bom-1.6, spdx, jsf,
cryptography-defs); the validator is Debian's python3-jsonschema, with
format checks on.  Nothing is fetched.  Exit 0 only if both checks pass;
every fault is printed with its JSON path.
"""
import argparse
import glob
import json
import os
import sys

import jsonschema

BSI_PROPS = ("bsi:component:filename", "bsi:component:executable",
             "bsi:component:archive", "bsi:component:structured")
BASE = "http://cyclonedx.org/schema/"


def schema_errors(bom, schema_dir):
    store = {}
    for path in glob.glob(os.path.join(schema_dir, "*.schema.json")):
        s = json.load(open(path))
        store[BASE + os.path.basename(path)] = s
        store[s.get("$id", BASE + os.path.basename(path))] = s
    main = store.get(BASE + "bom-1.6.schema.json")
    if not main:
        sys.exit("sbom_check: no bom-1.6 schema in %s" % schema_dir)
    resolver = jsonschema.RefResolver.from_schema(main, store=store)
    v = jsonschema.Draft7Validator(main, resolver=resolver,
                                   format_checker=jsonschema.FormatChecker())
    return ["schema: %s: %s" % ("/".join(map(str, e.absolute_path)) or "/",
                                e.message)
            for e in v.iter_errors(bom)]


def bsi_errors(bom):
    out = []
    if bom.get("specVersion") != "1.6":
        out.append("specVersion: %r, this checks 1.6" % bom.get("specVersion"))
    md = bom.get("metadata", {})
    if not md.get("timestamp"):
        out.append("bsi: metadata.timestamp missing")
    if not (md.get("authors") or md.get("manufacturer")):
        out.append("bsi: metadata: no SBOM creator (authors/manufacturer)")
    comps = [md.get("component", {})] + bom.get("components", [])
    deps = {d["ref"] for d in bom.get("dependencies", [])}
    for c in comps:
        name = c.get("name", "?")
        for f in ("name", "version", "supplier", "licenses", "hashes"):
            if not c.get(f):
                out.append("bsi: component %s: no %s" % (name, f))
        if not any(h.get("alg") == "SHA-512" for h in c.get("hashes", [])):
            out.append("bsi: component %s: no SHA-512 hash" % name)
        props = {p["name"] for p in c.get("properties", [])}
        for p in BSI_PROPS:
            if p not in props:
                out.append("bsi: component %s: no property %s" % (name, p))
        if c.get("bom-ref") not in deps:
            out.append("bsi: component %s: not in dependencies" % name)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schema-dir", required=True)
    ap.add_argument("bom")
    a = ap.parse_args()
    bom = json.load(open(a.bom))
    errs = schema_errors(bom, a.schema_dir) + bsi_errors(bom)
    for e in errs:
        print("%s: %s" % (a.bom, e))
    if errs:
        return 1
    print("%s: valid CycloneDX %s, BSI TR-03183-2 fields present "
          "(%d components)" % (a.bom, bom["specVersion"],
                               len(bom["components"]) + 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
