#!/usr/bin/python3
"""Summarise bench/couplings.sh's results.csv as a Markdown table (mean +- std over seeds)."""
import csv
import statistics
import sys
from collections import defaultdict

NAMES = {"data": "data vs data (floor)", "icfm": "I-CFM", "otcfm": "OT-CFM", "sbcfm": "SB-CFM", "rf1": "1-rectified", "rf2": "2-rectified"}


def ms(xs):
    xs = [float(x) for x in xs if x != ""]
    if not xs:
        return ""
    if len(xs) < 2:
        return f"{xs[0]:.3f}"
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"


rows = defaultdict(lambda: defaultdict(list))
order = []
with open(sys.argv[1]) as f:
    for r in csv.DictReader(f):
        key = (r["setting"], r["method"])
        if key not in order:
            order.append(key)
        rows[key][("w2", r["steps"])].append(r["w2"])
        rows[key][("pe", r["steps"])].append(r["normalised_pe"])
        if r["steps"] == "100":
            rows[key][("nll",)].append(r["nll"])
print("| setting | method | W2, 1 step | W2, 2 steps | W2, 8 steps | W2, 100 steps "
      "| norm. path energy (100 steps) | NLL (nats) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for key in order:
    d = rows[key]
    cells = [ms(d[("w2", s)]) for s in ("1", "2", "8", "100")]
    print(f"| {key[0]} | {NAMES.get(key[1], key[1])} | " + " | ".join(cells) +
          f" | {ms(d[('pe', '100')])} | {ms(d[('nll',)])} |")
print()
print("Path energy at 1, 2 and 8 steps (normalised):")
print()
print("| setting | method | 1 step | 2 steps | 8 steps |")
print("| --- | --- | --- | --- | --- |")
for key in order:
    if key[1] == "data":
        continue
    d = rows[key]
    print(f"| {key[0]} | {NAMES.get(key[1], key[1])} | " + " | ".join(ms(d[("pe", s)]) for s in ("1", "2", "8")) + " |")
