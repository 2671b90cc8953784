"""DDPM and DDIM schedulers against diffusers on the same betas and inputs."""

from __future__ import annotations

import pytest
import torch

from luoxia.core.errors import InvalidParameterError
from luoxia.image.schedulers import DDIMScheduler, DDPMScheduler, ScheduleConfig

diffusers = pytest.importorskip("diffusers")

CONFIGS = [
    dict(beta_schedule="linear"),
    dict(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing"),
    dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, timestep_spacing="linspace"),
    dict(beta_schedule="linear", timestep_spacing="leading", steps_offset=1, clip_sample=False),
    dict(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing", prediction_type="v_prediction"),
]


def _pair(kind: str, cfg: dict, eta: float = 0.0, clipped: bool = False):
    if kind == "ddpm":
        return DDPMScheduler(ScheduleConfig(**cfg)), diffusers.DDPMScheduler(**cfg)
    return DDIMScheduler(ScheduleConfig(**cfg), eta=eta, use_clipped_model_output=clipped), \
        diffusers.DDIMScheduler(**cfg)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_betas_timesteps_and_add_noise(cfg):
    ours, ref = _pair("ddim", cfg)
    torch.testing.assert_close(ours.betas, ref.betas)
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod)
    for n in (1, 7, 50, 1000):
        ours.set_timesteps(n)
        ref.set_timesteps(n)
        assert torch.equal(ours.timesteps, ref.timesteps), n
    x0, noise = torch.randn(2, 4, 3, 3, 3).unbind(0)
    t = torch.tensor([0, 999, 500, 37])
    torch.testing.assert_close(ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t))
    torch.testing.assert_close(ours.velocity(x0, noise, t), ref.get_velocity(x0, noise, t))


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("kind,eta,steps,clipped", [("ddpm", 0.0, 1000, False), ("ddpm", 0.0, 20, False),
                                                    ("ddim", 0.0, 20, False), ("ddim", 1.0, 10, False),
                                                    ("ddim", 0.5, 7, False), ("ddim", 0.0, 12, True)])
def test_sampling_loop_matches_diffusers(cfg, kind, eta, steps, clipped):
    if steps == 1000 and cfg.get("steps_offset"):
        pytest.skip("leading spacing with an offset visits t = T, outside the schedule (in diffusers too)")
    ours, ref = _pair(kind, cfg, eta, clipped)
    ours.set_timesteps(steps)
    ref.set_timesteps(steps)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    x_ref = x.clone()
    g_ours, g_ref = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    visited = ours.timesteps if steps <= 50 else ours.timesteps[::25].tolist() + [1, 0]  # keep it fast
    for t in visited:
        eps = torch.sin(x * 3 + int(t) / 100)  # a fixed "model" of both inputs
        eps_ref = torch.sin(x_ref * 3 + int(t) / 100)
        x = ours.step(eps, int(t), x, generator=g_ours)
        kwargs = {"eta": eta, "use_clipped_model_output": clipped} if kind == "ddim" else {}
        x_ref = ref.step(eps_ref, int(t), x_ref, generator=g_ref, **kwargs).prev_sample
        torch.testing.assert_close(x, x_ref, rtol=1e-5, atol=1e-5)


def test_bad_parameters():
    with pytest.raises(InvalidParameterError, match="steps"):
        DDIMScheduler().set_timesteps(0)
    with pytest.raises(InvalidParameterError, match="beta_schedule"):
        ScheduleConfig(beta_schedule="cosine-ish")
    with pytest.raises(InvalidParameterError, match="eta"):
        DDIMScheduler(eta=-1)
