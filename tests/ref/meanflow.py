"""MeanFlow's fixture (gen_fixtures.py meanflow): meanflow.safetensors.

mlp.*: an interval flow's MLP, concat(t, x, h) -> 2 hidden layers of 16, ELU
-> 2 (weights net.0.*, net.2.*, net.4.*), and 8 rows (x_t, t, h, v), two of
them with h = 0. The average velocity u and its total derivative along the
path with the interval's end held, du = the JVP along (v, 1, -1) in (x, t, h)
(torch.func.jvp, or functorch's before torch 2); the target v + h du;
MeanFlow's loss with the adaptive weight (p = 1, c = 1e-3) summed over the rows times 1/8, the plain squared error
summed, the loss's gradient with respect to every weight (grad.<name>) and
the weights after one Adam step (lr 1e-2) on it (after.<name>).

unet.*: a small class-conditional interval U-Net (1 x 8 x 8 images, base 8,
levels 1, 2, 4 groups, 3 classes) with every weight drawn at random (the
GroupNorm scales too), 3 rows (labels 0, 2 and none): u and its JVP along
(dx, 1, -1) for a random dx.

References are computed in float64 from float32 weights and inputs.
"""
import torch
import torch.nn as nn

try:  # torch.func.jvp from torch 2.0; functorch's before
    from torch.func import jvp
except ImportError:
    from functorch import jvp

from unet import UNetFlow

P, C = 1.0, 1e-3


def mlp_part(gen, tensors):
    net = nn.Sequential(nn.Linear(4, 16), nn.ELU(), nn.Linear(16, 16), nn.ELU(), nn.Linear(16, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * 0.6)
    n = 8
    x = torch.randn(n, 2, generator=gen)
    t = torch.rand(n, generator=gen)
    h = torch.rand(n, generator=gen) * (1 - t)
    h[1] = 0
    h[5] = 0
    v = torch.randn(n, 2, generator=gen)
    for k, p in net.state_dict().items():
        tensors["net." + k] = p.clone()
    tensors.update({"mlp.x": x, "mlp.t": t, "mlp.h": h, "mlp.v": v})
    net = net.double()
    xd, td, hd, vd = x.double(), t.double(), h.double(), v.double()

    def u_of(xx, tt, hh):
        return net(torch.cat([tt[:, None], xx, hh[:, None]], dim=1))

    u, du = jvp(u_of, (xd, td, hd), (vd, torch.ones_like(td), -torch.ones_like(hd)))
    target = (vd + hd[:, None] * du).detach()
    sq = ((u - target) ** 2).sum(1)
    w = ((sq + C) ** -P).detach()
    loss = (w * sq).sum() / n
    net.zero_grad()
    loss.backward()
    tensors.update({"mlp.u": u.detach().float(), "mlp.du": du.detach().float(), "mlp.target": target.float(),
                    "mlp.loss": loss.detach().reshape(1).float(), "mlp.plain": sq.sum().detach().reshape(1).float()})
    for k, p in net.named_parameters():
        tensors["mlp.grad.net." + k] = p.grad.float()
    # one Adam step (lr 1e-2, the 2D default) from these gradients: the weights after it
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    opt.step()
    for k, p in net.named_parameters():
        tensors["mlp.after.net." + k] = p.detach().float()


def unet_part(gen, tensors):
    flow = UNetFlow(1, 8, 8, base=8, mult=(1, 2), groups=4, num_classes=3, interval=True)
    with torch.no_grad():
        for k, p in flow.named_parameters():
            if "norm" in k and k.endswith("weight"):
                p.copy_(1 + (torch.rand(p.shape, generator=gen) * 2 - 1) * 0.3)
            else:
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * 0.3)
    for k, p in flow.state_dict().items():
        tensors["unet." + k] = p.clone()
    n = 3
    x = torch.randn(n, 64, generator=gen)
    t = torch.rand(n, generator=gen)
    h = torch.rand(n, generator=gen) * (1 - t)
    dx = torch.randn(n, 64, generator=gen)
    y = torch.tensor([0, 2, 3])
    tensors.update({"unet.x": x, "unet.t": t, "unet.h": h, "unet.dx": dx,
                    "unet.labels": y.float()})
    flow = flow.double()
    u, du = jvp(lambda xx, tt, hh: flow(tt, xx, y, hh), (x.double(), t.double(), h.double()),
                           (dx.double(), torch.ones(n, dtype=torch.float64), -torch.ones(n, dtype=torch.float64)))
    tensors["unet.u"] = u.detach().float()
    tensors["unet.du"] = du.detach().float()


def gen_meanflow(save, path):
    gen = torch.Generator().manual_seed(22)
    tensors = {}
    mlp_part(gen, tensors)
    unet_part(gen, tensors)
    save(path, {k: v.contiguous() for k, v in tensors.items()}, {"torch": torch.__version__, "p": str(P), "c": str(C)})
