"""flowmatch's baseline models as PyTorch modules, with the same parameter
names, so fixtures can be generated and checkpoints loaded with load_state_dict."""
import math

import torch

# flowmatch's activation names (those the baselines use) as modules
ACTS = {"elu": torch.nn.ELU, "relu": torch.nn.ReLU, "silu": torch.nn.SiLU, "tanh": torch.nn.Tanh}


class VAE(torch.nn.Module):
    """flowmatch's VAE: encoder MLP (act after every layer), heads, decoder MLP."""

    def __init__(self, dim, latent, widths, gaussian, act="elu"):
        super().__init__()
        enc, i = [], dim
        for w in widths:
            enc += [torch.nn.Linear(i, w), ACTS[act]()]
            i = w
        self.encoder = torch.nn.Sequential(*enc)
        self.fc_mu = torch.nn.Linear(i, latent)
        self.fc_logvar = torch.nn.Linear(i, latent)
        dec, i = [], latent
        for w in reversed(widths):
            dec += [torch.nn.Linear(i, w), ACTS[act]()]
            i = w
        self.decoder = torch.nn.Sequential(*dec, torch.nn.Linear(i, dim))
        self.gaussian = gaussian
        if gaussian:
            self.dec_logvar = torch.nn.Parameter(torch.zeros(dim))

    def loss(self, x, eps):
        h = self.encoder(x)
        mu, lv = self.fc_mu(h), self.fc_logvar(h)
        z = mu + eps * torch.exp(0.5 * lv)
        out = self.decoder(z)
        if self.gaussian:
            dlv = self.dec_logvar.expand_as(out)
            rec = (0.5 * (math.log(2 * math.pi) + dlv + (x - out) ** 2 * torch.exp(-dlv))).sum()
        else:  # the tutorial's BCE(sigmoid(out), x, sum)
            rec = torch.nn.functional.binary_cross_entropy(torch.sigmoid(out), x, reduction="sum")
        kld = -0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp())
        return rec, kld

    def reconstruct(self, x):
        """decode(mu(x)): the decoder's mean (sigmoid for Bernoulli)."""
        out = self.decoder(self.fc_mu(self.encoder(x)))
        return out if self.gaussian else torch.sigmoid(out)


def mlp(i, widths, o, act="elu", out_act="none"):
    """Linear and act layers; the GAN generator may end in a tanh (no weights,
    so the state_dict names are the same)."""
    layers = []
    for w in widths:
        layers += [torch.nn.Linear(i, w), ACTS[act]()]
        i = w
    layers.append(torch.nn.Linear(i, o))
    if out_act != "none":
        layers.append(ACTS[out_act]())
    return torch.nn.Sequential(*layers)
