#!/usr/bin/env python3
"""Runs a command and measures the peak resident memory of each sparc rank it
starts, from outside the processes: every 0.2 s it reads /proc/<pid>/status
of every descendant named `sparc` (its rank from OMPI_COMM_WORLD_RANK in
/proc/<pid>/environ) and keeps VmHWM, the kernel's own high-water mark of
the process's resident set: a peak between two polls still shows at the
next one (only a rise in a rank's last 0.2 s of life could be missed). The largest RssAnon and RssFile seen are
kept too, to tell the two apart: page cache does not count in VmHWM, except
file pages mapped into the process while they are resident (RssFile; the
safetensors reader drops its mapped pages after copying a slice).

Usage: peak_memory.py OUT.json -- COMMAND ARGS...
The command's stdout and stderr pass through; exits with its status."""
import json
import os
import subprocess
import sys
import time


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def status_kb(pid):
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Name", "VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    vals[key] = rest.strip().split()[0]
    except OSError:
        return None
    return vals


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(b"OMPI_COMM_WORLD_RANK="):
                    return int(item.split(b"=", 1)[1])
    except OSError:
        pass
    return 0


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    out_path, cmd = sys.argv[1], sys.argv[3:]
    start = time.time()
    proc = subprocess.Popen(cmd)
    ranks = {}  # pid -> record
    while True:
        done = proc.poll() is not None
        for pid in descendants(proc.pid) + [proc.pid]:
            st = status_kb(pid)
            if not st or st.get("Name") != "sparc" or "VmHWM" not in st:
                continue
            r = ranks.setdefault(pid, {"rank": rank_of(pid), "pid": pid, "vmhwm_kb": 0,
                                       "max_rss_anon_kb": 0, "max_rss_file_kb": 0})
            r["vmhwm_kb"] = max(r["vmhwm_kb"], int(st["VmHWM"]))
            r["max_rss_anon_kb"] = max(r["max_rss_anon_kb"], int(st.get("RssAnon", 0)))
            r["max_rss_file_kb"] = max(r["max_rss_file_kb"], int(st.get("RssFile", 0)))
        if done:
            break
        time.sleep(0.2)
    recs = sorted(ranks.values(), key=lambda r: r["rank"])
    for r in recs:
        r["vmhwm_gib"] = round(r["vmhwm_kb"] / 2**20, 3)
    result = {"command": cmd, "exit_code": proc.returncode,
              "wall_s": round(time.time() - start, 1), "ranks": recs}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
