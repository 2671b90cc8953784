"""Our UNet against diffusers' UNet2DModel with the same weights, and a whole DDIM loop against diffusers'."""

from __future__ import annotations

import pytest
import torch

from luoxia.image.diffusers_format import diffusers_config, from_diffusers, to_diffusers
from luoxia.image.unet import UNet, UNetConfig

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("cond", ["none", "class"])
@pytest.mark.parametrize("layout", [dict(channel_mults=(1, 2), layers=1, attn_resolutions=(8,)),
                                    dict(channel_mults=(1, 2, 2), layers=2, attn_resolutions=(16, 8))])
def test_unet_matches_unet2dmodel(cond, layout):
    torch.manual_seed(0)
    cfg = UNetConfig(image_size=16 if len(layout["channel_mults"]) == 2 else 32, channels=16, groups=8, head_dim=8,
                     cond=cond, num_classes=4, **layout)
    ours = UNet(cfg).eval()
    for p in ours.parameters():  # random everywhere (the output conv starts at zero otherwise)
        torch.nn.init.normal_(p, 0, 0.1)
    theirs = diffusers.UNet2DModel(**diffusers_config(cfg)).eval()
    theirs.load_state_dict(to_diffusers(ours.state_dict(), cfg))
    x, t = torch.randn(2, 3, cfg.image_size, cfg.image_size), torch.tensor([10, 700])
    labels = torch.tensor([1, 4]) if cond == "class" else None
    with torch.no_grad():
        a = ours(x, t, labels=labels)
        b = theirs(x, t, class_labels=labels).sample
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    back = from_diffusers(theirs.state_dict(), cfg)
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_ddim_sampling_loop_matches_diffusers_pipeline_math():
    from luoxia.image.diffusion import Condition, sample
    from luoxia.image.schedulers import DDIMScheduler, ScheduleConfig

    torch.manual_seed(0)
    cfg = UNetConfig(image_size=16, channels=16, channel_mults=(1, 2), layers=1, attn_resolutions=(8,), groups=8,
                     head_dim=8)
    ours = UNet(cfg).eval()
    for p in ours.parameters():
        torch.nn.init.normal_(p, 0, 0.05)
    theirs = diffusers.UNet2DModel(**diffusers_config(cfg)).eval()
    theirs.load_state_dict(to_diffusers(ours.state_dict(), cfg))
    schedule = dict(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing")
    x = sample(ours, DDIMScheduler(ScheduleConfig(**schedule)), (2, 3, 16, 16), Condition(), steps=10,
               generator=torch.Generator().manual_seed(3))
    ref = diffusers.DDIMScheduler(**schedule)
    ref.set_timesteps(10)
    y = torch.randn((2, 3, 16, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for t in ref.timesteps:
            y = ref.step(theirs(y, t).sample, t, y).prev_sample
    torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)
