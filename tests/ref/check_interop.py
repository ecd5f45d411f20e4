#!/usr/bin/python3
"""Check that a flowmatch checkpoint loads into the tutorial's PyTorch Flow and
samples the same points from the same starting noise.

    ./flowmatch demo --out-dir demo
    ./flowmatch datasets --draw gaussian --n 300 --out x0.npy
    ./flowmatch sample --model demo/model.safetensors --x0 x0.npy --no-ema --out s.npy
    /usr/bin/python3 tests/ref/check_interop.py demo/model.safetensors x0.npy s.npy

Prints the largest difference between PyTorch's and flowmatch's samples
(8 midpoint steps, the tutorial's Flow.step). Needs only python3-torch.
"""
import sys

import numpy as np
import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
import st  # noqa: E402
from tutorial_flow import Flow  # noqa: E402

model, x0_path, samples_path = sys.argv[1:4]
state, meta = st.load(model)
flow = Flow()
flow.load_state_dict({k: v.float() for k, v in state.items() if k.startswith("net.")})  # strict
x = torch.from_numpy(np.load(x0_path).astype(np.float32))
ts = torch.linspace(0, 1.0, 9)
with torch.no_grad():
    for i in range(8):
        x = flow.step(x_t=x, t_start=ts[i], t_end=ts[i + 1])
ours = np.load(samples_path)
diff = np.abs(x.numpy() - ours).max()
print(f"loaded {len([k for k in state if k.startswith('net.')])} tensors with load_state_dict; "
      f"max |PyTorch - flowmatch| over {len(ours)} samples: {diff:.2e}")
sys.exit(0 if diff < 1e-4 else 1)
