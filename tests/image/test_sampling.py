"""The sampling loop with an oracle network (it knows the clean image): every path must end at that image."""

from __future__ import annotations

import pytest
import torch

from luoxia.image.diffusion import Condition, sample
from luoxia.image.schedulers import DDIMScheduler, DDPMScheduler, ScheduleConfig


class Oracle(torch.nn.Module):
    """ε(x_t, t) = (x_t − √ᾱ_t x_0) / √(1 − ᾱ_t) for a known x_0: the perfect denoiser of a one-image data set."""

    def __init__(self, x0: torch.Tensor, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.x0, self.a = x0, alphas_cumprod
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t, **_):
        a = self.a[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * self.x0) / (1 - a).sqrt()


@pytest.mark.parametrize("kind,steps", [("ddim", 10), ("ddim", 50), ("ddpm", 20), ("ddpm", 1000)])
def test_oracle_sampling_recovers_the_image(kind, steps):
    cfg = ScheduleConfig(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing")
    scheduler = DDIMScheduler(cfg) if kind == "ddim" else DDPMScheduler(cfg)
    x0 = torch.rand(1, 3, 8, 8) * 2 - 1
    out = sample(Oracle(x0, scheduler.alphas_cumprod), scheduler, (3, 3, 8, 8), Condition(), steps=steps,
                 generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0.expand(3, -1, -1, -1), rtol=0, atol=2e-3)


def test_oracle_img2img_and_inpainting():
    cfg = ScheduleConfig(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing")
    scheduler = DDIMScheduler(cfg)
    target, other = torch.rand(2, 1, 3, 8, 8).unbind(0)
    oracle = Oracle(target * 2 - 1, scheduler.alphas_cumprod)
    init = other * 2 - 1
    # SDEdit: strength 0 keeps the init image, strength 1 ends at the oracle's image
    kept = sample(oracle, scheduler, (1, 3, 8, 8), Condition(), steps=20, init=init, strength=0.0)
    assert torch.equal(kept, init)
    full = sample(oracle, scheduler, (1, 3, 8, 8), Condition(), steps=20, init=init, strength=1.0,
                  generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(full, oracle.x0, rtol=0, atol=2e-3)
    # inpainting: the masked half comes from the oracle, the rest stays the init image exactly
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:] = 1
    filled = sample(oracle, scheduler, (1, 3, 8, 8), Condition(), steps=20, init=init, mask=mask, resample=3,
                    generator=torch.Generator().manual_seed(2))
    assert torch.equal(filled[..., :4], init[..., :4])
    torch.testing.assert_close(filled[..., 4:], oracle.x0[..., 4:], rtol=0, atol=2e-3)
