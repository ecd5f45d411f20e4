#!/usr/bin/python3
"""The tutorial's 2D example in PyTorch, measured the way `flowmatch demo` is.

    /usr/bin/python3 bench/ref_moons.py --seeds 0 1 2 [--iters 10000] [--threads 1]

For each seed: trains Flow (3 x 64 ELU on concat(t, x)) on make_moons(256,
noise=0.05) with Adam 1e-2, then draws 2000 samples with 8 midpoint steps and
prints the exact W2 (scipy's linear_sum_assignment) to 2000 fresh moons, and
the training time. Needs Debian's python3-torch, python3-sklearn, python3-scipy.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from sklearn.datasets import make_moons
from torch import Tensor, nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from tutorial_flow import Flow  # noqa: E402


def train(seed, iters):
    torch.manual_seed(seed)
    np.random.seed(seed)
    flow = Flow()
    optimizer = torch.optim.Adam(flow.parameters(), 1e-2)
    loss_fn = nn.MSELoss()
    t0 = time.time()
    for _ in range(iters):
        x_1 = Tensor(make_moons(256, noise=0.05)[0])
        x_0 = torch.randn_like(x_1)
        t = torch.rand(len(x_1), 1)
        x_t = (1 - t) * x_0 + t * x_1
        dx_t = x_1 - x_0
        optimizer.zero_grad()
        loss_fn(flow(t=t, x_t=x_t), dx_t).backward()
        optimizer.step()
    return flow, time.time() - t0


@torch.no_grad()
def sample(flow, n, steps=8):
    x = torch.randn(n, 2)
    ts = torch.linspace(0, 1.0, steps + 1)
    for i in range(steps):
        x = flow.step(x_t=x, t_start=ts[i], t_end=ts[i + 1])
    return x.numpy().astype(np.float64)


def w2(a, b):
    c = cdist(a, b, "sqeuclidean")
    r, k = linear_sum_assignment(c)
    return float(np.sqrt(c[r, k].mean()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ws = []
    for s in a.seeds:
        flow, secs = train(s, a.iters)
        x = sample(flow, 2000)
        ref = make_moons(2000, noise=0.05, random_state=10_000 + s)[0]
        ws.append(w2(x, ref))
        print(f"seed {s}: trained {a.iters} iterations in {secs:.2f} s on {a.threads} thread(s); W2 {ws[-1]:.4f}",
              flush=True)
    print(f"W2 median {np.median(ws):.4f}, mean {np.mean(ws):.4f}, std {np.std(ws):.4f} over {len(ws)} seeds")


if __name__ == "__main__":
    main()
