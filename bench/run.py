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
counts. --readme rewrites the table in bench/README.md.
"""
import argparse
import datetime
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


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"^RESULT (\S+) ([0-9.eE+-]+)", out.stdout, re.M)
    if out.returncode != 0 or not m:
        sys.stderr.write(f"failed: {' '.join(cmd)}\n{out.stdout}{out.stderr}")
        return None
    return float(m.group(2))


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
    ap.add_argument("--readme", action="store_true", help="rewrite the table in bench/README.md")
    a = ap.parse_args()
    only = a.only.split(",")
    torch_ok = have_torch()
    if not torch_ok:
        print("PyTorch not found (apt-get install python3-torch python3-sklearn libopenblas0): flowmatch only")
    rows = []
    for name, (desc, unit) in BENCHES.items():
        if name not in only:
            continue
        runs = {}
        for _ in range(a.repeats):
            for th in (1, 2):
                runs.setdefault(("flowmatch", th, ""), []).append(run([a.bench, name, "--threads", str(th)]))
                for label, extra in TORCH_VARIANTS.get(name, [("", [])]) if torch_ok else []:
                    runs.setdefault(("PyTorch", th, label), []).append(
                        run(["/usr/bin/python3", os.path.join(HERE, "torch_bench.py"), name, "--threads", str(th)]
                            + extra))
        med = {k: statistics.median([x for x in v if x is not None]) for k, v in runs.items()
               if any(x is not None for x in v)}
        fm = min((v, cfg(th, label)) for (who, th, label), v in med.items() if who == "flowmatch")
        pt = min(((v, cfg(th, label)) for (who, th, label), v in med.items() if who == "PyTorch"), default=None)
        print(f"\n{name}: {desc}")
        for (who, th, label), v in sorted(med.items()):
            print(f"  {who:9s} {th} thread(s){', ' + label if label else '':15s}: {v:.4f} {unit}")
        if pt:
            print(f"  ratio: flowmatch ({fm[1]}) is {pt[0] / fm[0]:.2f}x faster than PyTorch ({pt[1]})")
        rows.append((name, desc, fm, pt, unit))
    gemm_lines = []
    if "gemm" in only:
        print("\ngemm (GFLOP/s; higher is better)")
        for th in (1, 2):
            out = subprocess.run([a.bench, "gemm", "--threads", str(th)], capture_output=True, text=True).stdout
            for line in out.splitlines():
                if line.startswith("RESULT"):
                    print("  " + line[7:])
                    gemm_lines.append(line[7:])
    if a.readme:
        write_readme(rows, gemm_lines)


def write_readme(rows, gemm_lines):
    path = os.path.join(HERE, "README.md")
    with open(path) as f:
        text = f.read()
    date = datetime.date.today().isoformat()
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    table = ["| benchmark | flowmatch | PyTorch | ratio | machine | date |", "| --- | --- | --- | --- | --- | --- |"]
    for name, desc, fm, pt, unit in rows:
        ptxt = f"{pt[0]:.3f} {unit} ({pt[1]})" if pt else "n/a"
        ratio = f"{pt[0] / fm[0]:.1f}x" if pt else "n/a"
        table.append(f"| {name}: {desc} | {fm[0]:.3f} {unit} ({fm[1]}) | {ptxt} | {ratio} | {machine} | {date} |")
    for line in gemm_lines:
        m = re.match(r"gemm-(\S+) ([0-9.]+) GFLOP/s \((.*?); OpenBLAS ([0-9.na]+), (\d) threads\)", line)
        if m:
            table.append(f"| GEMM {m.group(1)} ({m.group(3)}), GFLOP/s | {m.group(2)} | OpenBLAS {m.group(4)} | "
                         f"{float(m.group(2)) / float(m.group(4)):.2f}x | {machine}, {m.group(5)} thr | {date} |"
                         if m.group(4) != "nan" else
                         f"| GEMM {m.group(1)} ({m.group(3)}), GFLOP/s | {m.group(2)} | n/a | n/a | {machine} | {date} |")
        m = re.match(r"peak ([0-9.]+) GFLOP/s .*?(\d) threads", line)
        if m:
            table.append(f"| FMA peak (register-only loop), GFLOP/s | {m.group(1)} | | | {machine}, {m.group(2)} thr | {date} |")
    # rows of benchmarks not run this time stay as they were; rerun ones are replaced in place
    def key(row):
        cells = [c.strip() for c in row.strip("|").split("|")]
        return (cells[0].split(":")[0], cells[4] if cells[0].startswith(("GEMM", "FMA")) else "")

    fresh = {key(r): r for r in table[2:]}
    old = re.search(r"<!-- table -->\n(.*?)\n<!-- /table -->", text, flags=re.S)
    merged = table[:2]
    for r in (old.group(1).split("\n")[2:] if old else []):
        merged.append(fresh.pop(key(r), r))
    merged += [r for r in table[2:] if key(r) in fresh]
    block = "<!-- table -->\n" + "\n".join(merged) + "\n<!-- /table -->"
    text = re.sub(r"<!-- table -->.*<!-- /table -->", lambda _: block, text, flags=re.S)
    with open(path, "w") as f:
        f.write(text)
    print(f"\nupdated {path}")


if __name__ == "__main__":
    main()
