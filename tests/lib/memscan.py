#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# memscan PID... -- NEEDLE_HEX...: search every readable mapping of the
# processes (through /proc/PID/mem) for the needles.  Prints each hit and
# how many regions could not be read (memfd_secret pages cannot).  Exit 1
# if any needle was found, 0 if none, 2 on usage errors.
import sys

CHUNK = 64 << 20
# ASan reserves terabytes of shadow: no program data lives in mappings
# this large, and reading them would take hours.
HUGE = 4 << 30

def read_region(mem, lo, hi, overlap):
    """Yield the region in chunks that overlap, so no needle is split."""
    pos = lo
    while pos < hi:
        end = min(hi, pos + CHUNK)
        mem.seek(pos)
        yield mem.read(end - pos + (overlap if end < hi else 0))
        pos = end

def scan(pid, needles):
    hits, unreadable, skipped = [], 0, 0
    overlap = max(len(n) for n in needles)
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            f = line.split()
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if "r" not in f[1] or f[-1] == "[vvar]":
                continue
            if hi - lo > HUGE:
                skipped += 1
                continue
            try:
                for data in read_region(mem, lo, hi, overlap):
                    for n in needles:
                        if n in data:
                            hits.append((pid, f[0], f[-1] if len(f) > 5 else "",
                                         n.hex()[:16]))
            except OSError:
                unreadable += 1
    return hits, unreadable, skipped

def main():
    if "--" not in sys.argv:
        print("usage: memscan PID... -- NEEDLE_HEX...", file=sys.stderr)
        return 2
    i = sys.argv.index("--")
    pids, needles = sys.argv[1:i], [bytes.fromhex(h) for h in sys.argv[i + 1:]]
    found = False
    for pid in pids:
        try:
            hits, unreadable, skipped = scan(pid, needles)
        except FileNotFoundError:
            continue
        print(f"pid {pid}: {unreadable} unreadable regions, {skipped} huge "
              f"regions skipped, {len(hits)} hits")
        for h in hits:
            print("  hit: pid %s %s %s needle %s" % h)
            found = True
    return 1 if found else 0

sys.exit(main())
