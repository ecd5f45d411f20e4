#!/usr/bin/python3
"""Run flowmatch and PyTorch side by side, alternating, and print the ratios.

    make bench                          (or: bench/run.py --bench build/rel/bench)
    bench/run.py --bench build/rel/bench --repeats 3 --only ref-train,sample --readme

For each benchmark the runs alternate flowmatch (1 and 2 threads) and PyTorch
(1 and 2 threads), `--repeats` times, so both see the same machine state. The
median of each configuration is reported; the ratio compares the best
flowmatch configuration with the best PyTorch configuration, as a user would
pick them. Where PyTorch has more than one way to run a benchmark (unet-step:
the NCHW and channels_last memory formats) every one is run, and its best
counts. Each flowmatch run also reports its roofline (ROOF line): the
floating-point work its matrix products counted, the rate, the percentage of
the FMA peak measured in the same process for the same thread count, and the
peak resident memory; PyTorch's runs report their peak resident memory.
--readme rewrites the tables in bench/README.md and bench/results.json.

    bench/run.py --check [--only ...] [--repeats 3]

runs flowmatch alone and names every benchmark whose median is more than 10%
slower than in the last committed bench/results.json (exit status 1 if any);
the machine is noisy, so this is run on demand, never in CI.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHES = {
    "ref-train": ("the tutorial's training run: moons, 3x64 ELU, Adam 1e-2, 10,000 iterations of 256", "s"),
    "wide-step": ("one training step: MLP 4x512 SiLU, batch 4096, Adam", "s"),
    "sample": ("1,000,000 points, 3x64 ELU, 8 midpoint steps (16 evaluations)", "s"),
    "conv": ("conv2d 3x3 pad 1, 128x32x28x28 -> 32, forward + backward (dx, dW, db)", "s"),
    "unet-step": ("one training step of the default U-Net (1x28x28, base 32, mult 1,2,2), batch 128, Adam", "s"),
}
# PyTorch's variants of a benchmark beyond the thread count: (label, extra arguments)
TORCH_VARIANTS = {
    "unet-step": [("", []), ("channels_last", ["--channels-last"])],
}
# On one thread PyTorch also runs as a user who only calls set_num_threads(1)
# has it: its OpenBLAS still multiplies on every core.
BLAS_DEFAULT = ("OpenBLAS on all cores", ["--blas-all-cores"])


def run(cmd):
    """The RESULT value of one run and its ROOF fields (a dict), or None."""
    out = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"^RESULT (\S+) ([0-9.eE+-]+)", out.stdout, re.M)
    if out.returncode != 0 or not m:
        sys.stderr.write(f"failed: {' '.join(cmd)}\n{out.stdout}{out.stderr}")
        return None
    roof = re.search(r"^ROOF \S+ (.*)$", out.stdout, re.M)
    fields = dict(kv.split("=", 1) for kv in roof.group(1).split()) if roof else {}
    return float(m.group(2)), {k: float(v) for k, v in fields.items()}


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def gemm_lines(bench, threads):
    out = subprocess.run([bench, "gemm", "--threads", str(threads)], capture_output=True, text=True).stdout
    return [line[7:] for line in out.splitlines() if line.startswith("RESULT")]


def cfg(th, label):
    """A configuration's name in the table: "2 thr" or "1 thr, channels_last"."""
    return f"{th} thr" + (f", {label}" if label else "")


