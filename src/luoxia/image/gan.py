"""A DCGAN (Radford et al. 2016), conditional on class labels or a caption's sentence vector.

    generator      [z, c] → 4×4 → (upsample ×2, conv, BatchNorm, ReLU) … → conv → tanh → (B, C, H, W)
    discriminator  x → (conv stride 2, LeakyReLU) … → φ(x) (B, F);  D(x, c) = w·φ(x) + ⟨e(c), φ(x)⟩
                   (the projection discriminator of Miyato & Koyama 2018)
Regularisation (`reg`): "sn" puts spectral norm (Miyato et al. 2018) on every discriminator weight
and trains with the hinge loss; "gp" trains the WGAN loss with a gradient penalty
λ (‖∇D(x̃)‖ − 1)² on random interpolates (Gulrajani et al. 2017) and no normalisation in D.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from luoxia.image.vae import CondEmbedding, VAEConfig


@dataclasses.dataclass
class GANConfig(VAEConfig):
    """The VAE's fields (image size, channels, latent, condition) plus the discriminator's regulariser."""

    channels: int = 64
    reg: str = "sn"  # sn | gp


PRESETS = {"tiny": dict(channels=8, latent_dim=8), "small": dict(channels=32, latent_dim=64),
           "shapes": dict(channels=64, latent_dim=64), "base": dict(channels=96, latent_dim=128)}


class Generator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.config = cfg
        top = cfg.channels * 2 ** (cfg.levels - 1)
        self.embed = CondEmbedding(cfg.cond, cfg.num_classes, cfg.context_dim, cfg.cond_dim)
        extra = cfg.cond_dim if cfg.cond != "none" else 0
        self.project = nn.Sequential(nn.Linear(cfg.latent_dim + extra, top * 16), nn.ReLU())
        blocks, c = [], top
        for _ in range(cfg.levels):
            c_out = max(cfg.channels, c // 2)
            blocks += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(c, c_out, 3, padding=1),
                       nn.BatchNorm2d(c_out), nn.ReLU()]
            c = c_out
        self.body = nn.Sequential(*blocks, nn.Conv2d(c, cfg.in_channels, 3, padding=1))
        self._top = top

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                pooled: torch.Tensor | None = None) -> torch.Tensor:
        c = self.embed(z.shape[0], labels, pooled, z.device)
        h = self.project(z if c is None else torch.cat([z, c], dim=1)).view(z.shape[0], self._top, 4, 4)
        return torch.tanh(self.body(h))

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, pooled: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(self.project[0].weight.device)
        return self(z, labels, pooled)


class Discriminator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        norm = nn.utils.parametrizations.spectral_norm if cfg.reg == "sn" else (lambda m: m)
        layers, c = [norm(nn.Conv2d(cfg.in_channels, cfg.channels, 3, padding=1)), nn.LeakyReLU(0.2)], cfg.channels
        for i in range(cfg.levels):
            c_out = cfg.channels * 2 ** (i + 1)
            layers += [norm(nn.Conv2d(c, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c = c_out
        self.body = nn.Sequential(*layers)
        self.out = norm(nn.Linear(c, 1))
        self.cond = cfg.cond
        if cfg.cond == "class":
            self.embed = norm(nn.Embedding(cfg.num_classes + 1, c))
        elif cfg.cond == "text":
            self.embed = norm(nn.Linear(cfg.context_dim, c))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                pooled: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) scores: higher = more real."""
        phi = F.leaky_relu(self.body(x), 0.2).sum(dim=(2, 3))  # (B, F), summed over positions
        score = self.out(phi).squeeze(1)
        if self.cond == "class" and labels is not None:
            score = score + (self.embed(labels) * phi).sum(1)
        elif self.cond == "text" and pooled is not None:
            score = score + (self.embed(pooled) * phi).sum(1)
        return score


def gradient_penalty(disc: Discriminator, real: torch.Tensor, fake: torch.Tensor, labels=None, pooled=None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(‖∇_x̃ D(x̃)‖₂ − 1)²], x̃ uniformly between real and fake."""
    a = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
    mixed = (a * real + (1 - a) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(mixed, labels, pooled).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
