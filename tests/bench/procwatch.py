# SPDX-License-Identifier: Apache-2.0
# make bench: per-process CPU, context switches and peak RSS of a kinject
# run and its injectors (and of the simulator), read from /proc every
# 100 ms until the run ends; the last sample of each pid counts.  Cheap (no
# tracing), so the numbers are those of an unobserved run.
#   procwatch.py RUN_PID SIM_PID_FILE OUT.json [SWTPM_PID]
import json, os, sys, time

HZ = os.sysconf("SC_CLK_TCK")


def sample(pid):
	try:
		with open("/proc/%d/stat" % pid) as f:
			st = f.read().rsplit(")", 1)[1].split()
		status = {}
		with open("/proc/%d/status" % pid) as f:
			for line in f:
				k, _, v = line.partition(":")
				status[k] = v.split()
		with open("/proc/%d/cmdline" % pid, "rb") as f:
			cmd = f.read().split(b"\0")
	except (OSError, IndexError):
		return None
	return {"cpu_s": (int(st[11]) + int(st[12])) / HZ,
		"user_s": int(st[11]) / HZ, "sys_s": int(st[12]) / HZ,
		"vcs": int(status["voluntary_ctxt_switches"][0]),
		"nvcs": int(status["nonvoluntary_ctxt_switches"][0]),
		"hwm_kib": int(status.get("VmHWM", ["0"])[0]),
		"injector": b"__injector" in cmd,
		"kinject": cmd[0].endswith(b"kinject")}


def children(pid):
	out = []
	try:
		for t in os.listdir("/proc/%d/task" % pid):
			with open("/proc/%d/task/%s/children" % (pid, t)) as f:
				out += [int(x) for x in f.read().split()]
	except OSError:
		pass
	return out


def main():
	run, simf, outf = int(sys.argv[1]), sys.argv[2], sys.argv[3]
	seen = {}
	base = {}	# the keeper's CPU once its injectors exist: set-up excluded
	sim = None
	tpm = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] else 0
	while os.path.exists("/proc/%d" % run):
		todo, procs = [run], []
		while todo:
			p = todo.pop()
			procs.append(p)
			todo += children(p)
		if sim is None and os.path.exists(simf):
			try:
				sim = int(open(simf).read())
			except ValueError:
				pass
		procs += [x for x in (sim, tpm) if x]
		for p in procs:
			s = sample(p)
			if s and s["kinject"] and not s["injector"] and \
					p != sim and p not in base and any(
					x.get("injector") for x in seen.values()):
				base[p] = s
			if s and (s["kinject"] or p == tpm):
				s["sim"] = p == sim
				s["tpm"] = p == tpm
				seen[p] = s
		time.sleep(0.1)
	res = {}
	for p, s in seen.items():
		role = "sim" if s["sim"] else "swtpm" if s["tpm"] else (
			"injectors" if s["injector"] else "keeper")
		r = res.setdefault(role, {"cpu_s": 0, "user_s": 0, "sys_s": 0,
			"vcs": 0, "nvcs": 0, "hwm_kib": 0, "procs": 0})
		for k in ("cpu_s", "user_s", "sys_s", "vcs", "nvcs"):
			r[k] += s[k] - base.get(p, {}).get(k, 0)
		r["hwm_kib"] = max(r["hwm_kib"], s["hwm_kib"])
		r["procs"] += 1
	json.dump(res, open(outf, "w"))


main()
