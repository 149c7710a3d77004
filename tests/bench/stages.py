#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Where a device's HELLO -> COMMIT latency went (docs/PERFORMANCE.md
"Where the latency goes"): the sim's device log (its "t_us" wall-clock
stamps: HELLO sent, OFFER read, READBACK sent, COMMIT read) joined by uid
with the journal's reservation time (the keeper took the HELLO), record
time (the keeper took the READBACK) and the first checkpoint whose tree
covers the record.  The journal's times are wall-clock milliseconds, so a
stage shorter than 1 ms reads as 0 or 1.

usage: stages.py DEVICE_LOG JOURNAL_DB [--json]
"""
import bisect
import collections
import json
import sqlite3
import sys


def pct(a, p):
    a = sorted(a)
    return a[min(len(a) - 1, int(p / 100.0 * len(a)))] if a else None


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    dev = {}
    for line in open(argv[1]):
        try:
            d = json.loads(line)
        except ValueError:
            continue  # a last line cut short by a signal
        if d.get("outcome") == "committed" and "t_us" in d:
            dev[d["uid"]] = [t / 1000.0 for t in d["t_us"]]
    db = sqlite3.connect("file:%s?mode=ro" % argv[2], uri=True)
    resv = {bytes(u).hex(): t for u, t in
            db.execute("select uid, time_ms from reservations")}
    rec = {bytes(u).hex(): (t, s) for u, t, s in db.execute(
        "select uid, time_ms, seq from records"
        " where kind = 'device' and result = 'ok'")}
    seqs = [s for (s,) in db.execute("select seq from records order by seq")]
    cps = db.execute("select tree_size, time_ms from checkpoints"
                     " order by id").fetchall()
    sizes = [n for n, _ in cps]
    ctimes = [t for _, t in cps]
    names = ["HELLO -> reserved", "reserved -> OFFER read",
             "OFFER -> READBACK sent", "READBACK -> recorded",
             "recorded -> checkpoint", "checkpoint -> COMMIT read",
             "HELLO -> COMMIT"]
    st = collections.defaultdict(list)
    cuts = collections.Counter()
    for uid, t in dev.items():
        if uid not in resv or uid not in rec:
            continue
        rt, seq = rec[uid]
        leaf = bisect.bisect_left(seqs, seq)
        ci = bisect.bisect_right(sizes, leaf)  # first tree_size > leaf
        if ci == len(cps):
            continue
        ct = ctimes[ci]
        for name, v in zip(names, (resv[uid] - t[0], t[1] - resv[uid],
                                   t[2] - t[1], rt - t[2], ct - rt,
                                   t[3] - ct, t[3] - t[0])):
            st[name].append(v)
        # checkpoints stored while the device went from HELLO to recorded
        cuts[bisect.bisect(ctimes, rt) - bisect.bisect(ctimes, t[0])] += 1
    n = len(st["HELLO -> COMMIT"])
    if not n:
        sys.exit("stages.py: no committed device of %s is in %s" %
                 (argv[1], argv[2]))
    out = {"devices": n, "stages_ms": {
        k: {p: pct(st[k], int(p[1:])) for p in ("p10", "p50", "p90", "p99")}
        for k in names},
        "checkpoints_hello_to_record": dict(sorted(cuts.items()))}
    if "--json" in argv:
        print(json.dumps(out))
        return
    print("%-28s %7s %7s %7s %7s   (%d devices, ms)" %
          ("stage", "p10", "p50", "p90", "p99", n))
    for k in names:
        v = out["stages_ms"][k]
        print("%-28s %7d %7d %7d %7d" % ((k,) + tuple(
            int(round(v[p])) for p in ("p10", "p50", "p90", "p99"))))
    print("checkpoints passed between HELLO and its record: " +
          ", ".join("%d: %.1f %%" % (k, 100.0 * c / n)
                    for k, c in sorted(cuts.items())))


if __name__ == "__main__":
    main(sys.argv)
