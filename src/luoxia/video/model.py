"""The video denoiser: the image UNet run on every frame, with temporal attention after each spatial block.

Factorised space-time attention (Ho et al. 2022, "Video Diffusion Models"; Blattmann et al. 2023):
the spatial layers of `luoxia.image.unet.UNet` see each frame as an image; after every residual
block (and its spatial/cross attention) a `TemporalAttention` lets each pixel position attend to
the same position in the other frames. Each frame also gets its place in the clip, τ ∈ [0, 1]
(0 = first frame, 1 = last), which a small MLP turns, together with the caption's pooled vector,
into an offset of the time embedding: the FiLM of every residual block knows where in the clip it
is and what the caption asks for there ("from left to right" at τ = 0 means "on the left"). τ
rather than the frame index, so a clip of more frames samples the same motion more finely.

Both additions end in zero-initialised projections, so a fresh `VideoUNet` computes exactly the
per-frame image model (tested), and training starts from the image model's weights.

Shapes: B clips, T frames, C channels, H×W pixels, L text tokens, E embedding width.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from luoxia.image.unet import UNet, UNetConfig, timestep_embedding


@dataclasses.dataclass
class VideoUNetConfig:
    unet: dict = dataclasses.field(default_factory=dict)  # the spatial UNetConfig's fields
    frames: int = 8  # the clip length it was trained on (other lengths work, less well)
    temporal_heads: int = 4

    def __post_init__(self):
        self.unet = UNetConfig(**self.unet).to_dict() if isinstance(self.unet, dict) else self.unet.to_dict()

    @property
    def spatial(self) -> UNetConfig:
        return UNetConfig(**self.unet)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def frame_positions(frames: int, device: torch.device | None = None) -> torch.Tensor:
    """(T,) the place of each frame in the clip, 0 … 1."""
    return torch.linspace(0.0, 1.0, frames, device=device) if frames > 1 else torch.zeros(1, device=device)


class TemporalAttention(nn.Module):
    """Self-attention over the T frames at each pixel position, with a sinusoidal code of τ added to the
    keys' and queries' input; the output projection starts at zero (an identity block)."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.pos = nn.Linear(channels, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, frames: int) -> torch.Tensor:
        BT, C, H, W = h.shape
        B, T = BT // frames, frames
        x = self.norm(h).view(B, T, C, H, W).permute(0, 3, 4, 1, 2).reshape(B * H * W, T, C)  # (BHW, T, C)
        code = timestep_embedding(frame_positions(T, h.device) * 100, C).to(h.dtype)  # (T, C)
        x = x + self.pos(code)[None]
        q, k, v = (y.view(B * H * W, T, self.heads, C // self.heads).transpose(1, 2)
                   for y in self.qkv(x).chunk(3, dim=-1))  # (BHW, heads, T, C/heads) each
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B * H * W, T, C)
        out = self.proj(a).view(B, H, W, T, C).permute(0, 3, 4, 1, 2).reshape(BT, C, H, W)
        return h + out


class VideoUNet(nn.Module):
    def __init__(self, cfg: VideoUNetConfig):
        super().__init__()
        self.config = cfg
        self.unet = UNet(cfg.spatial)
        sc = cfg.spatial
        emb_dim = sc.emb_dim
        # (τ code, the caption's pooled vector) → an embedding offset per frame: what a motion means at each
        # moment depends on the caption ("from left to right" at τ = 0 is "on the left"), so both go in together
        self.frame_mlp = nn.Sequential(nn.Linear(sc.channels + sc.context_dim, emb_dim), nn.SiLU(),
                                       nn.Linear(emb_dim, emb_dim))
        nn.init.zeros_(self.frame_mlp[2].weight)
        nn.init.zeros_(self.frame_mlp[2].bias)
        # one temporal block after every residual block, in the order the forward pass meets them
        widths = [block.conv2.out_channels for level in self.unet.down for block in level.res]
        widths += [self.unet.mid.res[1].conv2.out_channels]
        widths += [block.conv2.out_channels for level in self.unet.up for block in level.res]
        self.temporal = nn.ModuleList(TemporalAttention(c, _heads(c, cfg.temporal_heads), sc.groups) for c in widths)

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None, pooled: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, C, H, W) noisy clips, t (B,) timesteps, text per clip → the model output (B, T, C, H, W)."""
        B, T, C, H, W = x.shape
        u, cfg = self.unet, self.unet.config
        if t.ndim == 0:
            t = t.expand(B)
        per_frame = lambda y: None if y is None else y.repeat_interleave(T, dim=0)  # (B, ...) → (B·T, ...)
        emb = u.embed(per_frame(t), per_frame(labels), per_frame(pooled))  # (B·T, E)
        tau = timestep_embedding(frame_positions(T, x.device) * 100, cfg.channels).repeat(B, 1)  # (B·T, channels)
        text = per_frame(pooled) if pooled is not None else torch.zeros(B * T, cfg.context_dim, device=x.device)
        emb = emb + self.frame_mlp(torch.cat([tau, text.to(tau.dtype)], dim=1))
        temporal = iter(self.temporal)
        out = u.backbone(x.reshape(B * T, C, H, W), emb, per_frame(context), per_frame(context_mask),
                         mix=lambda h: next(temporal)(h, T))
        return out.view(B, T, C, H, W)


def _heads(channels: int, heads: int) -> int:
    """The largest head count ≤ `heads` that divides `channels`."""
    return max(h for h in range(1, heads + 1) if channels % h == 0)
