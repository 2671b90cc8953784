"""A small feature network for FID and KID on 32×32 images, trained by the project and shipped with it.

FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) compare the distributions of features of
real and generated images. The usual features come from Inception-v3 trained on ImageNet; we have
no such network offline, and our images are 32×32 shapes and digits, so we train our own: a
6-layer CNN whose 256-d pooled features must predict, for a shapes-world image, which colours,
kinds and grid cells it holds and how many objects, and for a digit its class. The numbers it
gives are comparable with each other (same network, same data), NOT with published Inception FIDs.

    net = load_feature_net()                 # the shipped weights (src/luoxia/eval/weights/)
    feats = net.features(images_uint8)       # (N, 256) float64, images (N, 32, 32, 1|3) uint8
    train_feature_net(out_dir)               # how the shipped weights were made (~20 min on one CPU core)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from luoxia.core.errors import ModelNotFoundError

WEIGHTS = Path(__file__).parent / "weights" / "image_features"
SIZE = 32
DIM = 256


DEGRADATIONS = ("clean", "noise", "blur", "colour")


def degrade(x: torch.Tensor, kind: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply per-image degradations to x (B, 3, H, W) in [-1, 1]: kind 0 clean, 1 Gaussian noise
    (σ 0.04–0.3), 2 Gaussian blur (σ 0.5–1.5 px), 3 colour cast (±25% per channel)."""
    B = x.shape[0]
    out = x.clone()
    u = torch.rand(B, generator=generator)
    noisy = kind == 1
    if noisy.any():
        sigma = (0.04 + 0.26 * u[noisy]).view(-1, 1, 1, 1)
        out[noisy] = x[noisy] + sigma * torch.randn(x[noisy].shape, generator=generator)
    blurred = kind == 2
    for i in torch.nonzero(blurred).flatten().tolist():
        s = 0.5 + float(u[i])
        r = torch.arange(-3, 4, dtype=torch.float32)
        k = torch.exp(-r ** 2 / (2 * s * s))
        k = k / k.sum()
        img = F.pad(x[i:i + 1], (3, 3, 3, 3), mode="replicate")
        img = F.conv2d(img, k.view(1, 1, 1, 7).expand(3, 1, 1, 7), groups=3)
        out[i] = F.conv2d(img, k.view(1, 1, 7, 1).expand(3, 1, 7, 1), groups=3)[0]
    cast = kind == 3
    if cast.any():
        scale = 1 + 0.25 * (2 * torch.rand(int(cast.sum()), 3, 1, 1, generator=generator) - 1)
        out[cast] = ((x[cast] + 1) * scale - 1)
    return out.clamp(-1, 1)


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(8, c_out), nn.SiLU())


class FeatureNet(nn.Module):
    def __init__(self, n_colours: int = 6, n_kinds: int = 3, n_cells: int = 9, n_counts: int = 3,
                 n_digits: int = 10):
        super().__init__()
        self.body = nn.Sequential(_block(3, 32, 1), _block(32, 64, 2), _block(64, 64, 1), _block(64, 128, 2),
                                  _block(128, 128, 1), _block(128, DIM, 2))
        self.heads = nn.ModuleDict({"colours": nn.Linear(DIM, n_colours), "kinds": nn.Linear(DIM, n_kinds),
                                    "cells": nn.Linear(DIM, n_cells), "count": nn.Linear(DIM, n_counts),
                                    "digit": nn.Linear(DIM, n_digits),
                                    "quality": nn.Linear(DIM, len(DEGRADATIONS))})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, 32, 32) in [-1, 1] → pooled features (B, 256)."""
        return self.body(x).mean(dim=(2, 3))

    @torch.no_grad()
    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 (N, H, W, 1|3) images → (N, 256) float64 features (resized to 32×32, grey → RGB)."""
        out = []
        for i in range(0, len(images), batch_size):
            out.append(self(prepare(images[i:i + batch_size])).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, DIM))


