#!/usr/bin/python3
"""flowmatch against an earlier flowmatch: both builds' benchmarks in one run.

    bench/before_after.py REV [--repeats 3] [--only ref-train,wide-step,sample,unet-step]

Builds bench/bench.c at git revision REV in a temporary worktree, then runs
each benchmark on 1 and 2 threads with the old and the current build
(build/rel/bench) in turn, `--repeats` times, alternating, so that both see
the same moments of a noisy machine. Prints a markdown table of the medians:
seconds, the speed-up, each build's GFLOP/s and percentage of the FMA peak
(the work counted by the current build, which both do, and the peak it
measured in the same run), and each process's peak resident memory (from
wait4, so the old build needs no support for it).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build_old(rev, out):
    tmp = tempfile.mkdtemp(prefix="fm_before_")
    wt = os.path.join(tmp, "tree")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "-f", "--detach", wt, rev], check=True,
                   capture_output=True)
    try:
        r = subprocess.run(["make", "-C", wt, "-j2", "build/rel/bench"], capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"could not build {rev}:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        shutil.copy(os.path.join(wt, "build", "rel", "bench"), out)
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", wt], capture_output=True)
        subprocess.run(["git", "-C", ROOT, "worktree", "prune"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def run(cmd):
    """(RESULT value, ROOF fields, peak RSS in MB) of one run, or None."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    p.stdout.close()
    _, status, ru = os.wait4(p.pid, 0)  # reaped here, with its resource usage
    p.returncode = os.waitstatus_to_exitcode(status)
    m = re.search(r"^RESULT \S+ ([0-9.eE+-]+)", out, re.M)
    if p.returncode or not m:
        sys.stderr.write(f"failed: {' '.join(cmd)}\n{out}")
        return None
    roof = re.search(r"^ROOF \S+ (.*)$", out, re.M)
    fields = {k: float(v) for k, v in (kv.split("=", 1) for kv in roof.group(1).split())} if roof else {}
    return float(m.group(1)), fields, ru.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rev")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="ref-train,wide-step,sample,unet-step")
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "rel", "bench"))
    a = ap.parse_args()
    bindir = tempfile.mkdtemp(prefix="fm_before_bin_")
    old = os.path.join(bindir, "bench")
    print(f"building {a.rev} ...", flush=True)
    build_old(a.rev, old)
    try:
        table(a, old)
    finally:
        shutil.rmtree(bindir, ignore_errors=True)


def table(a, old):
    rows = []
    for name in a.only.split(","):
        for th in (1, 2):
            res, rss, roof = {"before": [], "after": []}, {"before": [], "after": []}, []
            for _ in range(a.repeats):
                for who, binary in (("before", old), ("after", a.bench)):
                    r = run([binary, name, "--threads", str(th)])
                    if r:
                        res[who].append(r[0])
                        rss[who].append(r[2])
                        if who == "after" and r[1]:
                            roof.append(r[1])
            if not res["before"] or not res["after"] or not roof:
                continue
            b, f = statistics.median(res["before"]), statistics.median(res["after"])
            gflop = statistics.median(x["gflop"] for x in roof)
            peak = statistics.median(x["peak"] for x in roof)
            # ref-train and sample report whole runs; the steps report seconds per step and count per step
            row = (name, th, b, f, b / f, gflop / b, 100 * gflop / b / peak, gflop / f, 100 * gflop / f / peak,
                   max(rss["before"]), max(rss["after"]))
            rows.append(row)
            print(f"{name} {th} thr: before {b:.4f} s, after {f:.4f} s ({b / f:.2f}x); "
                  f"{row[6]:.1f}% -> {row[8]:.1f}% of the FMA peak", flush=True)
    print(f"\n| benchmark | threads | before (s) | after (s) | speed-up | before GFLOP/s | before % of peak | "
          f"after GFLOP/s | after % of peak | before peak RSS | after peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, th, b, f, sp, gb, pb, gf, pf, rb, rf in rows:
        print(f"| {n} | {th} | {b:.4f} | {f:.4f} | {sp:.2f}x | {gb:.1f} | {pb:.1f}% | {gf:.1f} | {pf:.1f}% | "
              f"{rb:.0f} MB | {rf:.0f} MB |")
    for n in dict.fromkeys(r[0] for r in rows):
        one = {r[1]: r for r in rows if r[0] == n}
        if 1 in one and 2 in one:
            print(f"{n}: 1 -> 2 threads {one[1][2] / one[2][2]:.2f}x before, {one[1][3] / one[2][3]:.2f}x after")


if __name__ == "__main__":
    main()
