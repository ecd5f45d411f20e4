#!/usr/bin/python3
"""Summarise bench/onestep.sh's results.csv as a Markdown table (mean +- std over seeds)."""
import csv
import statistics
import sys
from collections import defaultdict

NAMES = {"data": "data vs data (floor)", "icfm": "I-CFM (teacher)", "otcfm": "OT-CFM", "rf1": "I-CFM + 1 reflow",
         "rf2": "I-CFM + 2 reflows", "meanflow": "MeanFlow", "split": "SplitMeanFlow"}


def ms(xs, fmt="{:.3f}"):
    xs = [float(x) for x in xs if x != ""]
    if not xs:
        return ""
    if len(xs) < 2:
        return fmt.format(xs[0])
    return fmt.format(statistics.mean(xs)) + " ± " + fmt.format(statistics.stdev(xs))


rows = defaultdict(lambda: defaultdict(list))
order = []
with open(sys.argv[1]) as f:
    for r in csv.DictReader(f):
        key = (r["setting"], r["route"])
        if key not in order:
            order.append(key)
        rows[key][r["steps"]].append(r["w2"])
        if r["steps"] == "1":
            rows[key]["secs"].append(r["train_seconds"])
print("| setting | route | W2, 1 step | W2, 2 steps | W2, 4 steps | W2, 100 steps | training (s, 1 thread) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for key in order:
    d = rows[key]
    cells = [ms(d[s]) for s in ("1", "2", "4", "100")]
    print(f"| {key[0]} | {NAMES.get(key[1], key[1])} | " + " | ".join(cells) + f" | {ms(d['secs'], '{:.1f}')} |")
