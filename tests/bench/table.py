# SPDX-License-Identifier: Apache-2.0
# make bench: the results side by side (tests/bench/run.sh writes one JSON
# line per scenario).  Every kinject row is set against the pump of the
# same shape (firmware size, sockets): "pump" hashes every byte as a site
# does, "raw" only moves the bytes.
#   table.py RESULTS.jsonl
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]


def shape(r):
	# A programming delay (sim and pump --program-delay-ms) is part of it.
	return (r["firmware_bytes"], r["sockets"], r.get("workers"),
		r.get("program_delay_ms", 0))


def is_naive(r):
	return r["scenario"].startswith("naive")


pumps = {(r["scenario"],) + shape(r): r for r in rows
	 if r["scenario"] in ("pump", "pump-raw")}
# The naive line runs without a programming delay (older result files
# name its one shape "naive").
naives = {shape(r): r for r in rows if is_naive(r)}


def rate(r):
	# the steady rate (after the first wave, both sides) where there is
	# one, else the whole run's
	return r.get("steady_devices_per_s") or r["devices_per_s"]


def frac(r, kind):
	p = pumps.get((kind,) + shape(r))
	return "%.0f" % (100.0 * rate(r) / rate(p)) if p else "-"


def speedup(r):
	n = naives.get(shape(r))
	return "%.1f" % (r["devices_per_s"] / n["devices_per_s"]) \
		if n and n["devices_per_s"] else "-"


def label(r):
	pd = r.get("program_delay_ms", 0)
	if r["scenario"] in ("pump", "pump-raw") and pd:
		return "%s-pd%d" % (r["scenario"], pd)
	return r["scenario"]


def f(v, fmt="%s"):
	return "-" if v is None or v == "" else fmt % v


cols = ("scenario", "sockets", "fw", "W", "dev/s", "MB/s", "%pump", "%raw",
	"xnaive", "p50ms", "p99ms", "p99/50", "st99/50", "%cad", "fsync/s",
	"quote/s", "NVwr/h", "K_us/d", "I_us/d", "S_us/d", "K_RSS", "I_RSS",
	"load", "transport")
fmt = "%-21s %6s %5s %2s %7s %6s %5s %4s %6s %6s %6s %6s %7s %4s %7s %7s " \
	"%6s " \
	"%6s %6s %6s %6s %6s %5s  %s"
print(fmt % cols)
for r in rows:
	size = r["firmware_bytes"]
	fw = "%dk" % (size // 1024) if size < 1 << 20 else "%dm" % (size >> 20)
	mbs = "%.0f" % (rate(r) * size / 1e6)
	if r["scenario"].startswith("pump") or is_naive(r):
		print(fmt % (label(r), r["sockets"], fw, f(r.get("workers")),
			     rate(r), mbs, "", "", "", "", "", "", "", "",
			     "", "", "", "", "",
			     f(r.get("client_cpu_us_per_device"), "%.0f"), "", "",
			     f(r.get("load1")), ""))
		continue
	pp = r.get("per_process", {})
	us = lambda k: f(pp.get(k, {}).get("cpu_us_per_device"), "%.0f")
	p50, p99 = r.get("p50_ms"), r.get("p99_ms")
	ratio = "%.2f" % (p99 / p50) if p50 and p99 else "-"
	s50, s99 = r.get("p50_steady_ms"), r.get("p99_steady_ms")
	steady = "%.2f" % (s99 / s50) if s50 and s99 else "-"
	cad = r.get("cadence_bound_per_s")
	print(fmt % (r["scenario"], r["sockets"], fw, f(r.get("workers")),
		     rate(r), mbs,
		     frac(r, "pump"), frac(r, "pump-raw"), speedup(r),
		     f(p50, "%.0f"), f(p99, "%.0f"), ratio, steady,
		     "%.0f" % (100.0 * rate(r) / cad)
		     if cad and cad < 1.5 * rate(r) else "-",
		     f(r.get("fsyncs_per_s")), f(r.get("quotes_per_s")),
		     f(r.get("nv_writes_per_h")), us("keeper"), us("injectors"),
		     us("sim"), "%dM" % (r["keeper_peak_rss_kib"] // 1024),
		     "%dM" % (r["injector_peak_rss_kib"] // 1024),
		     f(r.get("load1")), r.get("transport", "unix")))
# kinject at default settings against the naive line of the same shape,
# and with the pipeline full by a programming delay against its pump.
byname = {r["scenario"]: r for r in rows}
lines = []
for k in ("kinject-64k", "kinject-64k-10k", "kinject-1m"):
	r = byname.get(k)
	n = naives.get(shape(r)) if r else None
	if n and n["devices_per_s"]:
		lines.append("  %-16s %6d dev/s / %-16s %6d dev/s = %5.1fx" % (
			k, r["devices_per_s"], n["scenario"], n["devices_per_s"],
			r["devices_per_s"] / n["devices_per_s"]))
if lines:
	print("\nkinject's speed-up over the naive line (thread per socket, "
	      "fsync + quote per device), same shape and W:")
	print("\n".join(lines))
for r in rows:
	p = pumps.get(("pump",) + shape(r))
	if r.get("program_delay_ms") and not r["scenario"].startswith("pump") \
	   and p and p["devices_per_s"]:
		print("\npipeline full by a %d ms programming delay, %d sockets, "
		      "default settings: %s %d dev/s = %.0f %% of the pump with "
		      "the same delay (%d dev/s; bound sockets / delay = %d)" % (
			r["program_delay_ms"], r["sockets"], r["scenario"],
			rate(r), 100.0 * rate(r) / rate(p), rate(p),
			1000 * r["sockets"] / r["program_delay_ms"]))
print()
print("W: the load generator's event loops (threads of `kinject sim' and "
      "of the pump's client; KJ_BENCH_WORKERS, default nproc).  "
      "dev/s as the sites saw it (sim; pump: its client), between the first "
      "and the last wave (from the COMMIT that made as many as there are "
      "sockets to the one that left as many to go; the JSON also has the "
      "whole run's).  %pump: of the pump "
      "of the same shape and W whose client hashes every byte (as `kinject sim' "
      "does); %raw: of the bare pump.  %cad: of the cadence bound sockets / "
      "(interval + mean quote), where that binds.  p50/p99: HELLO->COMMIT "
      "over every device; st99/50: p99/p50 over the devices after each "
      "socket's first (the line in operation, not its start).  naive-*: "
      "tests/bench/naive.c, its own rate over the same window; xnaive: "
      "kinject's speed-up over it at the same shape (both over the whole "
      "run).  -pdN: every device held N ms by its site (programming "
      "delay).  "
      "K/I/S_us/d: CPU (user+sys) per device of "
      "the keeper (set-up excluded), the injectors, the sim (pump rows: "
      "its client, all its threads).  load: 1-min "
      "load average after the run.")