def have_torch():
    r = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True)
    return r.returncode == 0


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "rel", "bench"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default=",".join(BENCHES) + ",gemm")
    ap.add_argument("--readme", action="store_true", help="rewrite the tables in bench/README.md and results.json")
    ap.add_argument("--check", action="store_true",
                    help="flowmatch alone: name benchmarks more than 10%% slower than the committed results.json")
    a = ap.parse_args()
    only = a.only.split(",")
    if a.check:
        sys.exit(check(a.bench, only, a.repeats))
    torch_ok = have_torch()
    if not torch_ok:
        print("PyTorch not found (apt-get install python3-torch python3-sklearn libopenblas0): flowmatch only")
    rows = []
    for name, (desc, unit) in BENCHES.items():
        if name not in only:
            continue
        runs, roofs = {}, {}
        for _ in range(a.repeats):
            for th in (1, 2):
                cmds = [(("flowmatch", th, ""), [a.bench, name, "--threads", str(th)])]
                variants = TORCH_VARIANTS.get(name, [("", [])]) + ([BLAS_DEFAULT] if th == 1 else [])
                for label, extra in variants if torch_ok else []:
                    cmds.append((("PyTorch", th, label), ["/usr/bin/python3", os.path.join(HERE, "torch_bench.py"),
                                                          name, "--threads", str(th)] + extra))
                for key, cmd in cmds:
                    r = run(cmd)
                    runs.setdefault(key, []).append(r[0] if r else None)
                    roofs.setdefault(key, []).append(r[1] if r else {})
        med = {k: median_of(v) for k, v in runs.items() if median_of(v) is not None}

        def roof(key, field):
            return median_of([r.get(field) for r in roofs.get(key, [])])
        if not any(who == "flowmatch" for who, _, _ in med):
            continue
        fm = min((v, cfg(th, label), (who, th, label)) for (who, th, label), v in med.items() if who == "flowmatch")
        pt = min(((v, cfg(th, label), (who, th, label)) for (who, th, label), v in med.items() if who == "PyTorch"),
                 default=None)
        print(f"\n{name}: {desc}")
        for key, v in sorted(med.items()):
            who, th, label = key
            extra = ""
            if who == "flowmatch" and roof(key, "gflops") is not None:
                extra = (f"  {roof(key, 'gflops'):.1f} GFLOP/s, {roof(key, 'pct'):.1f}% of the FMA peak "
                         f"({roof(key, 'peak'):.0f})")
            if roof(key, "rss_mb") is not None:
                extra += f"  peak RSS {roof(key, 'rss_mb'):.0f} MB"
            print(f"  {who:9s} {th} thread(s){', ' + label if label else '':23s}: {v:.4f} {unit}{extra}")
        one, two = med.get(("flowmatch", 1, "")), med.get(("flowmatch", 2, ""))
        speedup = one / two if one and two else None
        if speedup:
            print(f"  flowmatch 1 -> 2 threads: {speedup:.2f}x")
        if pt:
            print(f"  ratio: flowmatch ({fm[1]}) is {pt[0] / fm[0]:.2f}x faster than PyTorch ({pt[1]})")
        rows.append({"name": name, "desc": desc, "unit": unit, "fm": fm[:2], "pt": pt[:2] if pt else None,
                     "gflops": roof(fm[2], "gflops"), "pct": roof(fm[2], "pct"), "speedup": speedup,
                     "rss_fm": roof(fm[2], "rss_mb"), "rss_pt": roof(pt[2], "rss_mb") if pt else None,
                     "medians": {f"{th}": v for (who, th, label), v in med.items() if who == "flowmatch"}})
    gemm = []
    if "gemm" in only:
        print("\ngemm (GFLOP/s; higher is better)")
        for th in (1, 2):
            for line in gemm_lines(a.bench, th):
                print("  " + line)
                gemm.append(line)
    if a.readme:
        write_readme(rows, gemm)


def fmt(x, spec, suffix=""):
    return "n/a" if x is None else f"{x:{spec}}{suffix}"


