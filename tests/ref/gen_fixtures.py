#!/usr/bin/python3
"""Write the PyTorch reference fixtures that `make test` compares against.

    /usr/bin/python3 tests/ref/gen_fixtures.py tests/fixtures   (or: make fixtures)
    /usr/bin/python3 tests/ref/gen_fixtures.py tests/fixtures conv   (only conv.safetensors)

Needs Debian's python3-torch and python3-sklearn. Files written:
  ops.safetensors      every op: inputs, upstream gradient, output, input gradients
  conv.safetensors     the same for the image ops (conv2d, upsampling, pooling)
  ops2.safetensors     the same for group_norm, embedding and cross_entropy
  train.safetensors    10 optimizer steps of the tutorial's flow-matching MLP
  baselines.safetensors  VAE and GAN losses and gradients (every parameter)
  formats.safetensors  F64 / F16 / BF16 / I64 tensors and escaped metadata
  rng.safetensors      xoshiro256** outputs from an independent implementation
  datasets.safetensors scikit-learn's make_moons / make_circles without noise
  unet.safetensors     a tiny U-Net (tests/ref/unet.py): weights, input, output and every gradient
  unet_cond.safetensors  the same with 3 classes: labels, output, gradients and a guided output
  npy/*.npy            arrays written by NumPy in several dtypes and orders
  cnf.safetensors      a CNF's NLL through 8 RK4 steps and its gradient; JVPs (tests/ref/lineage.py)
  nf.safetensors       a RealNVP-style flow's z, log-determinants, NLL and gradient (tests/ref/lineage.py)
  meanflow.safetensors MeanFlow's JVPs (MLP and U-Net), target, adaptive loss and gradient (tests/ref/meanflow.py)

Op references are computed in float64 from float32 inputs, so the C side's
error against them is its own float32 error. Training runs in float32, as a
user's PyTorch run would.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from sklearn.datasets import make_moons

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from baselines import VAE, mlp  # noqa: E402
from tutorial_flow import Flow  # noqa: E402
import lineage  # noqa: E402
import meanflow  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
os.makedirs(OUT, exist_ok=True)
G = torch.Generator().manual_seed(1234)
# The image ops draw from a stream of their own, so adding cases there leaves
# every other fixture's bytes as they were.
GC = torch.Generator().manual_seed(4321)


def rnd(*shape, lo=-2.0, hi=2.0, avoid=0.0, gen=G):
    """float32 values in [lo, hi), at least `avoid` away from 0 (kinks)."""
    x = torch.rand(*shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo
    if avoid:
        x = torch.where(x.abs() < avoid, torch.sign(x + 1e-30) * avoid + x, x)
    return x.float()


def time_embed(t, dim, scale, max_period):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=t.dtype) / half)
    a = scale * t.reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


def kl(mu, lv, red):
    e = -0.5 * (1 + lv - mu * mu - torch.exp(lv))
    return e.sum() if red == "sum" else e.mean()


# name -> (function of float64 inputs, list of float32 inputs, which inputs get gradients)
CASES = {}


def case(name, fn, inputs, grads=None, table=CASES):
    table[name] = (fn, inputs, grads if grads is not None else [True] * len(inputs))


case("linear", lambda x, w, b: F.linear(x, w, b), [rnd(5, 7), rnd(3, 7, lo=-0.5, hi=0.5), rnd(3)])
case("linear_nobias", lambda x, w: F.linear(x, w), [rnd(6, 4), rnd(9, 4)])
for op, fn in (("add", torch.add), ("sub", torch.sub), ("mul", torch.mul)):
    case(op + "_same", fn, [rnd(4, 3), rnd(4, 3)])
    case(op + "_row", fn, [rnd(4, 3), rnd(3)])
    case(op + "_col", fn, [rnd(4, 3), rnd(4, 1)])
    case(op + "_4d", fn, [rnd(2, 3, 4, 5), rnd(2, 3, 1, 1)])
    case(op + "_both", fn, [rnd(2, 1, 4), rnd(3, 1)])
case("scale", lambda x: -1.7 * x, [rnd(4, 5)])
case("concat", lambda a, b, c: torch.cat([a, b, c], 1), [rnd(4, 1), rnd(4, 2), rnd(4, 3)])
case("concat_4d", lambda a, b: torch.cat([a, b], 1), [rnd(2, 1, 3, 3), rnd(2, 2, 3, 3)])
case("sum", torch.sum, [rnd(3, 4)])
case("mean", torch.mean, [rnd(3, 4, 2)])
ACTS = {
    "relu": F.relu, "elu": F.elu, "silu": F.silu, "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "tanh": torch.tanh,
    "sigmoid": torch.sigmoid, "selu": F.selu, "softplus": F.softplus,
}
for name, fn in ACTS.items():
    x = rnd(6, 7, lo=-4, hi=4, avoid=1e-2)
    if name == "softplus":
        x[0, :3] = torch.tensor([20.5, 25.0, 19.5])  # both sides of the threshold
    case(name, fn, [x])
case("time_embed", lambda t: time_embed(t, 8, 1000.0, 10000.0), [rnd(5, 1, lo=0, hi=1)])
case("time_embed_flat", lambda t: time_embed(t, 6, 1.0, 100.0), [rnd(5, lo=0, hi=1)])
for red in ("mean", "sum"):
    case("mse_" + red, lambda p, t, r=red: F.mse_loss(p, t, reduction=r), [rnd(4, 3), rnd(4, 3)])
    y = torch.cat([(torch.rand(4, 2, generator=G) > 0.5).float(), torch.rand(4, 1, generator=G)], 1)
    case("bce_" + red, lambda p, t, r=red: F.binary_cross_entropy(p, t, reduction=r),
         [rnd(4, 3, lo=0.05, hi=0.95), y], [True, False])
    case("bce_logits_" + red, lambda z, t, r=red: F.binary_cross_entropy_with_logits(z, t, reduction=r),
         [rnd(4, 3, lo=-5, hi=5), y], [True, False])
    case("kl_" + red, lambda m, l, r=red: kl(m, l, r), [rnd(4, 3), rnd(4, 3)])
case("exp", torch.exp, [rnd(5, 4, lo=-3, hi=3)])


def gaussian_nll(mu, lv, x, red):
    e = 0.5 * (math.log(2 * math.pi) + lv + (x - mu) ** 2 * torch.exp(-lv))
    return e.sum() if red == "sum" else e.mean()


for red in ("mean", "sum"):
    case("gaussian_nll_" + red, lambda m, l, x, r=red: gaussian_nll(m, l, x, r), [rnd(4, 3), rnd(4, 3), rnd(4, 3)],
         [True, True, False])
case("gaussian_nll_row", lambda m, l, x: gaussian_nll(m, l, x, "sum"), [rnd(5, 3), rnd(3), rnd(5, 3)],
     [True, True, False])


# Image ops (NCHW); the C side's calls are in tests/opcases.c's conv_cases.
CONV_CASES = {}


def conv_case(name, fn, inputs):
    case(name, fn, inputs, table=CONV_CASES)


def crnd(*shape, lo=-2.0, hi=2.0):
    return rnd(*shape, lo=lo, hi=hi, gen=GC)


def conv(stride, pad):
    return lambda x, w, b=None: F.conv2d(x, w, b, stride=stride, padding=pad)


conv_case("conv3x3", conv(1, 1), [crnd(2, 3, 6, 6), crnd(4, 3, 3, 3, lo=-0.5, hi=0.5), crnd(4)])
conv_case("conv3x3_s2", conv(2, 1), [crnd(2, 3, 6, 7), crnd(5, 3, 3, 3, lo=-0.5, hi=0.5), crnd(5)])
conv_case("conv1x1", conv(1, 0), [crnd(2, 4, 5, 6), crnd(3, 4, 1, 1, lo=-0.5, hi=0.5), crnd(3)])
conv_case("conv1x1_s2", conv(2, 0), [crnd(2, 4, 5, 6), crnd(3, 4, 1, 1, lo=-0.5, hi=0.5), crnd(3)])
conv_case("conv3x3_nobias", conv(1, 1), [crnd(2, 3, 5, 6), crnd(4, 3, 3, 3, lo=-0.5, hi=0.5)])
conv_case("conv3x3_rect", conv(1, 1), [crnd(2, 3, 7, 5), crnd(4, 3, 3, 3, lo=-0.5, hi=0.5), crnd(4)])
conv_case("conv3x3_valid", conv(1, 0), [crnd(1, 2, 5, 6), crnd(2, 2, 3, 3, lo=-0.5, hi=0.5), crnd(2)])
conv_case("conv2x3_s2", conv(2, 0), [crnd(2, 2, 7, 5), crnd(3, 2, 2, 3, lo=-0.5, hi=0.5), crnd(3)])
conv_case("conv5x5_pad2", conv(1, 2), [crnd(1, 2, 4, 4), crnd(3, 2, 5, 5, lo=-0.5, hi=0.5), crnd(3)])
conv_case("upsample2", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), [crnd(2, 3, 3, 4)])
conv_case("upsample3", lambda x: F.interpolate(x, scale_factor=3, mode="nearest"), [crnd(1, 2, 2, 3)])
conv_case("avg_pool2", lambda x: F.avg_pool2d(x, 2), [crnd(2, 3, 4, 6)])
conv_case("avg_pool3", lambda x: F.avg_pool2d(x, 3), [crnd(1, 2, 6, 3)])


# Normalisation, embedding and classification ops; a stream of their own too.
# Integer inputs (ids, labels) are stored as float32 and have no gradient.
GO = torch.Generator().manual_seed(8642)
OPS2_CASES = {}


def ops2_case(name, fn, inputs, grads=None):
    case(name, fn, inputs, grads, table=OPS2_CASES)


def ornd(*shape, lo=-2.0, hi=2.0):
    return rnd(*shape, lo=lo, hi=hi, gen=GO)


def gn(groups):
    return lambda x, w=None, b=None: F.group_norm(x, groups, w, b, eps=1e-5)


for g in (1, 2, 8):
    ops2_case(f"gn_g{g}", gn(g), [ornd(2, 8, 5, 3), ornd(8, lo=0.5, hi=1.5), ornd(8)])
ops2_case("gn_g2_plain", gn(2), [ornd(2, 8, 5, 3)])
ops2_case("gn_g2_gamma", gn(2), [ornd(2, 8, 5, 3), ornd(8, lo=0.5, hi=1.5)])
# (this torch's group_norm backward fails with a bias and no weight: a
# constant weight of ones stands in for the missing gamma)
ops2_case("gn_g2_beta", lambda x, b: F.group_norm(x, 2, torch.ones_like(b), b, eps=1e-5),
          [ornd(2, 8, 5, 3), ornd(8)])
# [3, 6] in 3 groups: two values per group. With var >> eps their normalised
# values are +-1 whatever x, so dx is almost 0 and a finite difference of it is
# all rounding noise: dx is checked on values whose spread (about 0.005) is
# near sqrt(eps), gamma and beta on ordinary values, and eps 0.1 on both.
ops2_case("gn_2d", gn(3), [ornd(3, 6, lo=-0.01, hi=0.01), ornd(6, lo=0.5, hi=1.5), ornd(6)], [True, False, False])
ops2_case("gn_2d_affine", gn(3), [ornd(3, 6), ornd(6, lo=0.5, hi=1.5), ornd(6)], [False, True, True])
ops2_case("gn_2d_plain", gn(3), [ornd(3, 6, lo=-0.01, hi=0.01)])
ops2_case("gn_2d_eps", lambda x, w, b: F.group_norm(x, 3, w, b, eps=0.1), [ornd(3, 6), ornd(6, lo=0.5, hi=1.5), ornd(6)])
ops2_case("gn_3d", gn(2), [ornd(2, 4, 7), ornd(4, lo=0.5, hi=1.5), ornd(4)])
# far from zero: the variance is computed about the mean
ops2_case("gn_offset", gn(2), [ornd(2, 4, 3, 3, lo=50, hi=54), ornd(4, lo=0.5, hi=1.5), ornd(4)])

# 10 labels and the "no label" class 10; ids repeat so gradients add up
ops2_case("embedding", lambda w, i: F.embedding(i.long(), w),
          [ornd(11, 6), torch.tensor([3, 10, 3, 0, 7, 3, 10, 9], dtype=torch.float32)], [True, False])
ops2_case("embedding_one", lambda w, i: F.embedding(i.long(), w),
          [ornd(4, 3), torch.tensor([2], dtype=torch.float32)], [True, False])

LABELS = torch.tensor([0, 3, 3, 1, 2], dtype=torch.float32)
for red in ("mean", "sum"):
    ops2_case("ce_" + red, lambda z, y, r=red: F.cross_entropy(z, y.long(), reduction=r), [ornd(5, 4), LABELS],
              [True, False])
# logits around +-1e4 (exp overflows even double) with spreads of a few units
big = ornd(4, 5, lo=-3, hi=3) + torch.tensor([[1e4], [-1e4], [5e3], [-2e4]])
ops2_case("ce_large", lambda z, y: F.cross_entropy(z, y.long()), [big, torch.tensor([4, 0, 2, 2.0])],
          [True, False])


def gen_cases(cases, fname, gen):
    tensors = {}
    for name, (fn, inputs, grads) in cases.items():
        xs = [x.double().requires_grad_(g) for x, g in zip(inputs, grads)]
        y = fn(*xs)
        dy = torch.randn(y.shape, generator=gen, dtype=torch.float64).float()
        y.backward(dy.double())
        for k, x in enumerate(inputs):
            tensors[f"{name}.in{k}"] = x
        tensors[f"{name}.dy"] = dy
        tensors[f"{name}.out"] = y.detach()
        for k, x in enumerate(xs):
            if grads[k]:
                tensors[f"{name}.grad{k}"] = x.grad
    st.save(os.path.join(OUT, fname), tensors, {"cases": ",".join(cases), "torch": torch.__version__})


def gen_ops():
    gen_cases(CASES, "ops.safetensors", G)


def gen_conv():
    gen_cases(CONV_CASES, "conv.safetensors", GC)


def gen_ops2():
    gen_cases(OPS2_CASES, "ops2.safetensors", GO)


OPTIMS = {
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2),
    "sgd": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9),
    "adam_amsgrad_wd": lambda p: torch.optim.Adam(p, lr=1e-2, amsgrad=True, weight_decay=1e-3),
    "sgd_nesterov_wd": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True,
                                                 weight_decay=1e-4),
}
STEPS = 10


def gen_train():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    init = Flow()
    tensors = {f"init.{k}": v.clone() for k, v in init.state_dict().items()}
    batches = []
    for i in range(STEPS):
        x1 = torch.tensor(make_moons(256, noise=0.05, random_state=i)[0], dtype=torch.float32)
        x0 = torch.randn_like(x1)
        t = torch.rand(len(x1), 1)
        batches.append((x0, x1, t))
        tensors[f"batch{i}.x0"], tensors[f"batch{i}.x1"], tensors[f"batch{i}.t"] = x0, x1, t
    for oname, make in OPTIMS.items():
        flow = Flow()
        flow.load_state_dict(init.state_dict())
        opt = make(flow.parameters())
        losses = []
        for x0, x1, t in batches:
            x_t = (1 - t) * x0 + t * x1
            loss = F.mse_loss(flow(t=t, x_t=x_t), x1 - x0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        tensors[f"{oname}.loss"] = torch.tensor(losses, dtype=torch.float64)
        for k, v in flow.state_dict().items():
            tensors[f"{oname}.final.{k}"] = v.clone()
        names = dict(flow.named_parameters())
        for k, p in names.items():
            for slot, v in opt.state[p].items():
                if torch.is_tensor(v) and v.dim() > 0:
                    tensors[f"{oname}.state.{slot}.{k}"] = v.clone()
    st.save(os.path.join(OUT, "train.safetensors"), tensors,
            {"optimizers": ",".join(OPTIMS), "steps": STEPS, "torch": torch.__version__})


def gen_baselines():
    """A VAE (both likelihoods, beta 0.5) and a GAN (both generator losses):
    inputs, loss parts and every parameter's gradient, in float64."""
    torch.manual_seed(7)
    t = {}
    for name, gaussian in (("vae_bernoulli", False), ("vae_gaussian", True)):
        m = VAE(4, 2, [5, 6], gaussian).double()
        if gaussian:
            with torch.no_grad():
                m.dec_logvar.copy_(torch.randn(4, generator=G) * 0.3)
        x = torch.rand(5, 4, generator=G, dtype=torch.float64) if not gaussian else \
            torch.randn(5, 4, generator=G, dtype=torch.float64)
        eps = torch.randn(5, 2, generator=G, dtype=torch.float64)
        for k, v in m.state_dict().items():
            t[f"{name}.{k}"] = v.float()
        x, eps = x.float().double(), eps.float().double()
        m.load_state_dict({k: v.float().double() for k, v in m.state_dict().items()})
        rec, kld = m.loss(x, eps)
        loss = (rec + 0.5 * kld) / 5
        loss.backward()
        t[f"{name}.x"], t[f"{name}.eps"] = x.float(), eps.float()
        t[f"{name}.loss"] = loss.detach().reshape(1)
        t[f"{name}.rec"] = (rec / 5).detach().reshape(1)
        t[f"{name}.kl"] = (kld / 5).detach().reshape(1)
        for k, p in m.named_parameters():
            t[f"{name}.grad.{k}"] = p.grad
    g = mlp(3, [5, 4], 2).double()
    d = mlp(2, [6, 5], 1).double()
    for k, v in g.state_dict().items():
        t[f"gan.generator.{k}"] = v.float()
    for k, v in d.state_dict().items():
        t[f"gan.discriminator.{k}"] = v.float()
    g.load_state_dict({k: v.float().double() for k, v in g.state_dict().items()})
    d.load_state_dict({k: v.float().double() for k, v in d.state_dict().items()})
    x = torch.randn(6, 2, generator=G, dtype=torch.float64).float().double()
    z = torch.randn(6, 3, generator=G, dtype=torch.float64).float().double()
    t["gan.x"], t["gan.z"] = x.float(), z.float()
    ones, zeros = torch.ones(6, 1, dtype=torch.float64), torch.zeros(6, 1, dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits
    cases = {
        "d": lambda: bce(d(x), ones) + bce(d(g(z)), zeros),
        "g_nonsaturating": lambda: bce(d(g(z)), ones),
        "g_minimax": lambda: -bce(d(g(z)), zeros),
    }
    for cname, fn in cases.items():
        g.zero_grad()
        d.zero_grad()
        loss = fn()
        loss.backward()
        t[f"gan.{cname}.loss"] = loss.detach().reshape(1)
        for k, p in g.named_parameters():
            t[f"gan.{cname}.grad.generator.{k}"] = p.grad.clone()
        for k, p in d.named_parameters():
            t[f"gan.{cname}.grad.discriminator.{k}"] = p.grad.clone()
    st.save(os.path.join(OUT, "baselines.safetensors"), t, {"torch": torch.__version__})


def gen_formats():
    vals = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 6.1035156e-05, 5.9604645e-08, 3.1415927,
                         float("inf"), float("-inf")], dtype=torch.float32)
    t = {
        "f64": torch.tensor([[1.0, -2.0, 3.25], [1e-3, 1e30, -7.5]], dtype=torch.float64),
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2.5,
        "f16": vals.half(),
        "f16.expected": vals.half().float(),
        "bf16": vals.bfloat16(),
        "bf16.expected": vals.bfloat16().float(),
        "i64": torch.arange(4, dtype=torch.int64),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
    }
    st.save(os.path.join(OUT, "formats.safetensors"), t,
            {"note": "caf\u00e9 \u2192 \U0001F600 \"quoted\" \\ back", "format": "pt"})


