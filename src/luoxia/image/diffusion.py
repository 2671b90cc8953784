"""DDPM training loss and the sampling loop: classifier-free guidance, image-to-image, inpainting.

    loss = training_loss(unet, scheduler, x0, cond)                       # Ho et al. 2020, Algorithm 1
    x = sample(unet, scheduler, (B, C, H, W), cond, null, guidance=3, steps=50)

Guidance (Ho & Salimans 2022): ε̃ = ε(x_t, ∅) + w (ε(x_t, c) − ε(x_t, ∅)); w = 1 is plain
conditional sampling, w = 0 unconditional. The conditional and unconditional passes run as one
batch. Image-to-image is SDEdit (Meng et al. 2022): noise the given image to the timestep a
`strength` of the way along the schedule and denoise from there under the new condition.
Inpainting replaces the known region by the given image noised to the current level after every
step (RePaint, Lugmayr et al. 2022), with `resample` - 1 extra jump-back-and-redo rounds per
step so the filled region agrees with its surroundings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from luoxia.core.errors import InvalidParameterError
from luoxia.image.schedulers import Scheduler
from luoxia.image.text_encoder import TextBatch
from luoxia.image.unet import UNet


@dataclasses.dataclass
class Condition:
    """What a batch is conditioned on: class labels (B,), a TextBatch, or nothing."""

    labels: torch.Tensor | None = None
    text: TextBatch | None = None

    def kwargs(self) -> dict:
        if self.text is not None:
            return {"context": self.text.tokens, "context_mask": self.text.mask, "pooled": self.text.pooled}
        return {"labels": self.labels} if self.labels is not None else {}

    def __len__(self) -> int:
        if self.text is not None:
            return self.text.tokens.shape[0]
        return 0 if self.labels is None else self.labels.shape[0]

    @staticmethod
    def cat(a: Condition, b: Condition) -> Condition:
        if a.text is not None:
            return Condition(text=TextBatch.cat([a.text, b.text]))
        if a.labels is not None:
            return Condition(labels=torch.cat([a.labels, b.labels]))
        return Condition()


def training_loss(unet: UNet, scheduler: Scheduler, x0: torch.Tensor, cond: Condition,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """‖target − f_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖², t uniform over the T training timesteps; the target is
    ε (Ho et al. 2020) or v = √ᾱ_t ε − √(1−ᾱ_t) x_0, as the schedule's prediction_type says."""
    B = x0.shape[0]
    t = torch.randint(0, scheduler.config.num_train_timesteps, (B,), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    x_t = scheduler.add_noise(x0, noise, t)
    return F.mse_loss(unet(x_t, t, **cond.kwargs()), scheduler.target(x0, noise, t))


def guided_output(unet: UNet, x: torch.Tensor, t: int, cond: Condition, null: Condition | None,
               guidance: float) -> torch.Tensor:
    tt = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
    if null is None or guidance == 1.0:
        return unet(x, tt, **cond.kwargs())
    both = Condition.cat(cond, null)
    eps_c, eps_u = unet(torch.cat([x, x]), torch.cat([tt, tt]), **both.kwargs()).chunk(2)
    return eps_u + guidance * (eps_c - eps_u)


def check_sampling_args(guidance: float, strength: float, steps: int) -> None:
    if not guidance >= 0:
        raise InvalidParameterError(f"guidance must be >= 0 (1 = plain conditional, 0 = unconditional), got {guidance}")
    if not 0.0 <= strength <= 1.0:
        raise InvalidParameterError(f"strength must be in [0, 1] (how much of the init image to re-noise), "
                                    f"got {strength}")
    if steps < 1:
        raise InvalidParameterError(f"steps must be >= 1, got {steps}")


@torch.no_grad()
def sample(unet: UNet, scheduler: Scheduler, shape: tuple[int, ...], cond: Condition, null: Condition | None = None,
           *, guidance: float = 1.0, steps: int = 50, generator: torch.Generator | None = None,
           init: torch.Tensor | None = None, strength: float = 1.0, mask: torch.Tensor | None = None,
           resample: int = 1, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1].

    init (B, C, H, W): the image for SDEdit (with `strength`) or the known pixels for inpainting;
    mask (B, 1, H, W): 1 where to generate, 0 where to keep `init` (inpainting; strength is then 1).
    """
    check_sampling_args(guidance, strength, steps)
    weight = next(unet.parameters())
    device = weight.device
    # a channels-last network (faster convolutions on the CPU) gets channels-last inputs
    layout = torch.channels_last if len(shape) == 4 and getattr(unet, "channels_last", False) else \
        torch.contiguous_format
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.tolist()
    x = torch.randn(shape, generator=generator).to(device).contiguous(memory_format=layout)
    if init is not None and mask is None:
        keep = min(int(steps * strength), steps)  # diffusers' img2img: run the last `keep` steps
        timesteps = timesteps[steps - keep:]
        if not timesteps:
            return init.clone()
        x = scheduler.add_noise(init.to(device), x, torch.tensor(timesteps[0]))
    for i, t in enumerate(timesteps):
        s = scheduler.previous_timestep(t)
        rounds = resample if mask is not None and s >= 0 else 1
        for r in range(rounds):
            x_s = scheduler.step(guided_output(unet, x, t, cond, null, guidance), t, x, generator=generator)
            if mask is not None:
                noise = torch.randn(shape, generator=generator).to(device)
                known = scheduler.add_noise(init, noise, torch.tensor(s)) if s >= 0 else init
                x_s = mask * x_s + (1 - mask) * known
                if r < rounds - 1:  # jump back to t and redo the step
                    x = scheduler.renoise(x_s, s, t, generator)
                    continue
            x = x_s
        if progress is not None:
            progress(i + 1, len(timesteps))
    return x
