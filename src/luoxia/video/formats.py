"""The video model folder: `config.json` (versioned) + `model.safetensors` (the sampling network).

    {"format": "luoxia-video-model", "version": 1, "network": {...VideoUNetConfig...},
     "schedule": {...ScheduleConfig...}, "frames": 8, "image_size": 32, "fps": 8,
     "data": "moving-shapes", "motions": [...], "training": {...how it was trained...}}

The layout, the tensor storage (float32, float16, or int8 per output channel with float16 scales)
and the checks are the image model folder's (`luoxia.image.formats`); only the format name and the
network differ. Loading builds the network on the meta device first, so nothing is initialised twice.
"""

from __future__ import annotations

from pathlib import Path

import torch

from luoxia.image.formats import load_weights, read_folder_config, write_folder
from luoxia.video.model import VideoUNet, VideoUNetConfig

FORMAT = "luoxia-video-model"


def save_model(folder: Path, net: VideoUNet, config: dict, dtype: torch.dtype = torch.float32) -> Path:
    """Write config.json (with the network's config) and model.safetensors into `folder`, atomically."""
    return write_folder(folder, net, {**config, "network": net.config.to_dict()}, dtype, fmt=FORMAT)


def read_config(folder: Path) -> dict:
    return read_folder_config(folder, FORMAT, "a video model", "luoxia train video", "moving-shapes")


def load_model(folder: Path) -> tuple[VideoUNet, dict]:
    """(network in float32, eval mode; config) of a video model folder."""
    config = read_config(folder)
    with torch.device("meta"):
        net = VideoUNet(VideoUNetConfig(**config["network"]))
    return load_weights(folder, net), config
