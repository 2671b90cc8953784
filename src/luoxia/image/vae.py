"""A convolutional VAE (Kingma & Welling 2014): reconstructions, samples from the prior, latent interpolation.

    encoder  x (B, C, H, W) → conv blocks, halving H and W each time down to 4×4 → (μ, log σ²) of z (B, Z)
    decoder  [z, c] → 4×4 features → conv blocks, doubling back to H×W → x̂ in [-1, 1] (tanh)
    loss     Σ_pixels (x − x̂)² + β · KL(q(z|x) ‖ N(0, I)), averaged over the batch

Conditions (`cond`): "class" (a label embedding) or "text" (the MiniLM sentence vector, projected)
are concatenated to the encoder's features and to z, so sampling from N(0, I) with a condition
draws that class or caption.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclasses.dataclass
class VAEConfig:
    image_size: int = 32
    in_channels: int = 3
    channels: int = 32
    latent_dim: int = 64
    cond: str = "none"  # none | class | text
    num_classes: int = 10
    cond_dim: int = 64
    context_dim: int = 384

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def levels(self) -> int:
        return int(math.log2(self.image_size // 4))


PRESETS = {"tiny": dict(channels=8, latent_dim=8), "small": dict(channels=32, latent_dim=64),
           "shapes": dict(channels=64, latent_dim=64), "base": dict(channels=64, latent_dim=128)}


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(8, c_out), nn.SiLU())


class CondEmbedding(nn.Module):
    """A class label (index num_classes = none) or a pooled text vector → (B, cond_dim); zeros when unconditional."""

    def __init__(self, cond: str, num_classes: int, context_dim: int, dim: int):
        super().__init__()
        self.cond, self.dim = cond, dim
        if cond == "class":
            self.table = nn.Embedding(num_classes + 1, dim)
        elif cond == "text":
            self.proj = nn.Sequential(nn.Linear(context_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, n: int, labels: torch.Tensor | None, pooled: torch.Tensor | None,
                device: torch.device) -> torch.Tensor | None:
        if self.cond == "class":
            if labels is None:
                labels = torch.full((n,), self.table.num_embeddings - 1, dtype=torch.long, device=device)
            return self.table(labels)
        if self.cond == "text":
            return self.proj(pooled if pooled is not None else torch.zeros(n, self.proj[0].in_features,
                                                                           device=device))
        return None


class VAE(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.config = cfg
        ch = [cfg.channels * 2 ** min(i, 2) for i in range(cfg.levels + 1)]  # e.g. 32, 64, 128, 128
        extra = cfg.cond_dim if cfg.cond != "none" else 0
        self.embed = CondEmbedding(cfg.cond, cfg.num_classes, cfg.context_dim, cfg.cond_dim)
        layers = [_conv(cfg.in_channels, ch[0])]
        for i in range(cfg.levels):
            layers += [_conv(ch[i], ch[i + 1], stride=2), _conv(ch[i + 1], ch[i + 1])]
        self.encoder = nn.Sequential(*layers)
        self.flat = ch[-1] * 16
        self.to_stats = nn.Linear(self.flat + extra, 2 * cfg.latent_dim)
        self.from_latent = nn.Linear(cfg.latent_dim + extra, self.flat)
        up = []
        for i in reversed(range(cfg.levels)):
            up += [nn.Upsample(scale_factor=2.0, mode="nearest"), _conv(ch[i + 1], ch[i]), _conv(ch[i], ch[i])]
        self.decoder = nn.Sequential(*up, nn.Conv2d(ch[0], cfg.in_channels, 3, padding=1))
        self._top = ch[-1]

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²), each (B, Z)."""
        h = self.encoder(x).flatten(1)  # (B, C·4·4)
        if c is not None:
            h = torch.cat([h, c], dim=1)
        return self.to_stats(h).chunk(2, dim=1)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is not None:
            z = torch.cat([z, c], dim=1)
        h = self.from_latent(z).view(z.shape[0], self._top, 4, 4)
        return torch.tanh(self.decoder(F.silu(h)))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, pooled: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x̂, μ, log σ²) with z = μ + σ ε (the reparameterisation trick)."""
        c = self.embed(x.shape[0], labels, pooled, x.device)
        mu, logvar = self.encode(x, c)
        eps = torch.randn(mu.shape, generator=generator).to(mu.device)
        return self.decode(mu + (0.5 * logvar).exp() * eps, c), mu, logvar

    @staticmethod
    def loss(x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, reconstruction Σ (x − x̂)², KL), each averaged over the batch."""
        rec = (recon - x).pow(2).flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        return rec + beta * kl, rec, kl

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, pooled: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.from_latent.weight.device
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(device)
        return self.decode(z, self.embed(n, labels, pooled, device))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                    pooled: torch.Tensor | None = None) -> torch.Tensor:
        """x̂ from the posterior mean μ."""
        c = self.embed(x.shape[0], labels, pooled, x.device)
        return self.decode(self.encode(x, c)[0], c)

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """Decodings of the latent means of images a and b (C, H, W) and `steps` − 2 points between (spherical)."""
        c = self.embed(2, None, None, a.device)
        mu = self.encode(torch.stack([a, b]), c)[0]
        w = torch.linspace(0, 1, steps, device=a.device)[:, None]
        cos = F.cosine_similarity(mu[:1], mu[1:]).clamp(-1 + 1e-6, 1 - 1e-6)
        omega = torch.arccos(cos)
        z = (torch.sin((1 - w) * omega) * mu[0] + torch.sin(w * omega) * mu[1]) / torch.sin(omega)
        cc = None if c is None else c[:1].expand(steps, -1)
        return self.decode(z, cc)
