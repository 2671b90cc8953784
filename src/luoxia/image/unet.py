"""The denoising UNet: time embedding, residual blocks, attention at low resolution, text or class conditions.

Layout follows DDPM (Ho et al. 2020) and diffusers' `UNet2DModel`, so a model "of matching size"
there has the same blocks: `conv_in`, then per level `layers` residual blocks (with self-attention
at the resolutions in `attn_resolutions`, counted after the optional
pixel-unshuffle by `patch`) and a 2× downsample; a middle block (res, attn, res);
per level on the way up `layers + 1` residual blocks, each fed one skip connection; `conv_out`.

Conditions (`cond`):
    "none"   unconditional
    "class"  a label embedding (index `num_classes` = no label) added to the time embedding
    "text"   MiniLM token states through cross-attention after every self-attention, and the pooled
             sentence vector added to the time embedding; the residual blocks see both through FiLM
             (scale and shift of their normalised features).

Shapes: B images, C channels, H×W pixels, L text tokens, D context width, E embedding width.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclasses.dataclass
class UNetConfig:
    image_size: int = 32
    in_channels: int = 3
    channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    layers: int = 2
    attn_resolutions: tuple[int, ...] = (16, 8)
    heads: int = 4
    head_dim: int = 0  # > 0: heads = channels // head_dim at each level instead (diffusers' attention_head_dim)
    groups: int = 16
    dropout: float = 0.0
    patch: int = 1  # > 1: pixel-unshuffle the input into patch×patch blocks first (Hoogeboom et al. 2023)
    cond: str = "none"  # none | class | text
    num_classes: int = 10
    context_dim: int = 384

    def __post_init__(self):
        self.channel_mults = tuple(self.channel_mults)
        self.attn_resolutions = tuple(self.attn_resolutions)
        if self.cond not in ("none", "class", "text"):
            raise ValueError(f"cond must be none, class or text, got {self.cond!r}")

    def n_heads(self, channels: int) -> int:
        return channels // self.head_dim if self.head_dim else self.heads

    @property
    def emb_dim(self) -> int:
        return 4 * self.channels

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    "tiny": dict(channels=16, channel_mults=(1, 2), layers=1, attn_resolutions=(8,), heads=2, groups=8),
    "small": dict(channels=32, channel_mults=(1, 2, 2), layers=1, attn_resolutions=(16, 8), heads=4, groups=8),
    # the embedded shapes model: 2×2 pixel-unshuffle, so the blocks run at 16, 8 and 4 pixels
    "shapes": dict(patch=2, channels=64, channel_mults=(1, 2, 2), layers=1, attn_resolutions=(8, 4), heads=4,
                   groups=16),
    "digits": dict(patch=2, channels=48, channel_mults=(1, 2, 2), layers=1, attn_resolutions=(8, 4), heads=4,
                   groups=16),
    "base": dict(channels=64, channel_mults=(1, 2, 2), layers=2, attn_resolutions=(16, 8), heads=4, groups=16),
}


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps → (B, dim) sinusoids [cos | sin], as in diffusers (flip_sin_to_cos, shift 0)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GN → SiLU → conv → FiLM(emb) → GN... → conv, plus a (1×1 projected) skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Self-attention over the H·W positions, then (text models) cross-attention to the caption's tokens."""

    def __init__(self, channels: int, heads: int, groups: int, context_dim: int | None):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.cross = context_dim is not None
        if self.cross:
            self.norm_x = nn.LayerNorm(channels)
            self.q = nn.Linear(channels, channels)
            self.kv = nn.Linear(context_dim, 2 * channels)
            self.proj_x = nn.Linear(channels, channels)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        return x.view(B, N, self.heads, C // self.heads).transpose(1, 2)  # (B, heads, N, C/heads)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        a = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        tokens = x.flatten(2).transpose(1, 2) + self.proj(a.transpose(1, 2).reshape(B, H * W, C))
        if self.cross and context is not None:
            k, v = self.kv(context).chunk(2, dim=-1)  # (B, L, C) each
            mask = None if context_mask is None else context_mask[:, None, None, :]  # (B, 1, 1, L)
            a = F.scaled_dot_product_attention(self._split(self.q(self.norm_x(tokens))), self._split(k),
                                               self._split(v), attn_mask=mask)
            tokens = tokens + self.proj_x(a.transpose(1, 2).reshape(B, H * W, C))
        return tokens.transpose(1, 2).reshape(B, C, H, W)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution of the encoder or decoder: residual blocks, each optionally followed by attention."""

    def __init__(self, c_ins: list[int], c_out: int, cfg: UNetConfig, attend: bool):
        super().__init__()
        ctx = cfg.context_dim if cfg.cond == "text" else None
        self.res = nn.ModuleList(ResBlock(c, c_out, cfg.emb_dim, cfg.groups, cfg.dropout) for c in c_ins)
        self.attn = nn.ModuleList(Attention(c_out, cfg.n_heads(c_out), cfg.groups, ctx) for _ in c_ins) \
            if attend else None


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.config = cfg
        ch = [cfg.channels * m for m in cfg.channel_mults]
        self.time_mlp = nn.Sequential(nn.Linear(cfg.channels, cfg.emb_dim), nn.SiLU(),
                                      nn.Linear(cfg.emb_dim, cfg.emb_dim))
        if cfg.cond == "class":
            self.class_emb = nn.Embedding(cfg.num_classes + 1, cfg.emb_dim)  # last row: no label
        elif cfg.cond == "text":
            self.text_emb = nn.Sequential(nn.Linear(cfg.context_dim, cfg.emb_dim), nn.SiLU(),
                                          nn.Linear(cfg.emb_dim, cfg.emb_dim))
            self.context_norm = nn.LayerNorm(cfg.context_dim)
        self.conv_in = nn.Conv2d(cfg.in_channels * cfg.patch ** 2, ch[0], 3, padding=1)

        # Encoder: remember the channels of every skip connection, as diffusers does.
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c, res = [ch[0]], ch[0], cfg.image_size // cfg.patch
        for i, c_out in enumerate(ch):
            self.down.append(Level([c] + [c_out] * (cfg.layers - 1), c_out, cfg, res in cfg.attn_resolutions))
            c = c_out
            skips += [c] * cfg.layers
            last = i == len(ch) - 1
            self.downsample.append(nn.Identity() if last else Downsample(c))
            if not last:
                skips.append(c)
                res //= 2
        self.mid = Level([c, c], c, cfg, attend=False)
        self.mid_attn = Attention(c, cfg.n_heads(c), cfg.groups, cfg.context_dim if cfg.cond == "text" else None)

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, c_out in reversed(list(enumerate(ch))):
            c_ins = []
            for _ in range(cfg.layers + 1):
                c_ins.append(c + skips.pop())
                c = c_out
            self.up.append(Level(c_ins, c_out, cfg, res in cfg.attn_resolutions))
            self.upsample.append(Upsample(c) if i > 0 else nn.Identity())
            if i > 0:
                res *= 2
        self.norm_out = nn.GroupNorm(cfg.groups, c)
        self.conv_out = nn.Conv2d(c, cfg.in_channels * cfg.patch ** 2, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None = None, pooled: torch.Tensor | None = None):
        emb = self.time_mlp(timestep_embedding(t, self.config.channels))  # (B, E)
        if self.config.cond == "class":
            if labels is None:  # unconditional: the "no label" row
                labels = torch.full((t.shape[0],), self.config.num_classes, dtype=torch.long, device=t.device)
            emb = emb + self.class_emb(labels)
        elif self.config.cond == "text" and pooled is not None:
            emb = emb + self.text_emb(pooled)
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, labels: torch.Tensor | None = None,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None,
                pooled: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W) noisy images, t (B,) timesteps → the predicted noise ε (B, C, H, W)."""
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        return self.backbone(x, self.embed(t, labels, pooled), context, context_mask)

    def backbone(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None = None,
                 context_mask: torch.Tensor | None = None,
                 mix: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The network from pixels to output, given the embedding `emb` (B, E). `mix`, if given, is applied
        after every residual block (+ attention) and after the middle: the video model's temporal layers."""
        if context is not None:
            context = self.context_norm(context)
        if self.config.patch > 1:
            x = F.pixel_unshuffle(x, self.config.patch)  # (B, C·p², H/p, W/p)
        mix = mix or (lambda h: h)
        h = self.conv_in(x)
        skips = [h]
        for level, down in zip(self.down, self.downsample):
            for j, block in enumerate(level.res):
                h = block(h, emb)
                if level.attn is not None:
                    h = level.attn[j](h, context, context_mask)
                h = mix(h)
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                skips.append(h)
        h = self.mid.res[0](h, emb)
        h = self.mid_attn(h, context, context_mask)
        h = mix(self.mid.res[1](h, emb))
        for level, up in zip(self.up, self.upsample):
            for j, block in enumerate(level.res):
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
                if level.attn is not None:
                    h = level.attn[j](h, context, context_mask)
                h = mix(h)
            h = up(h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(out, self.config.patch) if self.config.patch > 1 else out
