#!/usr/bin/env python3
"""mpi_scaling.py - the step time of data-parallel U-Net training on P nodes,
predicted from parts measured on this machine (docs/distributed.md).

    python3 bench/mpi_scaling.py T128 T1024 PARAMS

T128, T1024: seconds of one U-Net step at batch 128 and 1024 on one core
(build/rel/bench unet-step --threads 1 --batch B); PARAMS: its parameter
count. Compute is taken as linear in the rows a node holds, t(b) = a + c b,
through the two measurements. Exchange per step, for S = 4 PARAMS bytes:
  ring all-reduce        2 (P-1)/P S/bw + 2 (P-1) lat
  flowmatch's ordered    S/bw + (P-1)(piece/bw + lat)       the chain, pipelined
  reduction              + S/bw + ceil(log2 P)(piece/bw + lat)  the broadcast
with piece = 256 KiB and the link latency lat given per link speed below.
Prints a Markdown table.
"""
import math
import sys

t128, t1024, params = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
c = (t1024 - t128) / (1024 - 128)
a = t128 - 128 * c
S = 4 * params
piece = 65536 * 4
links = [("10 Gbit/s", 10e9 / 8, 20e-6), ("100 Gbit/s", 100e9 / 8, 2e-6)]


def ring(P, bw, lat):
    return 2 * (P - 1) / P * S / bw + 2 * (P - 1) * lat


def ordered(P, bw, lat):
    return S / bw + (P - 1) * (piece / bw + lat) + S / bw + math.ceil(math.log2(P)) * (piece / bw + lat)


print(f"compute t(b) = {a * 1e3:.1f} ms + {c * 1e3:.3f} ms x rows; all-reduce volume S = {S / 1e6:.2f} MB per step\n")
print("| batch | nodes | rows per node | compute (ms) | link | ring all-reduce (ms) | step, ring (ms) "
      "| ordered reduction (ms) | step, ordered (ms) | speed-up over 1 node |")
print("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
for B in (128, 1024):
    one = a + c * B
    for P in (2, 8, 32):
        rows = B / P
        comp = a + c * rows
        for name, bw, lat in links:
            r, o = ring(P, bw, lat), ordered(P, bw, lat)
            print(f"| {B} | {P} | {rows:g}{' (below 32)' if rows < 32 else ''} | {comp * 1e3:.1f} | {name} | "
                  f"{r * 1e3:.2f} | {(comp + r) * 1e3:.1f} | {o * 1e3:.2f} | {(comp + o) * 1e3:.1f} | "
                  f"{one / (comp + o):.1f}x |")
