"""The converted-weights cache: a model already converted (e.g. a dequantized GGUF) kept as
safetensors in `$LUOXIA_HOME/weights/<source sha256>/`, so a second start skips the conversion.

Layout (versioned): `config.json` (our model config + where it came from), `model.safetensors`
(our parameter names, float32), `tokenizer.json` + `tokenizer_config.json`; and, once a quantized
model has been built, `model.<int4|int8|w8a8>.torch-<version>.safetensors`: its packed weights as
`text.quant` lays them out, so the next load skips quantizing (half a second and several hundred MB
of temporaries for SmolLM2-135M). The packing belongs to PyTorch's kernels, hence the version.

`map_weights` maps the float32 `model.safetensors` as NumPy arrays, for `text.head_start`, before torch loads.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from luoxia.core import atomic
from luoxia.core.paths import weights_cache_dir
from luoxia.text.formats.bundle import ModelBundle
from luoxia.text.formats.hf import read_tokenizer
from luoxia.text.model_config import TransformerConfig

if TYPE_CHECKING:
    import torch

CACHE_VERSION = 2  # 2: records the source tensor type


def cache_dir_for(sha256: str) -> Path:
    return weights_cache_dir() / sha256


def load_cached(sha256: str, weights: bool = True) -> ModelBundle | None:
    """The cached conversion of the source with this hash, or None when absent or unusable. Without
    `weights` the bundle's state_dict is empty (for a caller that has the quantized weights)."""
    from safetensors.torch import load_file

    directory = cache_dir_for(sha256)
    try:
        meta = json.loads((directory / "config.json").read_text())
        if meta.get("luoxia_cache_version") != CACHE_VERSION:
            return None
        state_dict = load_file(directory / "model.safetensors") if weights else {}
        tokenizer = read_tokenizer(directory)
    except Exception:  # a damaged cache entry is rebuilt, never fatal
        return None
    return ModelBundle(
        config=TransformerConfig.from_dict(meta["model"]), state_dict=state_dict, tokenizer=tokenizer,
        source=meta["source"], sha256=sha256, name=meta.get("name", ""),
        source_dtype=meta.get("source_dtype", "F32"),
    )


def store(bundle: ModelBundle) -> Path:
    """Write the bundle into the cache; the folder appears whole or not at all."""
    from safetensors.torch import save_file

    final = cache_dir_for(bundle.sha256)
    with atomic.atomic_dir(final) as tmp:
        tied = {"output.weight"} if bundle.config.tie_embeddings else set()
        tensors = {k: v.contiguous() for k, v in bundle.state_dict.items() if k not in tied}
        save_file(tensors, tmp / "model.safetensors")
        bundle.tokenizer.save(tmp)
        meta = {"luoxia_cache_version": CACHE_VERSION, "model": bundle.config.to_dict(),
                "source": bundle.source, "name": bundle.name, "source_dtype": bundle.source_dtype}
        atomic.write_text(tmp / "config.json", json.dumps(meta, indent=2))
    return final


def quantized_path(sha256: str, mode: str) -> Path:
    import torch

    from luoxia.text.quant import LAYOUT_VERSION

    return cache_dir_for(sha256) / f"model.{mode}.v{LAYOUT_VERSION}.torch-{torch.__version__}.safetensors"


def load_quantized(sha256: str, mode: str) -> dict[str, torch.Tensor] | None:
    """The packed weights of the source quantized as `mode`, or None when not cached (or damaged)."""
    try:
        return load_aligned(quantized_path(sha256, mode))
    except Exception:  # absent or damaged: quantize again
        return None


def load_aligned(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, copied out of it. safetensors aligns tensor data to 8 bytes only;
    PyTorch's packed int4/int8 kernels read with aligned vector loads on some paths (batched rows) and
    crash on the file's offsets. A copy puts every tensor on the allocator's 64-byte boundary."""
    from safetensors.torch import load_file

    return {name: t.clone() for name, t in load_file(path).items()}


def store_quantized(sha256: str, mode: str, state_dict: dict[str, torch.Tensor]) -> None:
    """Keep a quantized model's weights beside the float ones (written whole or not at all), and remove
    the same mode's files of older layouts under this torch (nothing loads them any more; a newer luoxia's
    stay, for an environment that shares the folder)."""
    import torch
    from safetensors.torch import save_file

    from luoxia.text.quant import LAYOUT_VERSION

    path = quantized_path(sha256, mode)
    if path.parent.is_dir():
        with atomic.atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in state_dict.items()}, tmp)
        for old in path.parent.glob(f"model.{mode}.v*.torch-{torch.__version__}.safetensors"):
            layout = old.name.removeprefix(f"model.{mode}.v").partition(".")[0]
            if layout.isdigit() and int(layout) < LAYOUT_VERSION:
                old.unlink(missing_ok=True)


def map_weights(path: Path) -> dict[str, np.ndarray]:
    """A float32 safetensors file (the cache's `model.safetensors`) as read-only NumPy arrays over one memory
    map of the file: its pages are the OS cache's, nothing is copied, and no torch is imported.

    The header is 8 bytes of little-endian length, then JSON: {name: {dtype, shape, data_offsets}}, the
    offsets counted from the end of the header."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {info['dtype']}, not F32")
        begin, end = info["data_offsets"]
        array = np.frombuffer(data, dtype=np.float32, count=(end - begin) // 4, offset=8 + header_len + begin)
        tensors[name] = array.reshape(info["shape"])
    return tensors
