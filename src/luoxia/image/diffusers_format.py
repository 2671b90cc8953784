"""Our UNet ↔ diffusers' `UNet2DModel`: the matching config and the state-dict renaming.

The two networks have the same blocks (see `luoxia.image.unet`), so an unconditional or
class-conditional UNet converts both ways with names only; the one reshaping is our fused
attention input projection `qkv` ↔ diffusers' `to_q`, `to_k`, `to_v`. Text-conditioned UNets have
cross-attention, which `UNet2DModel` lacks, and do not convert.

    kwargs = diffusers_config(cfg)                       # UNet2DModel(**kwargs)
    theirs = to_diffusers(our_state_dict, cfg)           # load_state_dict into the UNet2DModel
    ours = from_diffusers(their_state_dict, cfg)
"""

from __future__ import annotations

import re

import torch

from luoxia.core.errors import UnsupportedModelError
from luoxia.image.unet import UNetConfig

_RES = {"norm1": "norm1", "conv1": "conv1", "emb": "time_emb_proj", "norm2": "norm2", "conv2": "conv2",
        "skip": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "proj": "to_out.0"}


def diffusers_config(cfg: UNetConfig) -> dict:
    if cfg.cond == "text" or cfg.patch != 1:
        raise UnsupportedModelError("only unconditional or class-conditional UNets without patching match a "
                                    "diffusers UNet2DModel")
    res, down, up = cfg.image_size, [], []
    for i in range(len(cfg.channel_mults)):
        down.append("AttnDownBlock2D" if res in cfg.attn_resolutions else "DownBlock2D")
        res //= 2 if i < len(cfg.channel_mults) - 1 else 1
    up = [d.replace("Down", "Up") for d in reversed(down)]
    head_sizes = {c // cfg.n_heads(c) for c in (cfg.channels * m for m in cfg.channel_mults)}
    if len(head_sizes) != 1:
        raise UnsupportedModelError("diffusers uses one head size at every level; set head_dim")
    kwargs = dict(sample_size=cfg.image_size, in_channels=cfg.in_channels, out_channels=cfg.in_channels,
                  block_out_channels=tuple(cfg.channels * m for m in cfg.channel_mults), layers_per_block=cfg.layers,
                  down_block_types=tuple(down), up_block_types=tuple(up), norm_num_groups=cfg.groups,
                  attention_head_dim=head_sizes.pop(),
                  attn_norm_num_groups=cfg.groups, resnet_time_scale_shift="scale_shift", dropout=cfg.dropout)
    if cfg.cond == "class":
        kwargs["num_class_embeds"] = cfg.num_classes + 1
    return kwargs


def _rename(key: str) -> list[tuple[str, slice | None]]:
    """Our key → [(diffusers key, rows of our tensor it takes)]."""
    fixed = {"time_mlp.0": "time_embedding.linear_1", "time_mlp.2": "time_embedding.linear_2",
             "class_emb": "class_embedding", "norm_out": "conv_norm_out", "conv_in": "conv_in", "conv_out": "conv_out"}
    for ours, theirs in fixed.items():
        if key.startswith(ours + "."):
            return [(theirs + key[len(ours):], None)]
    m = re.match(r"(down|up)\.(\d+)\.(res|attn)\.(\d+)\.(\w+)\.(weight|bias)$", key)
    if m:
        where, i, kind, j, name, leaf = m.groups()
        block = f"{where}_blocks.{i}.{'resnets' if kind == 'res' else 'attentions'}.{j}"
    elif m := re.match(r"mid\.res\.(\d+)\.(\w+)\.(weight|bias)$", key):
        j, name, leaf = m.groups()
        kind, block = "res", f"mid_block.resnets.{j}"
    elif m := re.match(r"mid_attn\.(\w+)\.(weight|bias)$", key):
        name, leaf = m.groups()
        kind, block = "attn", "mid_block.attentions.0"
    elif m := re.match(r"(downsample|upsample)\.(\d+)\.conv\.(weight|bias)$", key):
        what, i, leaf = m.groups()
        return [(f"{what.replace('sample', '')}_blocks.{i}.{what}rs.0.conv.{leaf}", None)]
    else:
        raise UnsupportedModelError(f"no diffusers name for {key}")
    if kind == "res":
        return [(f"{block}.{_RES[name]}.{leaf}", None)]
    if name == "qkv":
        return [(f"{block}.to_{p}.{leaf}", p) for p in "qkv"]
    return [(f"{block}.{_ATTN[name]}.{leaf}", None)]


def to_diffusers(state: dict[str, torch.Tensor], cfg: UNetConfig) -> dict[str, torch.Tensor]:
    diffusers_config(cfg)  # refuses what does not convert
    out = {}
    for key, value in state.items():
        for name, part in _rename(key):
            if part is None:
                out[name] = value
            else:
                out[name] = value.chunk(3, dim=0)["qkv".index(part)]
    return out


def from_diffusers(state: dict[str, torch.Tensor], cfg: UNetConfig) -> dict[str, torch.Tensor]:
    from luoxia.image.unet import UNet

    with torch.device("meta"):
        ours = UNet(cfg).state_dict()
    out = {}
    for key in ours:
        names = _rename(key)
        if len(names) == 1:
            out[key] = state[names[0][0]]
        else:
            out[key] = torch.cat([state[n] for n, _ in names], dim=0)
    return out