def merge_block(text, tag, header, fresh_rows, key):
    """Replace the rows of the table between <!-- tag --> markers that were
    rerun (same key), keep the others, append new ones."""
    fresh = {key(r): r for r in fresh_rows}
    old = re.search(rf"<!-- {tag} -->\n(.*?)<!-- /{tag} -->", text, flags=re.S)
    merged = list(header)
    for r in (old.group(1).rstrip("\n").split("\n")[len(header):] if old else []):
        if r.count("|") == header[0].count("|"):  # rows of an older layout are dropped
            merged.append(fresh.pop(key(r), r))
    merged += [r for r in fresh_rows if key(r) in fresh]
    block = f"<!-- {tag} -->\n" + "\n".join(merged) + f"\n<!-- /{tag} -->"
    if old:
        return re.sub(rf"<!-- {tag} -->.*?<!-- /{tag} -->", lambda _: block, text, flags=re.S)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def write_readme(rows, gemm):
    path = os.path.join(HERE, "README.md")
    with open(path) as f:
        text = f.read()
    date = datetime.date.today().isoformat()
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    header = ["| benchmark | flowmatch | PyTorch | ratio | GFLOP/s | % of FMA peak | 1 -> 2 threads | peak RSS "
              "flowmatch | peak RSS PyTorch | machine | date |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    table = []
    for r in rows:
        fm, pt, unit = r["fm"], r["pt"], r["unit"]
        ptxt = f"{pt[0]:.3f} {unit} ({pt[1]})" if pt else "n/a"
        ratio = f"{pt[0] / fm[0]:.1f}x" if pt else "n/a"
        table.append(f"| {r['name']}: {r['desc']} | {fm[0]:.3f} {unit} ({fm[1]}) | {ptxt} | {ratio} | "
                     f"{fmt(r['gflops'], '.1f')} | {fmt(r['pct'], '.1f', '%')} | {fmt(r['speedup'], '.2f', 'x')} | "
                     f"{fmt(r['rss_fm'], '.0f', ' MB')} | {fmt(r['rss_pt'], '.0f', ' MB')} | {machine} | {date} |")
    gheader = ["| product | flowmatch GFLOP/s | OpenBLAS GFLOP/s | ratio | % of FMA peak | threads | machine | date |",
               "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    gtable, peaks = [], {}
    for line in gemm:
        m = re.match(r"peak ([0-9.]+) GFLOP/s .*?(\d) threads", line)
        if m:
            peaks[m.group(2)] = float(m.group(1))
    for line in gemm:
        m = re.match(r"gemm-(\S+) ([0-9.]+) GFLOP/s \((.*?); OpenBLAS ([0-9.na]+), (\d) threads\)", line)
        if m:
            ours, blas, th = float(m.group(2)), m.group(4), m.group(5)
            pct = fmt(100 * ours / peaks[th], ".1f", "%") if th in peaks else "n/a"
            gtable.append(f"| {m.group(1)} ({m.group(3)}) | {ours:.1f} | {blas if blas != 'nan' else 'n/a'} | "
                          f"{f'{ours / float(blas):.2f}x' if blas != 'nan' else 'n/a'} | {pct} | {th} | {machine} | "
                          f"{date} |")
    for th, pk in sorted(peaks.items()):
        gtable.append(f"| FMA peak (register-only loop) | {pk:.1f} | | | 100% | {th} | {machine} | {date} |")

    def cells(row):
        return [c.strip() for c in row.strip("|").split("|")]

    text = merge_block(text, "table", header, table, lambda r: cells(r)[0].split(":")[0])
    if gtable:
        text = merge_block(text, "gemm", gheader, gtable, lambda r: (cells(r)[0].split(" (")[0], cells(r)[5]))
    with open(path, "w") as f:
        f.write(text)
    print(f"\nupdated {path}")
    # the medians, for bench --check
    jpath = os.path.join(HERE, "results.json")
    try:
        with open(jpath) as f:
            res = json.load(f)
    except (OSError, ValueError):
        res = {}
    for r in rows:
        res.setdefault("benchmarks", {})[r["name"]] = {"seconds": r["medians"], "date": date, "machine": machine}
    for line in gemm:
        m = re.match(r"gemm-(\S+) ([0-9.]+) GFLOP/s .*?(\d) threads\)", line)
        if m:
            res.setdefault("gemm", {}).setdefault(m.group(1), {})[m.group(3)] = float(m.group(2))
    with open(jpath, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"updated {jpath}")


def committed_results():
    """results.json as last committed (the working copy where git has none)."""
    r = subprocess.run(["git", "-C", HERE, "show", "HEAD:./results.json"], capture_output=True, text=True)
    if r.returncode == 0:
        return json.loads(r.stdout), "the committed bench/results.json"
    with open(os.path.join(HERE, "results.json")) as f:
        return json.load(f), "bench/results.json"


def check(bench, only, repeats):
    base, where = committed_results()
    slower, seen = [], 0
    for name, ref in base.get("benchmarks", {}).items():
        if name not in only:
            continue
        for th, old in sorted(ref["seconds"].items()):
            now = median_of([(run([bench, name, "--threads", th]) or (None,))[0] for _ in range(repeats)])
            if now is None:
                slower.append(f"{name} ({th} thr): failed to run")
                continue
            seen += 1
            change = now / old - 1 if old > 0 else 0.0
            print(f"  {name:10s} {th} thr: {now:.4f} s against {old:.4f} s ({100 * change:+.1f}%)")
            if change > 0.10:
                slower.append(f"{name} ({th} thr): {now:.4f} s against {old:.4f} s, {100 * change:.0f}% slower")
    if "gemm" in only and base.get("gemm"):
        for th in ("1", "2"):
            for line in gemm_lines(bench, int(th)):
                m = re.match(r"gemm-(\S+) ([0-9.]+) GFLOP/s", line)
                old = base["gemm"].get(m.group(1), {}).get(th) if m else None
                if old:
                    seen += 1
                    now = float(m.group(2))
                    print(f"  gemm-{m.group(1):9s} {th} thr: {now:.1f} GFLOP/s against {old:.1f} ({100 * (now / old - 1):+.1f}%)")
                    if now < old / 1.10:
                        slower.append(f"gemm-{m.group(1)} ({th} thr): {now:.1f} GFLOP/s against {old:.1f}")
    print(f"\ncompared {seen} medians with {where}")
    for line in slower:
        print(f"SLOWER {line}")
    if not slower:
        print("none is more than 10% slower")
    return 1 if slower else 0


if __name__ == "__main__":
    main()
