#!/usr/bin/python3
"""PyTorch's side of the benchmarks in bench/run.py (Debian's python3-torch).

    torch_bench.py ref-train  --threads N [--iters 10000]
    torch_bench.py wide-step  --threads N [--steps 20]
    torch_bench.py sample     --threads N [--n 1000000]
    torch_bench.py conv       --threads N [--steps 20]
    torch_bench.py unet-step  --threads N [--steps 10] [--channels-last]

Each prints "RESULT <name> <seconds> ..." like bench/bench.c. ref-train is the
tutorial's loop as written (make_moons every iteration); wide-step is the
checkerboard configuration of Meta's flow_matching 2D example (MLP 4 x 512
SiLU on concat(x, t), batch 4096, Adam); sample is 8 of the tutorial's
midpoint steps on 1,000,000 points under torch.no_grad(); conv is one
F.conv2d layer (3x3, padding 1, 128 x 32 x 28 x 28 -> 32) forward and backward
to the input, weight and bias; unet-step is one training step of the default
U-Net (unet_step.py) at batch 128, in the NCHW or the channels_last format.
"""
import argparse
import os
import resource
import sys
import time

# Debian's PyTorch multiplies with OpenBLAS, whose own thread pool ignores
# torch.set_num_threads: without these, a "1 thread" run multiplies on every
# core. They must be set before torch loads. --blas-all-cores leaves OpenBLAS
# at its default (every core), as a user who only calls set_num_threads has it.
_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    if "--blas-all-cores" not in sys.argv:
        os.environ[_var] = _threads

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from tutorial_flow import Flow  # noqa: E402


def ref_train(iters):
    from sklearn.datasets import make_moons
    torch.manual_seed(0)
    flow = Flow()
    opt = torch.optim.Adam(flow.parameters(), 1e-2)
    loss_fn = nn.MSELoss()
    t0 = time.perf_counter()
    for _ in range(iters):
        x_1 = torch.Tensor(make_moons(256, noise=0.05)[0])
        x_0 = torch.randn_like(x_1)
        t = torch.rand(len(x_1), 1)
        x_t = (1 - t) * x_0 + t * x_1
        opt.zero_grad()
        loss = loss_fn(flow(t=t, x_t=x_t), x_1 - x_0)
        loss.backward()
        opt.step()
    t = time.perf_counter() - t0
    print(f"RESULT ref-train {t:.4f} s ({iters} iterations, final loss {loss.item():.4f}, "
          f"{torch.get_num_threads()} threads)")


def checkerboard(n):
    x1 = torch.rand(n) * 4 - 2
    x2 = torch.rand(n) - torch.randint(0, 2, (n,)).float() * 2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], 1) * 2


def wide_step(steps):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 512), nn.SiLU(), nn.Linear(512, 512), nn.SiLU(), nn.Linear(512, 512),
                        nn.SiLU(), nn.Linear(512, 512), nn.SiLU(), nn.Linear(512, 2))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        x1 = checkerboard(4096)
        x0 = torch.randn_like(x1)
        t = torch.rand(4096, 1)
        xt = (1 - t) * x0 + t * x1
        opt.zero_grad()
        loss = ((net(torch.cat([xt, t], 1)) - (x1 - x0)) ** 2).mean()
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    mac = 4096.0 * (3 * 512 + 3 * 512 * 512 + 512 * 2)
    mean = sum(times) / len(times)
    print(f"RESULT wide-step {mean:.5f} s mean (best {min(times):.5f}; {6 * mac / mean / 1e9:.1f} GFLOP/s at the "
          f"mean, {torch.get_num_threads()} threads)")


@torch.no_grad()
def sample(n):
    torch.manual_seed(0)
    flow = Flow()
    x = torch.randn(n, 2)
    ts = torch.linspace(0, 1.0, 9)
    t0 = time.perf_counter()
    for i in range(8):
        x = flow.step(x_t=x, t_start=ts[i], t_end=ts[i + 1])
    t = time.perf_counter() - t0
    print(f"RESULT sample {t:.4f} s ({n} points, NFE 16, {torch.get_num_threads()} threads)")


def conv(steps):
    torch.manual_seed(0)
    N, C, H, W, O = 128, 32, 28, 28, 32
    x = torch.randn(N, C, H, W, requires_grad=True)
    w = (torch.randn(O, C, 3, 3) * 0.06).requires_grad_()
    b = (torch.randn(O) * 0.1).requires_grad_()
    dy = torch.randn(N, O, H, W)
    times = []
    for i in range(steps + 2):
        x.grad = w.grad = b.grad = None
        t0 = time.perf_counter()
        y = torch.nn.functional.conv2d(x, w, b, stride=1, padding=1)
        y.backward(dy)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    mean = sum(times) / len(times)
    flops = 3 * 2.0 * N * O * H * W * C * 9
    print(f"RESULT conv {mean:.5f} s mean (best {min(times):.5f}; {flops / mean / 1e9:.1f} GFLOP/s at the mean, "
          f"{torch.get_num_threads()} threads)")


def unet_step(steps, channels_last):
    import statistics
    from unet_step import step_times
    times, n, cpu = step_times(torch.get_num_threads(), channels_last, steps=steps)
    print(f"RESULT unet-step {statistics.median(times):.4f} s median (best {min(times):.4f}, mean "
          f"{sum(times) / len(times):.4f} of {len(times)} steps, CPU time {cpu:.4f} s per step; {n} parameters, "
          f"{'channels_last' if channels_last else 'NCHW'}, {torch.get_num_threads()} threads)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["ref-train", "wide-step", "sample", "conv", "unet-step"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--blas-all-cores", action="store_true", help="leave OpenBLAS's own thread count at its default")
    ap.add_argument("--n", type=int, default=1000000)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    steps = a.steps or (10 if a.which == "unet-step" else 20)
    base = resident_mb()  # the interpreter and torch, before any work
    {"ref-train": lambda: ref_train(a.iters), "wide-step": lambda: wide_step(steps),
     "sample": lambda: sample(a.n), "conv": lambda: conv(steps),
     "unet-step": lambda: unet_step(steps, a.channels_last)}[a.which]()
    # peak resident memory of the whole process, as bench.c reports its own
    print(f"ROOF {a.which} rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} "
          f"base_mb={base:.1f} threads={a.threads}")


def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


if __name__ == "__main__":
    main()
