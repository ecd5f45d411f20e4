#!/usr/bin/env python3
"""mnist_table.py - the table of bench/mnist_table.sh's logs, as Markdown.

    python3 bench/mnist_table.py OUT        (OUT: the folder mnist_table.sh wrote)

Reads OUT/<model>_*.log for fm-ot, fm-vp, score-vp and ddpm and prints the
main table (bits per dimension with Hutchinson's standard error, dopri5 NFE
and Frechet distance at tolerances 1e-5 and 1e-3, the class histogram) and
the fixed-step table (Frechet distance per sampler at 10, 20 and 50 steps).
"""
import os
import re
import sys

MODELS = [("fm-ot", "FM, OT path"), ("fm-vp", "FM, VP (diffusion) path"),
          ("score-vp", "score matching, VP SDE"), ("ddpm", "DDPM")]


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def nll(out, name):
    t = read(os.path.join(out, name + "_nll.log"))
    if not t:
        return None
    bpd = re.search(r"of the 8-bit pixels \(dequantised, an upper bound\): ([0-9.]+) bits", t)
    se = re.search(r"standard error of the mean: ([0-9.]+) nats", t)
    if not bpd:
        return None
    b = float(bpd.group(1))
    s = float(se.group(1)) / (784 * 0.6931471805599453) if se else None
    return b, s


def evaluation(out, name, what):
    t = read(os.path.join(out, "%s_%s.log" % (name, what)))
    if not t:
        return None
    fd = re.search(r"Frechet distance ([0-9.]+)", t)
    nfe = re.search(r"NFE ([0-9]+)\)", t)
    hist = re.search(r"predicted classes of a: (.*)", t)
    if not fd:
        return None
    counts = [int(c) for c in re.findall(r"\d: (\d+)", hist.group(1))] if hist else []
    return float(fd.group(1)), int(nfe.group(1)) if nfe else None, counts


def train_info(out, name):
    t = read(os.path.join(out, name + "_train.log")) or ""
    # one run's train_seconds, or a stopped run's first segment plus its resumption
    parts = [int(x) for x in re.findall(r"train_seconds (\d+)", t)]
    parts += [int(x) for x in re.findall(r"first_segment .*\((\d+) s\)", t)]
    parts += [int(x) for x in re.findall(r"train_seconds_after_resume (\d+)", t)]
    return sum(parts) if parts else None


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench/mnist"
    print("| model | training (min of wall time, 1 thread, shared cores) | bits/dim (Hutchinson SE) | dopri5 1e-5: NFE | FD | dopri5 1e-3: NFE | FD "
          "| classes of the 1e-5 samples (0..9) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, label in MODELS:
        ts = train_info(out, name)
        n = nll(out, name)
        e5 = evaluation(out, name, "dopri5_1e-5")
        e3 = evaluation(out, name, "dopri5_1e-3")
        if name == "ddpm":
            e5 = None
            dd = evaluation(out, name, "ddim_100")
        cells = [label, "%.1f" % (ts / 60) if ts else "",
                 ("%.3f (%.3f)" % n if n and n[1] is not None else ("%.3f" % n[0] if n else "n/a"))]
        for e in (e5, e3):
            cells += [str(e[1]) if e else "n/a", "%.1f" % e[0] if e else "n/a"]
        hist = e5[2] if e5 else (dd[2] if name == "ddpm" and dd else [])
        cells.append(" ".join(str(c) for c in hist))
        if name == "ddpm" and dd:
            cells[4] = "DDIM 100: %.1f" % dd[0]
        print("| " + " | ".join(cells) + " |")
    print()
    print("| model | sampler | FD at 10 steps (NFE) | 20 steps | 50 steps |")
    print("| --- | --- | ---: | ---: | ---: |")
    samplers = {"fm-ot": ["euler", "midpoint"], "fm-vp": ["euler", "midpoint"],
                "score-vp": ["euler", "midpoint", "em"], "ddpm": ["ddim", "ancestral"]}
    for name, label in MODELS:
        for s in samplers[name]:
            cells = [label, s]
            for k in (10, 20, 50):
                e = evaluation(out, name, "%s_%d" % (s, k))
                cells.append("%.1f (%d)" % (e[0], e[1]) if e and e[1] is not None else ("%.1f" % e[0] if e else "n/a"))
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