def gen_rng():
    """xoshiro256** and splitmix64 written from the published algorithm."""
    M = (1 << 64) - 1

    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M

    def nxt(s):
        r = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t
        s[3] = rotl(s[3], 45)
        return r

    def splitmix(x):
        out = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
            out.append(z ^ (z >> 31))
        return out

    def jump(s):
        J = [0x180EC6D33CFD0ABA, 0xD5A61266F0C9392C, 0xA9582618E03FC9AA, 0x39ABDC4529B1661C]
        acc = [0, 0, 0, 0]
        for j in J:
            for b in range(64):
                if j & (1 << b):
                    acc = [a ^ x for a, x in zip(acc, s)]
                nxt(s)
        s[:] = acc

    s = [1, 2, 3, 4]
    plain = [nxt(s) for _ in range(8)]
    s = splitmix(42)
    seeded = [nxt(s) for _ in range(4)]
    s = splitmix(42)
    jump(s)
    jump(s)
    stream2 = [nxt(s) for _ in range(4)]
    st.save(os.path.join(OUT, "rng.safetensors"), {}, {
        "state1234": ",".join(map(str, plain)),
        "seed42": ",".join(map(str, seeded)),
        "seed42_stream2": ",".join(map(str, stream2)),
    })


def gen_datasets():
    from sklearn.datasets import make_circles
    t = {}
    for n in (7, 10):
        t[f"moons{n}"] = torch.tensor(make_moons(n, noise=0.0, shuffle=False)[0], dtype=torch.float64)
        t[f"circles{n}"] = torch.tensor(make_circles(n, noise=0.0, factor=0.5, shuffle=False)[0],
                                        dtype=torch.float64)
    st.save(os.path.join(OUT, "datasets.safetensors"), t, {"sklearn": __import__("sklearn").__version__})


