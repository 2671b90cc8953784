"""Fixtures for the image tests: tiny random models saved in the real model-folder format."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from luoxia.image.formats import save_model
from luoxia.image.schedulers import ScheduleConfig
from luoxia.image.unet import PRESETS, UNet, UNetConfig


def make_unet_folder(folder: Path, cond: str, channels: int = 3, class_names=None, **overrides) -> Path:
    torch.manual_seed(0)
    cfg = UNetConfig(**{**PRESETS["tiny"], "in_channels": channels, "cond": cond, **overrides})
    net = UNet(cfg)
    with torch.no_grad():  # a non-zero output layer, so the network's input matters
        net.conv_out.weight.normal_(0, 0.05)
    save_model(folder, net, {"kind": "ddpm", "network": cfg.to_dict(),
                             "schedule": dataclasses.asdict(ScheduleConfig(beta_schedule="squaredcos_cap_v2",
                                                                           timestep_spacing="trailing")),
                             "cond": cond, "class_names": class_names, "image_size": cfg.image_size,
                             "channels": channels, "data": "test"})
    return folder


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory) -> Path:
    return make_unet_folder(tmp_path_factory.mktemp("tiny_text_ddpm"), "text")


@pytest.fixture(scope="session")
def tiny_class_model(tmp_path_factory) -> Path:
    return make_unet_folder(tmp_path_factory.mktemp("tiny_class_ddpm"), "class", channels=1,
                            class_names=[str(i) for i in range(10)], num_classes=10)


@pytest.fixture(autouse=True)
def _single_thread(one_torch_thread):
    """Every test here runs on one torch thread (see the root conftest)."""
