"""Fixtures for the video tests: a tiny random video model in the real folder format, small clips, a CLI runner."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from video_fixtures import tiny_video_net

from luoxia.image.schedulers import ScheduleConfig
from luoxia.video.formats import save_model


@pytest.fixture(autouse=True)
def _single_thread(one_torch_thread):
    """Every test here runs on one torch thread (see the root conftest)."""


@pytest.fixture(scope="session")
def tiny_video_model(tmp_path_factory) -> Path:
    net = tiny_video_net()
    with torch.no_grad():  # non-zero output and temporal projections, so inputs and other frames matter
        net.unet.conv_out.weight.normal_(0, 0.05)
        for block in net.temporal:
            block.proj.weight.normal_(0, 0.05)
    folder = tmp_path_factory.mktemp("tiny_video_model")
    schedule = dataclasses.asdict(ScheduleConfig(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing",
                                                 prediction_type="v_prediction"))
    return save_model(folder, net, {"schedule": schedule, "frames": 4, "image_size": 16, "fps": 4,
                                    "data": "test", "motions": ["right", "left"]})


@pytest.fixture(scope="session")
def tiny_video(tiny_video_model):
    from luoxia.video.pipeline import VideoModel

    return VideoModel.load(str(tiny_video_model))


@pytest.fixture(scope="session")
def tiny_image(tmp_path_factory):
    """A tiny random text-conditioned image diffusion model (16×16), sharing the process's MiniLM."""
    from luoxia.image.formats import save_model as save_image_model
    from luoxia.image.pipeline import ImageModel
    from luoxia.image.text_encoder import shared_text_encoder
    from luoxia.image.unet import PRESETS, UNet, UNetConfig

    torch.manual_seed(0)
    cfg = UNetConfig(**{**PRESETS["tiny"], "image_size": 16, "cond": "text"})
    net = UNet(cfg)
    with torch.no_grad():
        net.conv_out.weight.normal_(0, 0.05)
    folder = tmp_path_factory.mktemp("tiny_image_model")
    save_image_model(folder, net, {"kind": "ddpm", "network": cfg.to_dict(), "cond": "text", "class_names": None,
                                   "schedule": dataclasses.asdict(ScheduleConfig(timestep_spacing="trailing")),
                                   "image_size": 16, "channels": 3, "data": "test"})
    model = ImageModel.load(str(folder))
    model._text = shared_text_encoder()
    return model


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str

    def assert_user_error(self, *words: str) -> None:
        lines = self.err.splitlines()
        assert self.code == 2, self
        assert len(lines) == 1 and lines[0].startswith("luoxia: error: "), self.err
        for word in words:
            assert word in lines[0], (word, lines[0])
        assert "Traceback" not in self.err + self.out


@pytest.fixture
def luoxia_cli(capsys):
    from luoxia.cli.main import main

    def run(*argv) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run

