"""The cheap paths to a clip: latent interpolation with an image model, and blending between two frames.

    morph_prompts(image_model, "a red circle on the left", "a red circle on the right", frames=16)
        one starting noise for every frame, the text condition moved linearly from prompt A to
        prompt B (token states, mask and pooled vector), deterministic DDIM: frame k is the image
        model's picture of "k/(T−1) of the way from A to B"
    morph_images(image_model, a, b, frames=16, strength=0.7)
        both images noised to the same level with the same noise (SDEdit), the noisy latents
        blended linearly (x_t(a) and x_t(b) differ by √ᾱ_t (a − b), so this is a straight path in
        the diffusion latent), each point denoised under the optional prompt
    blend_frames(a, b, frames=8)
        frame interpolation without a model: a linear cross-dissolve, any size

The video model's own frame interpolation (`VideoModel.between`) fills the frames between two
given ones with motion; these work with any image model, at the image model's size.
"""

from __future__ import annotations

import numpy as np
import torch

from luoxia.core.errors import InvalidParameterError
from luoxia.image.diffusion import Condition, check_sampling_args, guided_output
from luoxia.image.text_encoder import TextBatch


def _check(model, frames: int, steps: int, guidance: float) -> None:
    if getattr(model, "kind", None) != "ddpm" or getattr(model, "cond", None) != "text":
        raise InvalidParameterError(f"latent interpolation needs a text-conditioned diffusion image model; "
                                    f"{model.name} is a {model.kind} ({model.cond})")
    if not 2 <= frames <= 256:
        raise InvalidParameterError(f"frames must be in [2, 256], got {frames}")
    check_sampling_args(guidance, 1.0, steps)


def lerp_text(a: TextBatch, b: TextBatch, weights: torch.Tensor) -> TextBatch:
    """(1 − w) a + w b for each weight: tokens padded to one length, masks joined, pooled re-normalised."""
    both = TextBatch.cat([a, b])
    w = weights[:, None, None]
    tokens = (1 - w) * both.tokens[:1] + w * both.tokens[1:]
    mask = (both.mask[:1] | both.mask[1:]).expand(len(weights), -1)
    pooled = torch.nn.functional.normalize((1 - weights[:, None]) * a.pooled + weights[:, None] * b.pooled, dim=-1)
    return TextBatch(tokens, mask, pooled)


@torch.no_grad()
def _denoise(model, x: torch.Tensor, cond: Condition, timesteps: list[int], scheduler, guidance: float) -> np.ndarray:
    from luoxia.image.datasets import to_uint8

    null = Condition(text=model.text.encode([""] * x.shape[0]))
    for t in timesteps:
        x = scheduler.step(guided_output(model.net, x, t, cond, null, guidance), t, x)
    return to_uint8(x)


def morph_prompts(model, prompt_a: str, prompt_b: str, *, frames: int = 16, steps: int = 50, guidance: float = 3.0,
                  seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3): the image model's pictures along the straight path from prompt A to prompt B."""
    from luoxia.image.schedulers import ScheduleConfig, make_sampler

    _check(model, frames, steps, guidance)
    w = torch.linspace(0, 1, frames)
    cond = Condition(text=lerp_text(model.text.encode([prompt_a]), model.text.encode([prompt_b]), w))
    scheduler = make_sampler("ddim", ScheduleConfig(**model.config["schedule"]))
    scheduler.set_timesteps(steps)
    noise = torch.randn((1, model.channels, model.size, model.size), generator=torch.Generator().manual_seed(seed))
    return _denoise(model, noise.expand(frames, -1, -1, -1).contiguous(), cond, scheduler.timesteps.tolist(),
                    scheduler, guidance)


def morph_images(model, a, b, *, frames: int = 16, prompt: str = "", strength: float = 0.7, steps: int = 50,
                 guidance: float = 3.0, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3): from image a to image b through the diffusion latent at `strength`."""
    from luoxia.image.schedulers import ScheduleConfig, make_sampler

    _check(model, frames, steps, guidance)
    if not 0 < strength <= 1:
        raise InvalidParameterError(f"strength must be in (0, 1], got {strength}")
    xa = model._image_tensor(a, "image A", "RGB")
    xb = model._image_tensor(b, "image B", "RGB")
    scheduler = make_sampler("ddim", ScheduleConfig(**model.config["schedule"]))
    scheduler.set_timesteps(steps)
    keep = max(1, int(steps * strength))
    timesteps = scheduler.timesteps.tolist()[steps - keep:]
    noise = torch.randn(xa.shape, generator=torch.Generator().manual_seed(seed))
    w = torch.linspace(0, 1, frames)[:, None, None, None]
    t0 = torch.tensor(timesteps[0])
    x = (1 - w) * scheduler.add_noise(xa, noise, t0) + w * scheduler.add_noise(xb, noise, t0)  # (T, C, H, W)
    cond = Condition(text=model.text.encode([prompt] * frames))
    return _denoise(model, x, cond, timesteps, scheduler, guidance if prompt else 1.0)


def blend_frames(a: np.ndarray, b: np.ndarray, frames: int = 8) -> np.ndarray:
    """uint8 (T, H, W, 3): a linear cross-dissolve from frame a to frame b (same size), both ends included."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise InvalidParameterError(f"the two frames must be RGB images of one size; got {a.shape} and {b.shape}")
    if not 2 <= frames <= 1024:
        raise InvalidParameterError(f"frames must be in [2, 1024], got {frames}")
    w = np.linspace(0, 1, frames, dtype=np.float32)[:, None, None, None]
    return np.round((1 - w) * a.astype(np.float32) + w * b.astype(np.float32)).astype(np.uint8)
