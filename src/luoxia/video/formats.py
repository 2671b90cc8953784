"""The video model folder: `config.json` (versioned) + `model.safetensors` (the sampling network).

    {"format": "luoxia-video-model", "version": 1, "network": {...VideoUNetConfig...},
     "schedule": {...ScheduleConfig...}, "frames": 8, "image_size": 32, "fps": 8,
     "data": "moving-shapes", "motions": [...], "training": {...how it was trained...}}

Tensors are stored as the image model folders store them (`luoxia.image.formats`: float32,
float16, or int8 per output channel with float16 scales) and loaded as float32 onto the meta
device first, so nothing is initialised twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from luoxia.core import atomic
from luoxia.core.errors import CorruptFileError, ModelNotFoundError
from luoxia.image.formats import SCALE, dequantize, quantize_int8
from luoxia.video.model import VideoUNet, VideoUNetConfig

FORMAT = "luoxia-video-model"
VERSION = 1


def save_model(folder: Path, net: VideoUNet, config: dict, dtype: torch.dtype = torch.float32) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in net.state_dict().items():
        v = v.detach().cpu()
        if dtype == torch.int8 and v.is_floating_point() and v.ndim >= 2 and v.numel() > 1024:
            tensors[k], tensors[k + SCALE] = quantize_int8(v)
        elif v.is_floating_point():
            tensors[k] = v.to(torch.float16 if dtype == torch.int8 else dtype).contiguous()
        else:
            tensors[k] = v.contiguous()
    with atomic.atomic_path(folder / "model.safetensors") as tmp:
        save_file(tensors, tmp, metadata={"format": FORMAT})
    config = {"format": FORMAT, "version": VERSION, **config, "network": net.config.to_dict(),
              "dtype": str(dtype).removeprefix("torch.")}
    atomic.write_text(folder / "config.json", json.dumps(config, indent=1))
    return folder


def read_config(folder: Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{folder} is not a video model folder (no config.json); give a folder written by "
                                 "`luoxia train video`, or moving-shapes")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorruptFileError(f"{path} cannot be read as JSON ({e}); retrain or restore the file") from None
    if config.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is not a luoxia video model (format {config.get('format')!r}); give a folder "
                               "written by `luoxia train video`")
    if config.get("version") != VERSION:
        raise CorruptFileError(f"{path} has version {config.get('version')!r}, this luoxia reads {VERSION}; retrain")
    return config


def load_model(folder: Path) -> tuple[VideoUNet, dict]:
    """(network in float32, eval mode; config) of a video model folder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = read_config(folder)
    with torch.device("meta"):
        net = VideoUNet(VideoUNetConfig(**config["network"]))
    try:
        tensors = dequantize(load_file(Path(folder) / "model.safetensors"))
    except (OSError, SafetensorError) as e:
        raise CorruptFileError(f"{folder}/model.safetensors cannot be read ({e}); retrain or restore it") from None
    try:
        net.load_state_dict(tensors, assign=True)
    except RuntimeError as e:
        raise CorruptFileError(f"{folder}/model.safetensors does not fit its config.json ({str(e)[:200]}); "
                               "retrain the model") from None
    return net.eval(), config