def unet_fixture(fname, seed, torch_seed, n, num_classes=0, labels=None, perturb_norms=False, guidance=None):
    """A tiny U-Net (12 x 12 images, base 8, mult 1,2,2, 4 groups) on n images
    in float64 from float32 weights and inputs, biases drawn (and the
    GroupNorm affine parameters with perturb_norms): the output, the input's
    gradient and every parameter's for a random upstream gradient; with
    classes, the labels used and, with guidance w, v_u + w (v_c - v_u). A
    generator of its own: other files are unchanged."""
    from unet import UNet
    gu = torch.Generator().manual_seed(seed)
    torch.manual_seed(torch_seed)
    cfg = dict(in_ch=1, base=8, mult=(1, 2, 2), groups=4, time_freq=8, time_dim=16)
    if num_classes:
        cfg["num_classes"] = num_classes
    m = UNet(**cfg)
    with torch.no_grad():
        for k, p in m.named_parameters():
            if perturb_norms and (".norm" in k or k.startswith("norm")):
                base = 1.0 if k.endswith("weight") else 0.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=gu))
            elif k.endswith("bias"):  # PyTorch's default biases are small; make them count
                p.copy_(0.1 * torch.randn(p.shape, generator=gu))
    t = {f"param.{k}": v.clone().float() for k, v in m.state_dict().items()}
    m = m.double()
    x = torch.randn(n, 1, 12, 12, generator=gu).float()
    tt = torch.rand(n, 1, generator=gu).float()
    y = torch.tensor(labels) if labels is not None else None
    xd = x.double().requires_grad_(True)
    out = m(tt.double(), xd, y)
    dy = torch.randn(out.shape, generator=gu, dtype=torch.float64).float()
    out.backward(dy.double())
    t["x"], t["t"], t["dy"], t["out"], t["grad_x"] = x, tt, dy, out.detach(), xd.grad
    if y is not None:
        t["labels"] = y.double()
    for k, p in m.named_parameters():
        t[f"grad.{k}"] = p.grad
    if guidance is not None:
        with torch.no_grad():
            vu = m(tt.double(), x.double())
            t["guided"] = vu + guidance * (m(tt.double(), x.double(), y) - vu)
    meta = {k: ",".join(map(str, v)) if isinstance(v, tuple) else str(v) for k, v in cfg.items()}
    meta["names"] = ",".join(k for k, _ in m.named_parameters())
    meta["torch"] = torch.__version__
    st.save(os.path.join(OUT, fname), t, meta)


