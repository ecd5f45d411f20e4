#!/usr/bin/python3
"""Summarise bench/onestep_mnist.sh's eval logs as a Markdown table: per route,
the Frechet distance and the class accuracy at 1, 2 and 4 steps (the teacher
also at 100), and the training seconds."""
import os
import re
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "bench/onestep_mnist"
ROUTES = [("teacher", "I-CFM (teacher)", "euler"), ("otcfm", "OT-CFM", "euler"), ("reflow1", "I-CFM + 1 reflow", "euler"),
          ("reflow2", "I-CFM + 2 reflows", "euler"), ("meanflow", "MeanFlow", "jump")]


def scores(route, solver, steps):
    p = os.path.join(out, f"{route}_{solver}_{steps}.log")
    if not os.path.exists(p):
        return None
    t = open(p).read()
    fd = re.search(r"^Frechet distance\s+([0-9.]+)", t, re.M)
    acc = re.search(r"^accuracy\s+([0-9.]+)", t, re.M)
    return (float(fd.group(1)) if fd else float("nan"), 100 * float(acc.group(1)) if acc else float("nan"))


print("| route | FD, 1 step | acc., 1 step | FD, 2 steps | acc., 2 steps | FD, 4 steps | acc., 4 steps "
      "| FD, 100 steps | acc., 100 steps | training (s, 2 threads) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r, name, solver in ROUTES:
    cells = []
    for s in (1, 2, 4, 100):
        v = scores(r, solver, s)
        cells += [f"{v[0]:.1f}", f"{v[1]:.1f}%"] if v else ["", ""]
    sp = os.path.join(out, f"{r}_seconds")
    secs = f"{float(open(sp).read()):.0f}" if os.path.exists(sp) else ""
    print(f"| {name} | " + " | ".join(cells) + f" | {secs} |")
