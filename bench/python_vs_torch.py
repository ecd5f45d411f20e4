#!/usr/bin/env python3
"""python_vs_torch.py - the tutorial's training from Python: flowmatch's
package against PyTorch's own loop on the same model (3 x 64 ELU on
concat(t, x), OT path, Adam 1e-2, batches of 256 moons points), one thread
each, alternating, best of `repeats`; then the samples' quality (W2 to fresh
moons by flowmatch's exact W2, midpoint 8 steps) so both trained the same
thing.

    PYTHONPATH=python /usr/bin/python3 bench/python_vs_torch.py [iters] [repeats]
"""
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import flowmatch  # noqa: E402

torch.set_num_threads(1)
flowmatch.set_threads(1)


def moons(n, rng):
    """sklearn's make_moons with noise 0.05, as flowmatch's moons."""
    a = rng.uniform(0, np.pi, n // 2)
    b = rng.uniform(0, np.pi, n - n // 2)
    x = np.concatenate([np.stack([np.cos(a), np.sin(a)], 1), np.stack([1 - np.cos(b), 0.5 - np.sin(b)], 1)])
    return (x + rng.normal(0, 0.05, x.shape)).astype(np.float32)


def torch_train(iters, seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = nn.Sequential(nn.Linear(3, 64), nn.ELU(), nn.Linear(64, 64), nn.ELU(), nn.Linear(64, 64), nn.ELU(),
                        nn.Linear(64, 2))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    loss_fn = nn.MSELoss()
    for _ in range(iters):
        x1 = torch.from_numpy(moons(256, rng))
        x0 = torch.randn_like(x1)
        t = torch.rand(len(x1), 1)
        xt = (1 - t) * x0 + t * x1
        opt.zero_grad()
        loss_fn(net(torch.cat((t, xt), -1)), x1 - x0).backward()
        opt.step()
    return net


def torch_sample(net, n, steps=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    with torch.no_grad():
        for k in range(steps):
            t0, h = k / steps, 1 / steps
            tt = torch.full((n, 1), t0)
            xm = x + h / 2 * net(torch.cat((tt, x), -1))
            x = x + h * net(torch.cat((tt + h / 2, xm), -1))
    return x.numpy()


def w2(a, b):
    """flowmatch's exact W2, through the CLI's library: eval on two .npy files."""
    import subprocess
    import tempfile
    d = tempfile.mkdtemp()
    np.save(os.path.join(d, "a.npy"), a)
    np.save(os.path.join(d, "b.npy"), b)
    out = subprocess.run(["./flowmatch", "eval", "--a", os.path.join(d, "a.npy"), "--b", os.path.join(d, "b.npy"),
                          "--metrics", "w2", "--json"], capture_output=True, text=True).stdout
    import json
    return json.loads(out)["w2"]


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    t_fm, t_torch = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        m = flowmatch.train("moons", iters=iters)
        t_fm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        net = torch_train(iters)
        t_torch.append(time.perf_counter() - t0)
    ref = moons(2000, np.random.default_rng(7))
    q_fm = w2(m.sample(2000, steps=8, solver="midpoint"), ref)
    q_torch = w2(torch_sample(net, 2000), ref)
    print(f"| training {iters} iterations (best of {repeats}) | seconds | iterations/s | W2 of 2000 samples |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| flowmatch from Python (flowmatch.train) | {min(t_fm):.2f} | {iters / min(t_fm):.0f} | {q_fm:.3f} |")
    print(f"| PyTorch {torch.__version__}, the same loop | {min(t_torch):.2f} | {iters / min(t_torch):.0f} | "
          f"{q_torch:.3f} |")
    print(f"\nflowmatch is {min(t_torch) / min(t_fm):.1f} times as fast")


if __name__ == "__main__":
    main()