def gen_unet():
    """unet.safetensors: 3 images, GroupNorm parameters drawn too."""
    unet_fixture("unet.safetensors", 2468, 13, 3, perturb_norms=True)


def gen_unet_cond():
    """unet_cond.safetensors: 3 classes (a label embedding of 4 rows, the last
    one "no label"), 4 images with labels 2, 0, 3 (none) and 1, and the
    guided velocity at w = 2.5."""
    unet_fixture("unet_cond.safetensors", 1357, 17, 4, num_classes=3, labels=[2, 0, 3, 1], guidance=2.5)


def gen_torch_import():
    """The tutorial's network trained nowhere but initialised by PyTorch:
    torch_sd.safetensors is its nn.Sequential state_dict as PyTorch users save
    it (keys 0.weight ... 6.bias, no metadata); torch_import_ref.safetensors
    holds 64 starting points x0 and the tutorial's midpoint sampler (8 steps,
    t = 0 to 1) run from them in PyTorch, which flowmatch must reproduce
    after `flowmatch import`."""
    import torch.nn as nn
    torch.manual_seed(2718)
    net = nn.Sequential(nn.Linear(3, 64), nn.ELU(), nn.Linear(64, 64), nn.ELU(), nn.Linear(64, 64), nn.ELU(),
                        nn.Linear(64, 2))
    st.save_file(net.state_dict(), os.path.join(OUT, "torch_sd.safetensors"))
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(31))
    x = x0.clone()
    with torch.no_grad():
        v = lambda t, y: net(torch.cat((t.expand(y.shape[0], 1), y), -1))
        steps = 8
        for k in range(steps):
            t0, t1 = torch.tensor([[k / steps]]), torch.tensor([[(k + 1) / steps]])
            h = t1 - t0
            x = x + h * v(t0 + h / 2, x + h / 2 * v(t0, x))
    st.save(os.path.join(OUT, "torch_import_ref.safetensors"), {"x0": x0, "samples": x})


