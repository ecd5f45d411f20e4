"""Fixtures of the lineage's two likelihood models (gen_fixtures.py cnf / nf).

cnf.safetensors: a velocity MLP (concat(t, x) -> 2 hidden layers of 16, ELU
-> x) and 12 points; the negative log-likelihood of the points integrated
from t = 1 back to 0 through 8 RK4 steps with the exact divergence (by double
backward) and with Hutchinson's estimate on fixed Rademacher probes, and the
gradient of each with respect to every weight; and Jacobian-vector products
of the network along x and along t (torch.func.jvp).

nf.safetensors: a RealNVP-style flow on 3 dimensions, 4 layers, each an
ActNorm (y = (x + bias) exp(logs)) then an affine coupling whose mask keeps
the coordinates i with (i + k) even: s = S tanh(snet(m x) / S) and
t = tnet(m x) on the others (S = 2; snet and tnet 2 hidden layers of 8, ELU),
y = m x + (1 - m)(x exp(s) + t), log|det| = sum (1 - m) s. The points, z, the
log-determinants, the mean NLL under N(0, I) and its gradient.

References are computed in float64 from float32 weights and inputs.
"""
import math

import torch
import torch.nn as nn


def velocity_net(gen):
    net = nn.Sequential(nn.Linear(3, 16), nn.ELU(), nn.Linear(16, 16), nn.ELU(), nn.Linear(16, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * 0.6)
    return net


def cnf_nll(net, x, steps, probe=None):
    """Mean NLL of x through `steps` RK4 steps from t = 1 to 0 (exact
    divergence, or e^T J e with probe e)."""
    n, d = x.shape
    h = -1.0 / steps

    def field(t, y):
        if not y.requires_grad:
            y = y.requires_grad_(True)
        v = net(torch.cat([torch.full((n, 1), t, dtype=y.dtype), y], dim=1))
        if probe is None:
            div = 0
            for i in range(d):
                g = torch.autograd.grad(v[:, i].sum(), y, create_graph=True)[0]
                div = div + g[:, i]
        else:
            g = torch.autograd.grad((v * probe).sum(), y, create_graph=True)[0]  # J^T e
            div = (g * probe).sum(1)
        return v, div

    y = x.clone().requires_grad_(True)
    A = torch.zeros(n, dtype=x.dtype)
    for k in range(steps):
        t = 1.0 + k * h
        k1, d1 = field(t, y)
        k2, d2 = field(t + h / 2, y + h / 2 * k1)
        k3, d3 = field(t + h / 2, y + h / 2 * k2)
        k4, d4 = field(t + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        A = A + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    nll = 0.5 * (y * y).sum(1) + 0.5 * d * math.log(2 * math.pi) - A
    return nll.mean()


def gen_cnf(save, path):
    gen = torch.Generator().manual_seed(2718)
    net = velocity_net(gen)
    x = torch.randn(12, 2, generator=gen)
    probe = (torch.rand(12, 2, generator=gen) < 0.5).float() * 2 - 1
    tensors = {f"net.{k}": v.clone() for k, v in net.state_dict().items()}
    tensors["x"], tensors["probe"] = x, probe
    net64 = velocity_net(torch.Generator().manual_seed(0)).double()
    net64.load_state_dict({k: v.double() for k, v in net.state_dict().items()})
    for tag, pr in (("exact", None), ("hutch", probe.double())):
        net64.zero_grad()
        loss = cnf_nll(net64, x.double(), 8, pr)
        loss.backward()
        tensors[f"{tag}.loss"] = loss.detach().reshape(1)
        for k, p in net64.named_parameters():
            tensors[f"{tag}.grad.net.{k}"] = p.grad.detach().clone()
    # JVPs of the network along x (and along t) at (t, x)
    t = torch.rand(12, 1, generator=gen)
    v = torch.randn(12, 2, generator=gen)
    tensors["jvp.t"], tensors["jvp.v"] = t, v

    def f_x(xx):
        return net64(torch.cat([t.double(), xx], dim=1))

    def f_t(tt):
        return net64(torch.cat([tt, x.double()], dim=1))

    try:  # torch.func from PyTorch 2.0; functorch (the same jvp) before it
        from torch.func import jvp
    except ImportError:
        from functorch import jvp
    out, jx = jvp(f_x, (x.double(),), (v.double(),))
    _, jt = jvp(f_t, (t.double(),), (torch.ones(12, 1, dtype=torch.float64),))
    tensors["jvp.out"], tensors["jvp.dx"], tensors["jvp.dt"] = out.detach(), jx.detach(), jt.detach()
    save(path, tensors, {"torch": torch.__version__, "steps": 8, "solver": "rk4"})


def gen_nf(save, path):
    gen = torch.Generator().manual_seed(3141)
    D, K, S = 3, 4, 2.0
    params = {}

    def mlp(prefix):
        net = nn.Sequential(nn.Linear(D, 8), nn.ELU(), nn.Linear(8, 8), nn.ELU(), nn.Linear(8, D)).double()
        with torch.no_grad():
            for k, p in net.named_parameters():
                p.copy_((torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * 0.5)
                p.copy_(p.float().double())
                params[f"{prefix}.{k}"] = p
        return net

    layers = []
    for k in range(K):
        bias = ((torch.rand(D, generator=gen, dtype=torch.float64) - 0.5) * 0.4).float().double().requires_grad_()
        logs = ((torch.rand(D, generator=gen, dtype=torch.float64) - 0.5) * 0.4).float().double().requires_grad_()
        params[f"nf.{k}.an.bias"], params[f"nf.{k}.an.logs"] = bias, logs
        layers.append((bias, logs, mlp(f"nf.{k}.s"), mlp(f"nf.{k}.t")))
    x = torch.randn(10, D, generator=gen)
    y = x.double()
    logdet = torch.zeros(10, dtype=torch.float64)
    for k, (bias, logs, snet, tnet) in enumerate(layers):
        y = (y + bias) * torch.exp(logs)
        logdet = logdet + logs.sum()
        m = torch.tensor([1.0 if (i + k) % 2 == 0 else 0.0 for i in range(D)], dtype=torch.float64)
        xm = y * m
        s = (1 - m) * S * torch.tanh(snet(xm) / S)
        tt = (1 - m) * tnet(xm)
        y = xm + (1 - m) * (y * torch.exp(s) + tt)
        logdet = logdet + s.sum(1)
    nll = 0.5 * (y * y).sum(1) + 0.5 * D * math.log(2 * math.pi) - logdet
    loss = nll.mean()
    loss.backward()
    tensors = {k: v.detach().float().clone() for k, v in params.items()}
    tensors["x"], tensors["z"], tensors["logdet"] = x, y.detach(), logdet.detach()
    tensors["loss"] = loss.detach().reshape(1)
    for k, p in params.items():
        tensors[f"grad.{k}"] = p.grad.detach().clone()
    save(path, tensors, {"torch": torch.__version__, "layers": K, "scale": S})
