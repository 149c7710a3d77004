#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""CycloneDX 1.6 SBOM of the kinject appliance (SPEC.md §6, `make sbom`).

What ships: the kinject binary, every shared object it loads (ldd) and
the Debian packages those files come from, plus the packages the image
adds when installed (--package, e.g. busybox-static), or, with --image,
every regular file of the appliance initramfs that a Debian package
installed (the TPM's TCTI library the binary loads by name, busybox) and
kinject.ko.  For each: name,
version, supplier, licence (the Debian copyright file's `Files: *'
stanza), SHA-512 (and SHA-256) of the file that ships, the package URL,
and the properties BSI TR-03183-2 asks for (filename, executable, archive,
structured).  Dependencies follow the ELF NEEDED entries.  Reads only
local files and dpkg's database; stdlib only, so it runs on the build
machine with nothing added.
"""
import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.parse
import uuid

# Debian copyright short names -> SPDX identifiers (only exact matches;
# anything else goes in as a licence name, which CycloneDX also allows).
SPDX = {
    "Apache-2.0": "Apache-2.0", "BSD-2-clause": "BSD-2-Clause",
    "BSD-2-Clause": "BSD-2-Clause", "BSD-3-clause": "BSD-3-Clause",
    "BSD-3-Clause": "BSD-3-Clause", "MIT": "MIT", "Expat": "MIT",
    "ISC": "ISC", "Zlib": "Zlib", "GPL-2": "GPL-2.0-only",
    "GPL-2+": "GPL-2.0-or-later", "GPL-3": "GPL-3.0-only",
    "GPL-3+": "GPL-3.0-or-later", "LGPL-2.1": "LGPL-2.1-only",
    "LGPL-2.1+": "LGPL-2.1-or-later", "LGPL-3+": "LGPL-3.0-or-later",
    "LGPL-2+": "LGPL-2.0-or-later", "public-domain": None,
}


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True,
                          text=True).stdout


def hashes(path):
    data = open(path, "rb").read()
    return [{"alg": "SHA-512", "content": hashlib.sha512(data).hexdigest()},
            {"alg": "SHA-256", "content": hashlib.sha256(data).hexdigest()}]


def shared_objects(binary):
    """Real paths of what the dynamic loader maps for binary."""
    out = []
    for line in run("ldd", binary).splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m and "linux-vdso" not in line:
            out.append(os.path.realpath(m.group(1)))
    return out


def needed(path):
    try:
        out = run("readelf", "-d", path)
    except subprocess.CalledProcessError:
        return []  # not ELF: the kernel, the EFI stub
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", out)


def package_of(path):
    """The Debian package owning path (tries the /usr-merged twins)."""
    for p in (path, re.sub(r"^/usr/", "/", path), "/usr" + path):
        try:
            return run("dpkg-query", "-S", p).split(":")[0]
        except subprocess.CalledProcessError:
            continue
    return None


def package_programs(pkg):
    """The programs a package installs (what the image copies)."""
    return [f for f in run("dpkg-query", "-L", pkg).splitlines()
            if re.search(r"/s?bin/[^/]+$", f) and os.path.isfile(f)
            and not os.path.islink(f)]


def image_files(cpio_gz):
    """Regular files of a gzip'd newc archive, as absolute paths."""
    listing = subprocess.run(
        "gzip -dc '%s' | cpio -itv --quiet" % cpio_gz.replace("'", ""),
        shell=True, check=True, capture_output=True, text=True).stdout
    out = []
    for line in listing.splitlines():
        if line.startswith("-"):
            out.append("/" + line.split()[-1].lstrip("./"))
    return out


def image_extract(cpio_gz, name, dest):
    """One member of the archive into dest (for its hashes)."""
    subprocess.run("gzip -dc '%s' | (cd '%s' && cpio -id --quiet '%s')" %
                   (cpio_gz, dest, name.lstrip("/")), shell=True,
                   check=True)
    return os.path.join(dest, name.lstrip("/"))


def purl(name, version, arch):
    """pkg:deb per the purl spec: epoch as a qualifier, version encoded."""
    epoch, _, ver = version.rpartition(":")
    q = "arch=%s" % arch + ("&epoch=%s" % epoch if epoch else "")
    return "pkg:deb/debian/%s@%s?%s" % (
        name, urllib.parse.quote(ver, safe=".-~_"), q)


def package_info(pkg):
    f = "${Package}\t${Version}\t${Architecture}\t${Maintainer}\t${Homepage}"
    name, ver, arch, maint, home = run("dpkg-query", "-W", "-f", f,
                                       pkg).split("\t")
    return {"name": name, "version": ver, "arch": arch,
            "maintainer": maint, "homepage": home}


def licence(pkg):
    path = "/usr/share/doc/%s/copyright" % pkg
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return [{"license": {"name": "unknown (no %s)" % path}}]
    for stanza in text.split("\n\n"):
        if re.search(r"^Files:\s*\*\s*$", stanza, re.M):
            m = re.search(r"^License:\s*(.+)$", stanza, re.M)
            if m:
                return licence_entries(m.group(1).strip())
    return [{"license": {"name": "see %s" % path}}]


def licence_entries(expr):
    out = []
    for part in re.split(r"\s+(?:or|and)\s+|,\s*", expr):
        spdx = SPDX.get(part)
        out.append({"license": {"id": spdx} if spdx else {"name": part}})
    return out


def deb_component(pkg, files):
    info = package_info(pkg)
    ref = purl(info["name"], info["version"], info["arch"])
    c = {"type": "library", "bom-ref": ref, "name": info["name"],
         "version": info["version"], "purl": ref,
         "supplier": {"name": info["maintainer"]},
         "licenses": licence(pkg),
         "properties": [{"name": "bsi:component:archive",
                         "value": "no archive"},
                        {"name": "bsi:component:structured",
                         "value": "unstructured"}]}
    if info["homepage"]:
        c["externalReferences"] = [{"type": "website",
                                    "url": info["homepage"]}]
    if files:
        # The file that ships is what is hashed (TR-03183-2 5.2.2).
        c["hashes"] = hashes(files[0])
        c["properties"] += [
            {"name": "bsi:component:filename",
             "value": os.path.basename(files[0])},
            {"name": "bsi:component:executable", "value": "executable"}]
        c["components"] = [file_component(f, ref) for f in files[1:]]
        if not c["components"]:
            del c["components"]
    else:
        c["properties"] += [
            {"name": "bsi:component:executable", "value": "executable"}]
    return c


def file_component(path, parent):
    return {"type": "file", "bom-ref": "%s#%s" % (parent, path),
            "name": os.path.basename(path), "hashes": hashes(path),
            "properties": [{"name": "bsi:component:filename",
                            "value": os.path.basename(path)},
                           {"name": "bsi:component:executable",
                            "value": "executable"}]}


def kinject_component(binary, version):
    ref = "pkg:generic/kinject@%s" % version
    return {"type": "application", "bom-ref": ref, "name": "kinject",
            "version": version, "purl": ref,
            "supplier": {"name": "the kinject project"},
            "licenses": [{"license": {"id": "Apache-2.0"}}],
            "hashes": hashes(binary),
            "properties": [
                {"name": "bsi:component:filename", "value": "kinject"},
                {"name": "bsi:component:executable", "value": "executable"},
                {"name": "bsi:component:archive", "value": "no archive"},
                {"name": "bsi:component:structured",
                 "value": "unstructured"}]}


def kmod_component(image, name, version):
    """kinject.ko as the image ships it (built for one kernel)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        h = hashes(image_extract(image, name, d))
    ref = "pkg:generic/kinject.ko@%s" % version
    return {"type": "library", "bom-ref": ref, "name": "kinject.ko",
            "version": version, "purl": ref,
            "supplier": {"name": "the kinject project"},
            "licenses": [{"license": {"id": "GPL-2.0-only"}}],
            "hashes": h,
            "properties": [
                {"name": "bsi:component:filename", "value": "kinject.ko"},
                {"name": "bsi:component:executable", "value": "executable"},
                {"name": "bsi:component:archive", "value": "no archive"},
                {"name": "bsi:component:structured",
                 "value": "unstructured"}]}


def build(binary, extra_pkgs, version, image=None, boot_files=()):
    objs = shared_objects(binary)
    extra = []
    # What the UKI carries besides the initramfs: the kernel and the EFI
    # stub, each shipped byte for byte as its package installed it.
    for f in boot_files:
        real = os.path.realpath(f)
        if not package_of(real):
            sys.exit("sbom: %s belongs to no Debian package" % f)
        if real not in objs:
            objs.append(real)
    if image:
        for f in image_files(image):
            if f.endswith("/kinject.ko"):
                extra.append(f)
            elif os.path.isfile(f):
                real = os.path.realpath(f)
                if real not in objs and package_of(real):
                    objs.append(real)
    by_pkg, soname_pkg = {}, {}
    for o in objs:
        pkg = package_of(o)
        if not pkg:
            sys.exit("sbom: %s belongs to no Debian package" % o)
        by_pkg.setdefault(pkg, []).append(o)
    for pkg in extra_pkgs:
        try:
            st = run("dpkg-query", "-W", "-f", "${Status}", pkg)
        except subprocess.CalledProcessError:
            continue
        if st.endswith(" installed"):
            by_pkg.setdefault(pkg, []).extend(package_programs(pkg))
    top = kinject_component(binary, version)
    comps = [deb_component(p, f) for p, f in sorted(by_pkg.items())]
    for f in extra:
        comps.append(kmod_component(image, f, version))
    refs = {}
    for c, (pkg, files) in zip(comps, sorted(by_pkg.items())):
        for f in files:
            for name in (os.path.basename(f),):
                refs[name] = c["bom-ref"]
        for f in files:
            # sonames resolve through symlinks: map both names.
            soname = re.sub(r"(\.so\.\d+).*$", r"\1", os.path.basename(f))
            soname_pkg[soname] = c["bom-ref"]
    def deps_of(path):
        out = set()
        for n in needed(path):
            r = soname_pkg.get(n) or refs.get(n)
            if r:
                out.add(r)
        return sorted(out)
    deps = [{"ref": top["bom-ref"], "dependsOn": deps_of(binary)}]
    for c, (pkg, files) in zip(comps, sorted(by_pkg.items())):
        d = set()
        for f in files:
            d.update(deps_of(f))
        d.discard(c["bom-ref"])
        deps.append({"ref": c["bom-ref"], "dependsOn": sorted(d)})
    for c in comps[len(by_pkg):]:
        deps.append({"ref": c["bom-ref"], "dependsOn": []})
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.6",
        "serialNumber": "urn:uuid:%s" % uuid.uuid4(), "version": 1,
        "metadata": {
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lifecycles": [{"phase": "build"}],
            "tools": {"components": [{"type": "application",
                                      "name": "kinject tools/sbom.py",
                                      "version": version}]},
            "authors": [{"name": "the kinject project"}],
            "manufacturer": {"name": "the kinject project"},
            "component": top,
            "properties": [{"name": "bsi:sbom:specification",
                            "value": "BSI TR-03183-2"}]},
        "components": comps,
        "dependencies": deps,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--package", action="append", default=[],
                    help="a Debian package the image adds, if installed")
    ap.add_argument("--image", help="the appliance initramfs (make image): "
                    "every packaged file in it is listed")
    ap.add_argument("--boot-file", action="append", default=[],
                    dest="boot_files",
                    help="a packaged file the boot image (UKI) carries "
                    "as is: the kernel, the EFI stub")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    bom = build(a.binary, a.package, a.version, a.image, a.boot_files)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(bom, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, a.out)
    print("sbom: %s: kinject %s, %d packages" % (a.out, a.version,
                                                len(bom["components"])))


if __name__ == "__main__":
    main()