def prepare(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != SIZE:
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x


def load_feature_net(path: str | Path | None = None) -> FeatureNet:
    from safetensors.torch import load_file

    path = Path(path) if path is not None else WEIGHTS
    if not (path / "model.safetensors").is_file():
        raise ModelNotFoundError(f"the FID/KID feature network is missing from {path}; reinstall luoxia or run "
                                 "scripts/train_image_defaults.py --only features")
    net = FeatureNet()
    net.load_state_dict(load_file(path / "model.safetensors"))
    return net.eval()


def _shape_targets(layouts) -> dict[str, torch.Tensor]:
    from luoxia.image import shapes as world

    colours, kinds, cells = list(world.COLOURS), list(world.KINDS), list(world.CELLS)
    t = {"colours": torch.zeros(len(layouts), len(colours)), "kinds": torch.zeros(len(layouts), len(kinds)),
         "cells": torch.zeros(len(layouts), len(cells)), "count": torch.zeros(len(layouts), dtype=torch.long)}
    for i, scene in enumerate(layouts):
        for s in scene:
            t["colours"][i, colours.index(s.colour)] = 1
            t["kinds"][i, kinds.index(s.kind)] = 1
            t["cells"][i, cells.index(s.cell)] = 1
        t["count"][i] = len(scene) - 1
    return t


def train_feature_net(out: str | Path, steps: int = 1500, batch_size: int = 64, seed: int = 1234,
                      log=print) -> dict:
    """Train on 10,000 shapes scenes (seed 1234, not the generators' seed 0) and the digits; save to `out`."""
    from safetensors.torch import save_file

    from luoxia.core import atomic
    from luoxia.image.datasets import digits_dataset, shapes_dataset

    torch.manual_seed(seed)
    shapes = shapes_dataset(10000, size=SIZE, seed=seed)
    digits = digits_dataset(SIZE)
    xs, ts = prepare(shapes.images), _shape_targets(shapes.layouts)
    xd, yd = prepare(digits.images), torch.from_numpy(digits.labels)
    net = FeatureNet()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 2e-3 * 0.5 * (1 + np.cos(np.pi * step / steps))
        i = torch.from_numpy(rng.integers(0, len(xs), batch_size))
        j = torch.from_numpy(rng.integers(0, len(xd), batch_size // 2))
        # half the images clean, the rest degraded; the content heads see only clean shapes and digits
        q_s = torch.where(torch.rand(batch_size, generator=gen) < 0.5, 0, torch.randint(1, 4, (batch_size,),
                                                                                           generator=gen))
        q_d = torch.where(torch.rand(batch_size // 2, generator=gen) < 0.5, 0,
                          torch.randint(1, 4, (batch_size // 2,), generator=gen))
        f_s, f_d = net(degrade(xs[i], q_s, gen)), net(degrade(xd[j], q_d, gen))
        clean_s, clean_d = q_s == 0, q_d == 0
        loss = sum(F.binary_cross_entropy_with_logits(net.heads[k](f_s[clean_s]), ts[k][i][clean_s])
                   for k in ("colours", "kinds", "cells"))
        loss = loss + F.cross_entropy(net.heads["count"](f_s[clean_s]), ts["count"][i][clean_s]) + \
            F.cross_entropy(net.heads["digit"](f_d[clean_d]), yd[j][clean_d]) + \
            F.cross_entropy(net.heads["quality"](torch.cat([f_s, f_d])), torch.cat([q_s, q_d]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            log(f"feature net step {step + 1}/{steps} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)")
    net.eval()
    held = shapes_dataset(1000, size=SIZE, seed=seed + 1)
    with torch.no_grad():
        f = net(prepare(held.images))
        tt = _shape_targets(held.layouts)
        acc = {k: float(((net.heads[k](f) > 0).float() == tt[k]).all(1).float().mean()) for k in ("colours", "kinds",
                                                                                                 "cells")}
        acc["count"] = float((net.heads["count"](f).argmax(1) == tt["count"]).float().mean())
        q = torch.arange(len(held.images)) % len(DEGRADATIONS)
        fq = net(degrade(prepare(held.images), q, torch.Generator().manual_seed(seed + 2)))
        acc["quality"] = float((net.heads["quality"](fq).argmax(1) == q).float().mean())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp)
    info = {"format": "luoxia-feature-net", "version": 1, "dim": DIM, "size": SIZE, "steps": steps,
            "batch_size": batch_size, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
            "held_out_accuracy": acc,
            "data": "10,000 shapes scenes (seed 1234) + scikit-learn digits (all 1,797); half of each batch degraded "
            "(noise, blur or colour cast) for the quality head"}
    atomic.write_text(out / "config.json", json.dumps(info, indent=1))
    return info
