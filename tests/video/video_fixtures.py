"""Helpers of the video tests (imported by name: tests/video is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import numpy as np
import torch

from luoxia.image.unet import PRESETS
from luoxia.video.model import VideoUNet, VideoUNetConfig


def tiny_video_net(seed: int = 0, frames: int = 4) -> VideoUNet:
    torch.manual_seed(seed)
    return VideoUNet(VideoUNetConfig(unet={**PRESETS["tiny"], "image_size": 16, "cond": "text"}, frames=frames))


def gradient_clip(frames: int = 6, height: int = 16, width: int = 24) -> np.ndarray:
    """uint8 (T, H, W, 3) where frame t is filled with the value 20·t (so frames can be told apart)."""
    clip = np.zeros((frames, height, width, 3), np.uint8)
    for t in range(frames):
        clip[t] = 20 * t
    return clip
