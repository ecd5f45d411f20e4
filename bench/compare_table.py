#!/usr/bin/python3
"""Summarise several `flowmatch compare` runs (one folder each, different seeds)
as one Markdown table: W2 per method and sampler at each NFE, mean +- std.

    bench/compare_table.py moons cmp/moons/seed0 cmp/moons/seed1 cmp/moons/seed2
"""
import csv
import statistics
import sys

NFES = ["1", "2", "4", "8", "16", "32", "100", "1000"]


def cell(xs):
    if not xs:
        return ""
    m = statistics.mean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:.0f} ± {s:.0f}" if m >= 10 else f"{m:.3f} ± {s:.3f}"


title, dirs = sys.argv[1], sys.argv[2:]
rows, order = {}, []
for d in dirs:
    with open(f"{d}/compare.csv") as f:
        for r in csv.DictReader(f):
            key = (r["method"], r["sampler"])
            if key not in rows:
                rows[key] = {}
                order.append(key)
            nfe = "1" if r["method"] == "data" else r["nfe"]  # the floor goes in the first column
            rows[key].setdefault(nfe, []).append(float(r["w2"]))
print(f"| {title}: W2, mean ± std of {len(dirs)} seeds | " + " | ".join(f"NFE {n}" for n in NFES) + " |")
print("| --- |" + " ---: |" * len(NFES))
for key in order:
    name = "data vs data (floor)" if key[0] == "data" else f"{key[0]} {key[1]}"
    print(f"| {name} | " + " | ".join(cell(rows[key].get(n)) for n in NFES) + " |")
