#!/usr/bin/python3
"""One flow-matching training step of the U-Net (tests/ref/unet.py, the network
`flowmatch train --arch unet` builds) in PyTorch: a batch of 1 x 28 x 28
images, OT path (x_t = (1 - t) x0 + t x1, target x1 - x0), MSE, Adam 1e-3.

    /usr/bin/python3 bench/unet_step.py [--channels 32] [--batch 128] [--steps 10] [--repeats 2]

tries every configuration PyTorch offers on a CPU, 1 and 2 threads with the
NCHW (contiguous) and channels_last memory formats, in turn and `--repeats`
times (so slow moments of a shared machine fall on all of them), and prints
the median seconds per step of each and the best. torch_bench.py runs one
configuration per process for bench/run.py (`torch_bench.py unet-step
--threads N [--channels-last]`).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from unet import UNetFlow  # noqa: E402

WARMUP = 3


def step_times(threads, channels_last, channels=32, batch=128, steps=10):
    """Seconds of each of `steps` training steps after WARMUP untimed ones, the
    parameter count, and the process's CPU time per step."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    flow = UNetFlow(1, 28, 28, base=channels)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = flow.net.to(memory_format=fmt)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    x1 = torch.rand(batch, 784) * 2 - 1  # data in [-1, 1], as flowmatch standardises pixels

    def step():
        x0 = torch.randn_like(x1)
        t = torch.rand(batch, 1)
        xt = ((1 - t) * x0 + t * x1).reshape(batch, 1, 28, 28).contiguous(memory_format=fmt)
        loss = F.mse_loss(net(t, xt).reshape(batch, -1), x1 - x0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    times = []
    for i in range(WARMUP + steps):
        if i == WARMUP:
            cpu = time.process_time()
        t0 = time.perf_counter()
        step()
        if i >= WARMUP:
            times.append(time.perf_counter() - t0)
    return times, sum(p.numel() for p in flow.parameters()), (time.process_time() - cpu) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--one", action="store_true", help="(internal) one configuration in this process")
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    if a.one:
        times, n, _ = step_times(int(a.threads), a.channels_last, a.channels, a.batch, a.steps)
        print(f"RESULT {statistics.median(times):.4f} {min(times):.4f} {n}")
        return
    # each configuration in a fresh process (thread pools and allocator state do not carry over)
    configs = [(th, cl) for th in map(int, a.threads.split(",")) for cl in (False, True)]
    med, best = {}, {}
    for _ in range(a.repeats):
        for th, cl in configs:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", "--threads", str(th),
                                  "--channels", str(a.channels), "--batch", str(a.batch), "--steps", str(a.steps)]
                                 + (["--channels-last"] if cl else []), capture_output=True, text=True, check=True,
                                 env=dict(os.environ, OMP_NUM_THREADS=str(th), OPENBLAS_NUM_THREADS=str(th),
                                          MKL_NUM_THREADS=str(th)))  # OpenBLAS's pool ignores set_num_threads
            m, b, n = out.stdout.split()[1:4]
            med.setdefault((th, cl), []).append(float(m))
            best[(th, cl)] = min(best.get((th, cl), float("inf")), float(b))
    print(f"torch {torch.__version__}, U-Net {a.channels} ch ({n} parameters), batch {a.batch}; "
          f"seconds per step, median of {a.steps} steps after {WARMUP}, median over {a.repeats} runs:")
    for (th, cl), v in med.items():
        print(f"  {th} thread(s), {'channels_last' if cl else 'NCHW         '}: {statistics.median(v):.4f} s "
              f"(best step {best[(th, cl)]:.4f})")
    th, cl = min(med, key=lambda k: statistics.median(med[k]))
    print(f"best: {th} thread(s), {'channels_last' if cl else 'NCHW'}, {statistics.median(med[(th, cl)]):.4f} s/step")


if __name__ == "__main__":
    main()