def gen_npy():
    import numpy as np
    d = os.path.join(OUT, "npy")
    os.makedirs(d, exist_ok=True)
    a = np.arange(12, dtype=np.float64).reshape(3, 4) / 8 - 0.5
    np.save(os.path.join(d, "f64_c.npy"), a)
    np.save(os.path.join(d, "f32_fortran.npy"), np.asfortranarray(a.astype(np.float32)))
    np.save(os.path.join(d, "f32_big.npy"), a.astype(">f4"))
    np.save(os.path.join(d, "f16.npy"), a.astype(np.float16))
    np.save(os.path.join(d, "i32_1d.npy"), np.array([-3, 0, 7, 2**20], dtype=np.int32))
    np.save(os.path.join(d, "u8_3d.npy"), np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    np.save(os.path.join(d, "expected.npy"), a.astype(np.float32))


if __name__ == "__main__":
    # Order matters: ops and baselines share the stream G.
    ALL = {"ops": gen_ops, "train": gen_train, "baselines": gen_baselines, "formats": gen_formats,
           "rng": gen_rng, "datasets": gen_datasets, "npy": gen_npy, "conv": gen_conv,
           "ops2": gen_ops2, "unet": gen_unet, "unet_cond": gen_unet_cond,
           "cnf": lambda: lineage.gen_cnf(st.save, os.path.join(OUT, "cnf.safetensors")),
           "nf": lambda: lineage.gen_nf(st.save, os.path.join(OUT, "nf.safetensors")),
           "meanflow": lambda: meanflow.gen_meanflow(st.save, os.path.join(OUT, "meanflow.safetensors")),
           "torch_import": gen_torch_import}
    which = sys.argv[2:] or list(ALL)
    for w in which:
        if w not in ALL:
            sys.exit(f"unknown fixture set {w!r}; one of {', '.join(ALL)}")
    if "baselines" in which and "ops" not in which:
        sys.exit("baselines draws from the stream after ops: generate both")
    for w in ALL:
        if w in which:
            ALL[w]()
    for root, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            print(f"{os.path.join(root, f)}: {os.path.getsize(os.path.join(root, f))} bytes")
