"""The image model folder: `config.json` (versioned) + `model.safetensors` (the sampling network).

    {"format": "luoxia-image-model", "version": 1, "kind": "ddpm" | "vae" | "gan",
     "network": {...the network's config dataclass...}, "schedule": {...} (ddpm only),
     "cond": "text" | "class" | "none", "class_names": [...], "image_size": 32, "channels": 3,
     "data": "shapes", "training": {...how it was trained...}}

Tensors are stored as float32, float16, or int8 (weight matrices and kernels of more than 1,024
values, symmetric per output channel, with a float16 scale tensor `NAME.scale_int8`; the rest
float16), and loaded as float32. Loading builds the network from `network` on the meta device,
then assigns the tensors (no double initialisation).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from luoxia.core import atomic
from luoxia.core.errors import CorruptFileError, ModelNotFoundError

FORMAT = "luoxia-image-model"
VERSION = 1
KINDS = ("ddpm", "vae", "gan")
SCALE = ".scale_int8"


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel (dim 0): w ≈ q · scale[:, None, ...]."""
    flat = w.float().reshape(w.shape[0], -1)
    scale = (flat.abs().amax(dim=1) / 127).clamp(min=1e-12)
    q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(w.shape)
    return q.contiguous(), scale.to(torch.float16)


def dequantize(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in tensors.items():
        if k.endswith(SCALE):
            continue
        if v.dtype == torch.int8 and k + SCALE in tensors:
            scale = tensors[k + SCALE].float()
            v = v.float() * scale.view(-1, *([1] * (v.ndim - 1)))
        out[k] = v.float() if v.is_floating_point() else v
    return out


def build_network(kind: str, network: dict) -> torch.nn.Module:
    if kind == "ddpm":
        from luoxia.image.unet import UNet, UNetConfig

        return UNet(UNetConfig(**network))
    if kind == "vae":
        from luoxia.image.vae import VAE, VAEConfig

        return VAE(VAEConfig(**network))
    if kind == "gan":
        from luoxia.image.gan import GANConfig, Generator

        return Generator(GANConfig(**network))
    raise CorruptFileError(f"unknown image model kind {kind!r}; this luoxia knows {', '.join(KINDS)}")


def write_folder(folder: Path, net: torch.nn.Module, config: dict, dtype: torch.dtype, fmt: str = FORMAT) -> Path:
    """config.json (`fmt`, VERSION, `config`, dtype) + model.safetensors of `net`, each file atomically.

    Shared by every model folder of this layout (image models here, video models in `luoxia.video.formats`).
    """
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
        save_file(tensors, tmp, metadata={"format": fmt})
    config = {"format": fmt, "version": VERSION, **config, "dtype": str(dtype).removeprefix("torch.")}
    atomic.write_text(folder / "config.json", json.dumps(config, indent=1))
    return folder


def read_folder_config(folder: Path, fmt: str, what: str, trainer: str, shipped: str) -> dict:
    """config.json of a `fmt` model folder, checked; `what`, `trainer` and `shipped` word the errors."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{folder} is not {what} folder (no config.json); give a folder written "
                                 f"by `{trainer}`, or {shipped}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorruptFileError(f"{path} cannot be read as JSON ({e}); retrain or restore the file") from None
    if config.get("format") != fmt:
        raise CorruptFileError(f"{path} is not a luoxia {what.split(' ', 1)[1]} (format {config.get('format')!r}); "
                               f"give a folder written by `{trainer}`")
    if config.get("version") != VERSION:
        raise CorruptFileError(f"{path} has version {config.get('version')!r}, this luoxia reads {VERSION}; "
                               "retrain the model with this version")
    return config


def load_weights(folder: Path, net: torch.nn.Module) -> torch.nn.Module:
    """Assign the folder's tensors (dequantized to float32) to `net`, built on the meta device; eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = dequantize(load_file(Path(folder) / "model.safetensors"))
    except (OSError, SafetensorError) as e:
        raise CorruptFileError(f"{folder}/model.safetensors cannot be read ({e}); retrain or restore it") from None
    try:
        net.load_state_dict(tensors, assign=True)
    except RuntimeError as e:
        raise CorruptFileError(f"{folder}/model.safetensors does not fit its config.json ({str(e)[:200]}); "
                               "retrain the model") from None
    return net.eval()


def save_model(folder: Path, net: torch.nn.Module, config: dict, dtype: torch.dtype = torch.float32) -> Path:
    """Write config.json and model.safetensors into `folder` (each file atomically)."""
    return write_folder(folder, net, config, dtype)


def read_config(folder: Path) -> dict:
    return read_folder_config(folder, FORMAT, "an image model", "luoxia train image", "shapes / digits")


def load_model(folder: Path) -> tuple[torch.nn.Module, dict]:
    """(network in float32, eval mode; config) of a model folder."""
    config = read_config(folder)
    with torch.device("meta"):
        net = build_network(config["kind"], config["network"])
    return load_weights(folder, net), config
