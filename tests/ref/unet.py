"""flowmatch's U-Net (src/models/unet.c) as a PyTorch module, with the same
parameter names: a U-Net flow's checkpoint loads into UNetFlow with
load_state_dict (its keys start with "net.", as the C side saves them).

    import torch, st
    from unet import UNetFlow
    tensors, meta = st.load("m.safetensors")          # or safetensors.torch.load_file
    flow = UNetFlow.from_meta(meta)
    flow.load_state_dict({k: v for k, v in tensors.items() if k.startswith("net.")})
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

TIME_SCALE, TIME_PERIOD = 1000.0, 10000.0


def sinusoid(t, dim, scale=TIME_SCALE, max_period=TIME_PERIOD):
    """fm_time_embed: [cos a_0 .. cos a_{h-1}, sin a_0 .. sin a_{h-1}], a_i = scale t f_i."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=t.dtype) / half)
    a = scale * t.reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, semb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(semb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class UNet(nn.Module):
    def __init__(self, in_ch=1, base=32, mult=(1, 2, 2), groups=8, time_freq=0, time_dim=0, num_classes=0,
                 interval=False, time_scale=0.0):
        super().__init__()
        self.time_scale = time_scale or TIME_SCALE
        self.num_classes = num_classes
        self.time_freq = time_freq or (base + base % 2)
        time_dim = time_dim or 4 * base
        ch = [base * m for m in mult]
        L = len(ch)
        self.time_mlp = nn.Sequential(nn.Linear(self.time_freq, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.interval = interval
        if interval:  # MeanFlow's second time input h, embedded alike and added
            self.interval_mlp = nn.Sequential(nn.Linear(self.time_freq, time_dim), nn.SiLU(),
                                              nn.Linear(time_dim, time_dim))
        if num_classes:  # one row per class and one for "no label" (index num_classes)
            self.label_emb = nn.Embedding(num_classes + 1, time_dim)
        self.conv_in = nn.Conv2d(in_ch, ch[0], 3, padding=1)
        self.down = nn.ModuleList(ResBlock(ch[i - 1] if i else ch[0], ch[i], time_dim, groups) for i in range(L))
        self.mid = ResBlock(ch[-1], ch[-1], time_dim, groups)
        self.up = nn.ModuleList(ResBlock(2 * ch[L - 1 - j], ch[L - 1 - j], time_dim, groups) for j in range(L))
        self.upconv = nn.ModuleList(nn.Conv2d(ch[L - 1 - j], ch[L - 2 - j], 3, padding=1) for j in range(L - 1))
        self.norm_out = nn.GroupNorm(groups, ch[0])
        self.conv_out = nn.Conv2d(ch[0], in_ch, 3, padding=1)

    def forward(self, t, x, y=None, h=None):
        """t (B, 1) or (B), x (B, C, H, W), y (B) labels in 0..num_classes (None: num_classes, no label);
        h (B) the interval of an interval network (None: 0)."""
        emb = self.time_mlp(sinusoid(t, self.time_freq, self.time_scale))
        if self.interval:
            h = torch.zeros_like(t) if h is None else h
            emb = emb + self.interval_mlp(sinusoid(h, self.time_freq, self.time_scale))
        if self.num_classes:
            if y is None:
                y = torch.full((x.shape[0],), self.num_classes, dtype=torch.long)
            emb = emb + self.label_emb(y)
        semb = F.silu(emb)
        h = self.conv_in(x)
        kept = []
        L = len(self.down)
        for i, blk in enumerate(self.down):
            h = blk(h, semb)
            kept.append(h)
            if i + 1 < L:
                h = F.avg_pool2d(h, 2)
        h = self.mid(h, semb)
        for j, blk in enumerate(self.up):
            i = L - 1 - j
            h = blk(torch.cat([h, kept[i]], 1), semb)
            if i > 0:
                h = self.upconv[j](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class UNetFlow(nn.Module):
    """The flow's network as flowmatch holds it: flat points (B, C H W) in and out."""

    def __init__(self, in_ch, height, width, **kw):
        super().__init__()
        self.shape = (in_ch, height, width)
        self.net = UNet(in_ch, **kw)

    @staticmethod
    def from_meta(meta):
        return UNetFlow(int(meta["unet.in_ch"]), int(meta["unet.height"]), int(meta["unet.width"]),
                        base=int(meta["unet.base"]), mult=[int(m) for m in meta["unet.mult"].split(",")],
                        groups=int(meta["unet.groups"]), time_freq=int(meta["unet.time_freq"]),
                        time_dim=int(meta["unet.time_dim"]), num_classes=int(meta.get("unet.num_classes", 0)),
                        interval=bool(int(float(meta.get("unet.interval", 0)))),
                        time_scale=float(meta.get("unet.time_scale", 0)))

    def forward(self, t, x_t, y=None, h=None):
        return self.net(t, x_t.reshape(-1, *self.shape), y, h).reshape(x_t.shape[0], -1)

    def guided(self, t, x_t, y, w):
        """Classifier-free guidance: v_uncond + w (v_cond - v_uncond)."""
        vu = self(t, x_t)
        return vu + w * (self(t, x_t, y) - vu)
