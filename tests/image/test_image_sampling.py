"""The sampling loop with an oracle network (it knows the clean image): every path must end at that image."""

from __future__ import annotations

import pytest
import torch

from luoxia.image.diffusion import Condition, sample
from luoxia.image.schedulers import DDIMScheduler, DDPMScheduler, ScheduleConfig


class Oracle(torch.nn.Module):
    """The perfect denoiser of a one-image data set {x_0}: ε = (x_t − √ᾱ_t x_0) / √(1 − ᾱ_t), or v from it."""

    def __init__(self, x0: torch.Tensor, alphas_cumprod: torch.Tensor, prediction: str = "epsilon"):
        super().__init__()
        self.x0, self.a, self.prediction = x0, alphas_cumprod, prediction
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t, **_):
        a = self.a[t].view(-1, 1, 1, 1)
        eps = (x - a.sqrt() * self.x0) / (1 - a).sqrt()
        return eps if self.prediction == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * self.x0


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("kind,steps", [("ddim", 10), ("ddim", 50), ("ddpm", 20), ("ddpm", 1000)])
def test_oracle_sampling_recovers_the_image(kind, steps, prediction):
    cfg = ScheduleConfig(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing", prediction_type=prediction)
    scheduler = DDIMScheduler(cfg) if kind == "ddim" else DDPMScheduler(cfg)
    x0 = torch.rand(1, 3, 8, 8) * 2 - 1
    out = sample(Oracle(x0, scheduler.alphas_cumprod, prediction), scheduler, (3, 3, 8, 8), Condition(), steps=steps,
                 generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0.expand(3, -1, -1, -1), rtol=0, atol=2e-3)


def test_oracle_img2img_and_inpainting():
    cfg = ScheduleConfig(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing", prediction_type="v_prediction")
    scheduler = DDIMScheduler(cfg)
    target, other = torch.rand(2, 1, 3, 8, 8).unbind(0)
    oracle = Oracle(target * 2 - 1, scheduler.alphas_cumprod, "v_prediction")
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
