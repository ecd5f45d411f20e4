#!/usr/bin/python3
"""The tutorials' central claim, measured: flow matching trains the model a CNF
trains by maximum likelihood, without simulating the ODE in every step.

For each dataset and seed, three models of about the same size are trained
to the same wall-clock budget, single-threaded:
  fm   flow matching, the tutorial's velocity MLP (3 x 64 ELU), Adam 1e-2
  cnf  the same network trained by maximum likelihood through 8 RK4 steps
       (exact divergence), Adam 1e-2
  nf   a normalizing flow, 4 affine couplings of 2 x 32 ELU networks, Adam 1e-3
Training runs in chunks (--resume; the iterations double each chunk); after
each chunk the test NLL is measured (flows: rk4, 100 steps, exact divergence;
the NF: its exact value) on 2000 fresh points (2D) or the held-out rows
(table). The last checkpoint's W2 to the test points is measured too.

    /usr/bin/python3 bench/lineage.py [--out DIR] [--seeds 0 1 2] [--budget SECONDS]
                                      [--datasets moons,8gaussians,checkerboard,diabetes]

The table (diabetes) is scikit-learn's diabetes data without its binary column
(9 columns, 442 rows; 354 train, 88 test), exported to CSV here; it needs
python3-sklearn. Writes DIR/results.csv (every chunk), DIR/table.md (mean and
spread over the seeds) and DIR/nll_vs_time.svg.
"""
import argparse
import csv
import math
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FM = os.path.join(HERE, "..", "flowmatch")
METHODS = {
    "fm": [],
    "cnf": ["--method", "cnf"],
    "nf": ["--method", "nf", "--flow-layers", "4", "--width", "32", "--depth", "2"],
}
NFE = {"fm": "1 forward + backward", "cnf": "32 (8 rk4 x 4 stages) forward + JVP, then backward",
       "nf": "1 pass through 4 couplings + backward"}


def run(args):
    p = subprocess.run([FM] + args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"flowmatch {' '.join(args)} failed ({p.returncode}):\n{p.stderr}{p.stdout}")
    return p.stdout + p.stderr


def export_diabetes(out):
    from sklearn.datasets import load_diabetes
    import numpy as np
    X = load_diabetes(scaled=False).data
    X = np.delete(X, 1, axis=1)  # the binary column
    perm = np.random.RandomState(0).permutation(len(X))
    ntr = int(0.8 * len(X))
    paths = []
    for name, rows in (("train", perm[:ntr]), ("test", perm[ntr:])):
        path = os.path.join(out, f"diabetes_{name}.csv")
        np.savetxt(path, X[rows], delimiter=",", fmt="%.6g")
        paths.append(path)
    return paths


def one_run(dataset, train_spec, test_args, method, seed, budget, out):
    model = os.path.join(out, f"{dataset}_{method}_s{seed}.safetensors")
    rows, total_s, iters, params = [], 0.0, 0, None
    chunk = 25
    while total_s < 0.98 * budget:
        iters += chunk
        if iters == chunk:
            args = ["train", "--data", train_spec, "--seed", str(seed), "--iters", str(iters), "--threads", "1",
                    "--save-every", "-1", "--force", "--out", model] + METHODS[method]
        else:
            args = ["train", "--resume", model, "--iters", str(iters), "--threads", "1", "--save-every", "-1"]
        o = run(args)
        m = re.search(r"trained (\d+) iterations in ([\d.]+) s", o)
        total_s += float(m.group(2))
        if params is None:
            params = int(re.search(r"\((\d+) parameters\)", o).group(1))
        nll = float(re.search(r"NLL\s+(-?[\d.]+) nats", run(["nll", "--model", model, "--threads", "1"] + test_args)).group(1))
        rows.append({"dataset": dataset, "method": method, "seed": seed, "iters": iters, "train_s": round(total_s, 4),
                     "nll": nll, "params": params})
        print(f"  {dataset} {method} seed {seed}: {iters} iterations, {total_s:.2f} s, test NLL {nll:.4f}", flush=True)
        # double, but stop at the budget: the rate so far says how many more fit
        rate = iters / max(total_s, 1e-9)
        chunk = max(1, min(iters, int(rate * (budget - total_s)) + 1))
    ev = run(["eval", "--a", model, "--threads", "1"] + [a if a != "--data" else "--b" for a in test_args])
    rows[-1]["w2"] = float(re.search(r"W2 \(exact\)\s+([\d.]+)", ev).group(1))
    return rows


def time_to(rows, target):
    """Training seconds at the first chunk whose test NLL is <= target (None if never)."""
    for r in rows:
        if r["nll"] <= target:
            return r["train_s"]
    return None


