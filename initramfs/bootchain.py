#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# The boot chain's PCRs computed from the image's bytes (docs/IMAGE.md,
# "Boot chain and firmware"): what OVMF and the two EFI stubs extend when
# they boot build/image/esp.img, so that make image can write them into
# golden.json instead of a site recording them from a boot.  Authenticode
# is hashed here by hand (the PE/COFF spec's recipe, as EDK2's
# DxeTpm2MeasureBootLib does it, about 30 lines): osslsigncode prints the
# digest only while checking a signature ("No signature found" on the
# unsigned UKI), and pesign would be one more package for one hash;
# tests/integration/golden_pcrs.sh checks this code against osslsigncode
# on Debian's signed vmlinuz.
#
#   bootchain.py uki STUB KERNEL INITRD CMDLINE EPOCH OUT
#                                         the UKI: systemd's stub with the
#                                         kernel, initrd and command line
#                                         as sections (objcopy), its COFF
#                                         time stamp EPOCH (objcopy writes
#                                         the current time), checksum fixed
#   bootchain.py authenticode PE          the SHA-256 Authenticode digest
#   bootchain.py golden IN OUT UKI        IN + "pcrs" {4, 9} of UKI -> OUT
#   bootchain.py pcrs UKI                 print "4 <hex>" and "9 <hex>"
#
# The events, read from the VM test's firmware event log:
#   PCR 4: EV_EFI_ACTION "Calling EFI Application from Boot Option",
#          EV_SEPARATOR (4 zero bytes), EV_EFI_BOOT_SERVICES_APPLICATION
#          the UKI (\EFI\BOOT\BOOTX64.EFI), then the same for the kernel
#          that systemd's stub loads from its .linux section;
#   PCR 9: the kernel's EFI stub: EV_EVENT_TAG its load options (the
#          .cmdline as UTF-16LE with its final NUL), then the initrd it
#          got through LINUX_EFI_INITRD_MEDIA_GUID (the .initrd section,
#          alone while the ESP holds no credentials or system extensions).
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

SEC_DIR = 4  # IMAGE_DIRECTORY_ENTRY_SECURITY


def fail(msg):
    print(f"bootchain: {msg}", file=sys.stderr)
    sys.exit(1)


def pe_layout(b, what):
    """Offsets of the PE header fields that Authenticode skips."""
    if b[:2] != b"MZ" or len(b) < 0x40:
        fail(f"{what}: not a PE image (no MZ header)")
    pe = struct.unpack_from("<I", b, 0x3C)[0]
    if b[pe:pe + 4] != b"PE\0\0":
        fail(f"{what}: not a PE image (no PE signature at {pe:#x})")
    nsec, = struct.unpack_from("<H", b, pe + 6)
    optsz, = struct.unpack_from("<H", b, pe + 20)
    opt = pe + 24
    magic, = struct.unpack_from("<H", b, opt)
    if magic == 0x20B:
        ndir_off, dirs = opt + 108, opt + 112
    elif magic == 0x10B:
        ndir_off, dirs = opt + 92, opt + 96
    else:
        fail(f"{what}: optional header magic {magic:#x} is neither PE32 nor PE32+")
    ndirs, = struct.unpack_from("<I", b, ndir_off)
    hdrs, = struct.unpack_from("<I", b, opt + 60)
    secs = []
    for i in range(nsec):
        s = opt + optsz + 40 * i
        name = b[s:s + 8].rstrip(b"\0").decode("ascii", "replace")
        vsize, vaddr, rsize, rptr = struct.unpack_from("<IIII", b, s + 8)
        secs.append((name, vsize, rsize, rptr))
    return {"pe": pe, "cksum": opt + 64, "ndirs": ndirs, "dirs": dirs,
            "hdrs": hdrs, "secs": secs}


