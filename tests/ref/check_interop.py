#!/usr/bin/python3
"""Check that a flowmatch checkpoint loads into PyTorch with load_state_dict and
computes the same outputs.

    flow (the tutorial's Flow; 8 midpoint steps from given noise):
      ./flowmatch demo --out-dir demo
      ./flowmatch datasets --draw gaussian --n 300 --out x0.npy
      ./flowmatch sample --model demo/model.safetensors --x0 x0.npy --no-ema --out s.npy
      /usr/bin/python3 tests/ref/check_interop.py demo/model.safetensors x0.npy s.npy
    VAE (reconstruction of given points) and GAN (generator on given latents):
      ./flowmatch sample --model vae.safetensors --reconstruct pts.npy --no-ema --out r.npy
      /usr/bin/python3 tests/ref/check_interop.py vae.safetensors pts.npy r.npy
      ./flowmatch sample --model gan.safetensors --x0 z.npy --no-ema --out g.npy
      /usr/bin/python3 tests/ref/check_interop.py gan.safetensors z.npy g.npy

Prints the largest difference between PyTorch's and flowmatch's outputs. The
flow and the VAE must not be standardised (moons and the other generators are
not, nor are a Bernoulli VAE's images); a GAN's samples are G(z) taken back to
data units (on images G(z) * 0.5 + 0.5).
Needs only python3-torch.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from baselines import VAE, mlp  # noqa: E402
from tutorial_flow import Flow  # noqa: E402

model, in_path, out_path = sys.argv[1:4]
state, meta = st.load(model)
method = meta.get("method", "fm")
x = torch.from_numpy(np.load(in_path).astype(np.float32))


def widths(key):
    return [int(w) for w in meta[key].split(",") if w]


def floats(key):
    return [float(v) for v in meta[key].split(",")]


def params(prefixes):
    return {k: v.float() for k, v in state.items() if k.split(".")[0] in prefixes}


with torch.no_grad():
    if method == "fm":
        net = Flow()
        sd = params(["net"])
        net.load_state_dict(sd)  # strict
        ts = torch.linspace(0, 1.0, 9)
        for i in range(8):
            x = net.step(x_t=x, t_start=ts[i], t_end=ts[i + 1])
    elif method == "vae":
        net = VAE(int(meta["vae.dim"]), int(meta["vae.latent"]), widths("vae.widths"),
                  meta["vae.likelihood"] == "gaussian", meta["vae.act"])
        sd = params(["encoder", "fc_mu", "fc_logvar", "decoder", "dec_logvar"])
        net.load_state_dict(sd)
        x = net.reconstruct(x)
    elif method == "gan":
        net = mlp(int(meta["gan.latent"]), widths("gan.widths"), int(meta["gan.dim"]), meta["gan.act"],
                  meta.get("gan.out_act", "none"))
        sd = {k[len("generator."):]: v for k, v in params(["generator"]).items()}
        net.load_state_dict(sd)
        x = net(x)
        if "gan.mean" in meta:  # standardised data: back to data units
            x = x * torch.tensor(floats("gan.std")) + torch.tensor(floats("gan.mean"))
    else:
        sys.exit(f"no PyTorch counterpart here for method '{method}'")
ours = np.load(out_path)
diff = np.abs(x.numpy() - ours).max()
print(f"{method}: loaded {len(sd)} tensors with load_state_dict; "
      f"max |PyTorch - flowmatch| over {len(ours)} outputs: {diff:.2e}")
sys.exit(0 if diff < 1e-4 else 1)
