#!/usr/bin/python3
"""One flow-matching training step of the U-Net (tests/ref/unet.py) in PyTorch,
for comparison with `flowmatch train --arch unet`: batch of 28 x 28 images,
OT path, MSE, Adam; steps per second on 1 and 2 threads.

    /usr/bin/python3 bench/unet_step.py [--channels 32] [--batch 128] [--iters 20]
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from unet import UNetFlow  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--channels", type=int, default=32)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--iters", type=int, default=20)
ap.add_argument("--threads", default="1,2")
a = ap.parse_args()
for nt in map(int, a.threads.split(",")):
    torch.set_num_threads(nt)
    torch.manual_seed(0)
    flow = UNetFlow(1, 28, 28, base=a.channels)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    x1 = torch.rand(a.batch, 784) * 2 - 1

    def step():
        x0 = torch.randn_like(x1)
        t = torch.rand(a.batch, 1)
        loss = F.mse_loss(flow(t, (1 - t) * x0 + t * x1), x1 - x0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        step()
    dt = time.perf_counter() - t0
    n = sum(p.numel() for p in flow.parameters())
    print(f"torch {torch.__version__} threads {nt}: U-Net {a.channels} ch ({n} parameters), batch {a.batch}: "
          f"{a.iters / dt:.3f} it/s ({dt / a.iters * 1000:.0f} ms/step)")
