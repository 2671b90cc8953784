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

    def network_config(self, config_cls, presets: dict, **extra):
        """`config_cls` from the preset, overridden by `--network` keys, fitted to the data."""
        if self.cfg.preset not in presets:
            raise_preset(self.cfg.preset, presets)
        return config_cls(**{**presets[self.cfg.preset], **self.cfg.network, "image_size": self.data.size,
                             "in_channels": self.data.channels, "cond": self.cond,
                             "num_classes": max(1, self.num_classes), **extra})

    def update(self, loss: torch.Tensor, name: str = "net", clip: bool = True) -> None:
        """One optimizer step of `self.optimizers[name]` on `loss`, clipping the net's gradients if asked."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip and self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip)
        opt.step()

    def sample_preview(self, gen: torch.Generator) -> tuple[np.ndarray, list[str]]:
        """A preview grid from a VAE or GAN's EMA generator."""
        x = self.ema.sample(PREVIEW, generator=gen, **_cond_inputs(self.conditioner.preview(PREVIEW)))
        return to_uint8(x), self.preview_prompts()

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
        self.net_config = self.network_config(UNetConfig, PRESETS)
        self.net = UNet(self.net_config)
        self.ema = clone_frozen(self.net)
        self.modules = {"net": self.net, "ema": self.ema}
        self.optimizers = {"net": torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)}
        self.schedule = ScheduleConfig(beta_schedule=cfg.beta_schedule, timestep_spacing="trailing",
                                       prediction_type=cfg.prediction_type)
        self.scheduler = DDPMScheduler(self.schedule)

    def step(self, x: torch.Tensor, idx: np.ndarray, rng: np.random.Generator, gen: torch.Generator,
             step: int) -> dict[str, float]:
        from luoxia.image.diffusion import training_loss

        cond = self.conditioner.batch(idx, rng, self.cfg.p_uncond)
        loss = training_loss(self.net, self.scheduler, x, cond, gen)
        self.update(loss)
        return {"loss": loss.item()}

    def preview(self, gen: torch.Generator) -> tuple[np.ndarray, list[str]]:
        from luoxia.image.diffusion import sample
        from luoxia.image.schedulers import make_sampler

        cond = self.conditioner.preview(PREVIEW)
        null = self.conditioner.null(PREVIEW)
        shape = (PREVIEW, self.data.channels, self.data.size, self.data.size)
        x = sample(self.ema, make_sampler("ddim", self.schedule), shape, cond, null,
                   guidance=3.0 if null is not None else 1.0, steps=25, generator=gen)
        return to_uint8(x), self.preview_prompts()

    def export(self, out: Path, extra: dict) -> None:
        save_model(out, self.ema, {"kind": "ddpm", "network": self.net_config.to_dict(),
                                   "schedule": dataclasses.asdict(self.schedule), **self.meta(), **extra})


def _cond_inputs(cond) -> dict:
    """A `Condition` as the labels / pooled-text keywords of the VAE and GAN networks."""
    if cond.text is not None:
        return {"pooled": cond.text.pooled}
    return {"labels": cond.labels} if cond.labels is not None else {}


class VAEMethod(Method):
    kind = "vae"

    def __init__(self, cfg: ImageTrainConfig, data: ImageData, cond: str):
        from luoxia.image.vae import PRESETS, VAE, VAEConfig

        super().__init__(cfg, data, cond)
        self.net_config = self.network_config(VAEConfig, PRESETS)
        self.net = VAE(self.net_config)
        self.ema = clone_frozen(self.net)
        self.modules = {"net": self.net, "ema": self.ema}
        self.optimizers = {"net": torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)}

    def step(self, x, idx, rng, gen, step) -> dict[str, float]:
        cond = self.conditioner.batch(idx, rng, 0.0)
        recon, mu, logvar = self.net(x, generator=gen, **_cond_inputs(cond))
        loss, rec, kl = self.net.loss(x, recon, mu, logvar, self.cfg.kl_weight)
        self.update(loss)
        return {"loss": loss.item(), "recon": rec.item(), "kl": kl.item()}

    def preview(self, gen):
        return self.sample_preview(gen)

    def export(self, out: Path, extra: dict) -> None:
        save_model(out, self.ema, {"kind": "vae", "network": self.net_config.to_dict(), **self.meta(), **extra})


class GANMethod(Method):
    """Hinge loss with spectral norm (reg "sn"), or WGAN loss with a gradient penalty of weight 10 ("gp")."""

    kind = "gan"

    def __init__(self, cfg: ImageTrainConfig, data: ImageData, cond: str):
        from luoxia.image.gan import PRESETS, Discriminator, GANConfig, Generator

        super().__init__(cfg, data, cond)
        self.net_config = self.network_config(GANConfig, PRESETS, reg=cfg.gan_reg)
        self.net = Generator(self.net_config)
        self.disc = Discriminator(self.net_config)
        self.ema = clone_frozen(self.net)
        self.modules = {"net": self.net, "ema": self.ema, "disc": self.disc}
        betas = (0.0, 0.9)
        self.optimizers = {"net": torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=betas),
                           "disc": torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=betas)}

    def step(self, x, idx, rng, gen, step) -> dict[str, float]:
        from luoxia.image.gan import gradient_penalty

        kw = _cond_inputs(self.conditioner.batch(idx, rng, 0.0))
        z = torch.randn(x.shape[0], self.net_config.latent_dim, generator=gen)
        fake = self.net(z, **kw)
        d_real, d_fake = self.disc(x, **kw), self.disc(fake.detach(), **kw)
        if self.net_config.reg == "sn":
            d_loss = torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
        else:
            d_loss = d_fake.mean() - d_real.mean() + 10.0 * gradient_penalty(self.disc, x, fake.detach(),
                                                                              generator=gen, **kw)
        self.update(d_loss, "disc", clip=False)
        g_loss = -self.disc(fake, **kw).mean()
        self.update(g_loss, clip=False)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

    def preview(self, gen):
        return self.sample_preview(gen)

    def export(self, out: Path, extra: dict) -> None:
        save_model(out, self.ema, {"kind": "gan", "network": self.net_config.to_dict(), **self.meta(), **extra})


def raise_preset(name: str, presets: dict) -> None:
    from luoxia.core.errors import InvalidParameterError

    raise InvalidParameterError(f"unknown --preset {name!r}; choose one of {', '.join(presets)}")


METHODS = {"ddpm": Diffusion, "vae": VAEMethod, "gan": GANMethod}
