"""The three families as training methods for `luoxia.image.training`: networks, optimizers, one step.

Each method has `net` (the network that samples, exported with its EMA weights), `ema`,
`modules` and `optimizers` (what a checkpoint holds), `prepare` (work before the first step),
`step` (one update; returns the losses), `preview` (a grid's worth of samples) and `export`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from luoxia.image.datasets import ImageData, to_uint8
from luoxia.image.formats import save_model
from luoxia.image.training import Conditioner, ImageTrainConfig, clone_frozen, preview_captions

PREVIEW = 16


class Method:
    kind = ""

    def __init__(self, cfg: ImageTrainConfig, data: ImageData, cond: str):
        self.cfg, self.data, self.cond = cfg, data, cond
        self.num_classes = len(data.class_names) if data.class_names else 0
        self.text = None
        if cond == "text":
            from luoxia.image.text_encoder import TextEncoder

            self.text = TextEncoder()
        self.conditioner = Conditioner(cond, data, self.num_classes, self.text)

    def prepare(self, out: Path, log) -> None:
        """Encode every caption once (cached in the run folder), so steps never wait for MiniLM."""
        if self.text is None:
            return
        import time

        cache = Path(out) / "text_cache.safetensors"
        if cache.is_file():
            self.text.load_cache(cache)
        todo = sorted(set(self.data.captions) | {""})
        todo = [t for t in todo if t not in self.text._cache]
        if todo:
            t0 = time.perf_counter()
            log(f"encoding {len(todo)} captions with all-MiniLM-L6-v2 ...")
            for i in range(0, len(todo), 2048):
                self.text.encode(todo[i:i + 2048])
            Path(out).mkdir(parents=True, exist_ok=True)
            self.text.save_cache(cache)
            log(f"encoded {len(todo)} captions in {time.perf_counter() - t0:.0f} s")

    def meta(self) -> dict:
        return {"cond": self.cond, "class_names": self.data.class_names, "image_size": self.data.size,
                "channels": self.data.channels}

    def preview_prompts(self) -> list[str]:
        if self.cond == "text":
            return preview_captions(self.data, PREVIEW)
        if self.cond == "class":
            return [self.data.class_names[i % self.num_classes] for i in range(PREVIEW)]
        return [""] * PREVIEW


class Diffusion(Method):
    kind = "ddpm"

    def __init__(self, cfg: ImageTrainConfig, data: ImageData, cond: str):
        from luoxia.image.schedulers import DDPMScheduler, ScheduleConfig
        from luoxia.image.unet import PRESETS, UNet, UNetConfig

        super().__init__(cfg, data, cond)
        if cfg.preset not in PRESETS:
            raise_preset(cfg.preset, PRESETS)
        self.net_config = UNetConfig(**{**PRESETS[cfg.preset], **cfg.network, "image_size": data.size,
                                        "in_channels": data.channels, "cond": cond,
                                        "num_classes": max(1, self.num_classes)})
        self.net = UNet(self.net_config)
        self.ema = clone_frozen(self.net)
        self.modules = {"net": self.net, "ema": self.ema}
        self.optimizers = {"net": torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)}
        self.schedule = ScheduleConfig(beta_schedule=cfg.beta_schedule, timestep_spacing="trailing")
        self.scheduler = DDPMScheduler(self.schedule)

    def step(self, x: torch.Tensor, idx: np.ndarray, rng: np.random.Generator, gen: torch.Generator,
             step: int) -> dict[str, float]:
        from luoxia.image.diffusion import training_loss

        cond = self.conditioner.batch(idx, rng, self.cfg.p_uncond)
        loss = training_loss(self.net, self.scheduler, x, cond, gen)
        opt = self.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip)
        opt.step()
        return {"loss": loss.item()}

    def preview(self, gen: torch.Generator) -> tuple[np.ndarray, list[str]]:
        from luoxia.image.diffusion import sample
        from luoxia.image.schedulers import DDIMScheduler

        cond = self.conditioner.preview(PREVIEW)
        null = self.conditioner.null(PREVIEW)
        shape = (PREVIEW, self.data.channels, self.data.size, self.data.size)
        x = sample(self.ema, DDIMScheduler(self.schedule), shape, cond, null,
                   guidance=3.0 if null is not None else 1.0, steps=25, generator=gen)
        return to_uint8(x), self.preview_prompts()

    def export(self, out: Path, extra: dict) -> None:
        save_model(out, self.ema, {"kind": "ddpm", "network": self.net_config.to_dict(),
                                   "schedule": dataclasses.asdict(self.schedule), **self.meta(), **extra})


def raise_preset(name: str, presets: dict) -> None:
    from luoxia.core.errors import InvalidParameterError

    raise InvalidParameterError(f"unknown --preset {name!r}; choose one of {', '.join(presets)}")


METHODS = {"ddpm": Diffusion}