def authenticode(b, what="image"):
    L = pe_layout(b, what)
    h = hashlib.sha256()
    ck = L["cksum"]
    h.update(b[:ck])
    if L["ndirs"] > SEC_DIR:
        cert = L["dirs"] + 8 * SEC_DIR
        h.update(b[ck + 4:cert])
        h.update(b[cert + 8:L["hdrs"]])
        cert_size, = struct.unpack_from("<I", b, cert + 4)
    else:
        h.update(b[ck + 4:L["hdrs"]])
        cert_size = 0
    done = L["hdrs"]
    for _, _, rsize, rptr in sorted(L["secs"], key=lambda s: s[3]):
        if rsize:
            h.update(b[rptr:rptr + rsize])
            done += rsize
    if len(b) > done + cert_size:
        h.update(b[done:len(b) - cert_size])
    return h.hexdigest()


def pe_epoch(path, epoch):
    b = bytearray(open(path, "rb").read())
    L = pe_layout(b, path)
    struct.pack_into("<I", b, L["pe"] + 8, epoch)
    ck = L["cksum"]
    struct.pack_into("<I", b, ck, 0)
    if len(b) % 2:
        b.append(0)
        size = len(b) - 1
    else:
        size = len(b)
    s = 0
    for (w,) in struct.iter_unpack("<H", b):
        s += w
        s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("<I", b, ck, ((s & 0xFFFF) + size) & 0xFFFFFFFF)
    open(path, "wb").write(b[:size])


def uki(stub, kernel, initrd, cmdline, epoch, out):
    """The stub's documented sections at fixed addresses past its own."""
    if not all(0x20 <= ord(c) < 0x7F for c in cmdline):
        fail("the command line must be one line of printable ASCII")
    with tempfile.TemporaryDirectory() as d:
        cl = os.path.join(d, "cmdline")
        with open(cl, "w") as f:
            f.write(cmdline)
        subprocess.run(["objcopy",
                        "--add-section", f".cmdline={cl}",
                        "--change-section-vma", ".cmdline=0x30000",
                        "--add-section", f".linux={kernel}",
                        "--change-section-vma", ".linux=0x2000000",
                        "--add-section", f".initrd={initrd}",
                        "--change-section-vma", ".initrd=0x3000000",
                        stub, out + ".tmp"], check=True)
    pe_epoch(out + ".tmp", epoch)
    os.replace(out + ".tmp", out)


def section(b, L, name, what):
    for n, vsize, rsize, rptr in L["secs"]:
        if n == name:
            return bytes(b[rptr:rptr + min(vsize, rsize)])
    fail(f"{what}: no {name} section (not a UKI made by initramfs/build.sh)")


def extend(pcr, digest_hex):
    return hashlib.sha256(pcr + bytes.fromhex(digest_hex)).digest()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def pcrs(path):
    b = open(path, "rb").read()
    L = pe_layout(b, path)
    kernel = section(b, L, ".linux", path)
    initrd = section(b, L, ".initrd", path)
    cmdline = section(b, L, ".cmdline", path)
    if not all(0x20 <= c < 0x7F for c in cmdline):
        fail(f"{path}: .cmdline is not one line of printable ASCII (systemd's stub would pass other load options)")
    p4 = bytes(32)
    for d in (sha(b"Calling EFI Application from Boot Option"),
              sha(bytes(4)), authenticode(b, path),
              authenticode(kernel, f"{path} .linux")):
        p4 = extend(p4, d)
    p9 = bytes(32)
    for d in (sha((cmdline.decode("ascii") + "\0").encode("utf-16-le")),
              sha(initrd)):
        p9 = extend(p9, d)
    return {"4": p4.hex(), "9": p9.hex()}


def main(argv):
    if len(argv) == 7 and argv[0] == "uki":
        uki(argv[1], argv[2], argv[3], argv[4], int(argv[5]), argv[6])
    elif len(argv) == 2 and argv[0] == "authenticode":
        print(authenticode(open(argv[1], "rb").read(), argv[1]))
    elif len(argv) == 2 and argv[0] == "pcrs":
        for k, v in pcrs(argv[1]).items():
            print(k, v)
    elif len(argv) == 4 and argv[0] == "golden":
        g = json.load(open(argv[1]))
        g["pcrs"] = {k: [v] for k, v in pcrs(argv[3]).items()}
        with open(argv[2], "w") as f:
            json.dump(g, f, indent=1, sort_keys=True)
            f.write("\n")
    else:
        print(__doc__ or "usage: see the comment at the top of bootchain.py",
              file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