def ms(xs, fmt="{:.3f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "never"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return (fmt + " ± " + fmt).format(statistics.mean(xs), statistics.stdev(xs))


def svg(curves, path, budget):
    """NLL against training time (log scale), one panel per dataset, mean over seeds."""
    colors = {"fm": "#1f77b4", "cnf": "#d62728", "nf": "#2ca02c"}
    datasets = list(curves)
    W, H, pad = 330, 260, 46
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W * len(datasets)}" height="{H + 30}" '
           f'font-family="sans-serif" font-size="11">']
    for k, ds in enumerate(datasets):
        x0 = k * W
        pts = [p for m in curves[ds].values() for p in m]
        lo = min(p[1] for p in pts)
        hi = min(max(p[1] for p in pts), lo + 4)
        tmin, tmax = 0.005, budget * 1.5

        def X(t):
            return x0 + pad + (math.log10(max(t, tmin)) - math.log10(tmin)) / (math.log10(tmax) - math.log10(tmin)) * (W - pad - 10)

        def Y(v):
            return 20 + (min(v, hi) - hi) / (lo - hi) * (H - 40)

        out.append(f'<text x="{x0 + W / 2}" y="14" text-anchor="middle">{ds}</text>')
        out.append(f'<line x1="{x0 + pad}" y1="{H - 20}" x2="{x0 + W - 10}" y2="{H - 20}" stroke="black"/>')
        out.append(f'<line x1="{x0 + pad}" y1="20" x2="{x0 + pad}" y2="{H - 20}" stroke="black"/>')
        for t in (0.01, 0.1, 1, 10, 100):
            if tmin <= t <= tmax:
                out.append(f'<text x="{X(t):.1f}" y="{H - 6}" text-anchor="middle">{t:g}</text>')
        for v in (lo, (lo + hi) / 2, hi):
            out.append(f'<text x="{x0 + pad - 4}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
        for m, c in curves[ds].items():
            poly = " ".join(f"{X(t):.1f},{Y(v):.1f}" for t, v in c)
            out.append(f'<polyline points="{poly}" fill="none" stroke="{colors[m]}" stroke-width="1.8"/>')
        for i, m in enumerate(colors):
            out.append(f'<text x="{x0 + W - 60}" y="{34 + 13 * i}" fill="{colors[m]}">{m}</text>')
    out.append(f'<text x="{W * len(datasets) / 2}" y="{H + 22}" text-anchor="middle">training seconds (log scale, '
               f'one thread); y: test NLL in nats (mean over seeds)</text></svg>')
    with open(path, "w") as f:
        f.write("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "lineage"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=float, default=30.0, help="training seconds per model")
    ap.add_argument("--datasets", default="moons,8gaussians,checkerboard,diabetes")
    ap.add_argument("--table-only", action="store_true", help="remake the table and figure from DIR/results.csv")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.table_only:
        with open(os.path.join(a.out, "results.csv")) as f:
            results = [{k: (v if k in ("dataset", "method") else float(v) if v else None) for k, v in r.items()}
                       for r in csv.DictReader(f)]
        for r in results:
            r["seed"], r["iters"], r["params"] = int(r["seed"]), int(r["iters"]), int(r["params"])
        report(a, results)
        return
    results = []
    for ds in a.datasets.split(","):
        if ds == "diabetes":
            tr, te = export_diabetes(a.out)
            train_spec, test_args = f"csv:{tr}", ["--data", te]
        else:
            train_spec, test_args = ds, ["--data", ds, "--n", "2000"]
        for seed in a.seeds:
            for method in METHODS:
                extra = [] if ds == "diabetes" else ["--seed", str(1000 + seed)]
                results += one_run(ds, train_spec, test_args + extra, method, seed, a.budget, a.out)
    keys = ["dataset", "method", "seed", "iters", "train_s", "nll", "params", "w2"]
    with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in results:
            w.writerow({k: r.get(k, "") for k in keys})
    report(a, results)


def report(a, results):
    """DIR/table.md and DIR/nll_vs_time.svg from the chunks' rows."""
    lines = [f"Budget {a.budget:g} s of training per model, one thread; seeds {' '.join(map(str, a.seeds))}; "
             "mean ± standard deviation over the seeds.", "",
             "| data | method | parameters | network evaluations per step | ms per iteration | iterations | "
             "final test NLL | best test NLL | W2 | seconds to FM's final NLL + 0.05 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    curves = {}
    for ds in a.datasets.split(","):
        runs = {m: {s: [r for r in results if r["dataset"] == ds and r["method"] == m and r["seed"] == s]
                    for s in a.seeds} for m in METHODS}
        for m in METHODS:
            grid = sorted({r["train_s"] for s in a.seeds for r in runs[m][s]})
            curves.setdefault(ds, {})[m] = [(r["train_s"], statistics.mean(
                [x["nll"] for x in [runs[m][s][min(i, len(runs[m][s]) - 1)] for s in a.seeds]]))
                for i, r in enumerate(runs[m][a.seeds[0]])]
        for m in METHODS:
            fin = [runs[m][s][-1] for s in a.seeds]
            per_it = [1000 * f["train_s"] / f["iters"] for f in fin]
            target = {s: runs["fm"][s][-1]["nll"] + 0.05 for s in a.seeds}
            tt = [time_to(runs[m][s], target[s]) for s in a.seeds]
            lines.append(f"| {ds} | {m} | {fin[0]['params']} | {NFE[m]} | {ms(per_it, '{:.2f}')} | "
                         f"{ms([f['iters'] for f in fin], '{:.0f}')} | {ms([f['nll'] for f in fin])} | "
                         f"{ms([min(r['nll'] for r in runs[m][s]) for s in a.seeds])} | "
                         f"{ms([f['w2'] for f in fin])} | {ms(tt, '{:.2f}')} ({sum(t is not None for t in tt)} of "
                         f"{len(tt)} seeds) |")
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    svg(curves, os.path.join(a.out, "nll_vs_time.svg"), a.budget)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
