"""The converted-weights cache: a model already converted (e.g. a dequantized GGUF) kept as
safetensors in `$LUOXIA_HOME/weights/<source sha256>/`, so a second start skips the conversion.

Layout (versioned): `config.json` (our model config + where it came from), `model.safetensors`
(our parameter names, float32), `tokenizer.json` + `tokenizer_config.json`; and, once a quantized
model has been built, `model.<int4|int8|w8a8>.torch-<version>.safetensors`: its packed weights as
`text.quant` lays them out, so the next load skips quantizing (half a second and several hundred MB
of temporaries for SmolLM2-135M). The packing belongs to PyTorch's kernels, hence the version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from luoxia.core import atomic
from luoxia.core.paths import weights_cache_dir
from luoxia.text.formats.bundle import ModelBundle
from luoxia.text.formats.hf import read_tokenizer
from luoxia.text.model import TransformerConfig

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

    return cache_dir_for(sha256) / f"model.{mode}.torch-{torch.__version__}.safetensors"


def load_quantized(sha256: str, mode: str) -> dict[str, torch.Tensor] | None:
    """The packed weights of the source quantized as `mode`, or None when not cached (or damaged)."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(quantized_path(sha256, mode))
    except Exception:  # absent or damaged: quantize again
        return None
    # safetensors aligns tensor data to 8 bytes only; PyTorch's packed int4/int8 kernels read with
    # aligned vector loads on some paths (batched rows) and crash on the file's offsets. A copy puts
    # every tensor on the allocator's 64-byte boundary.
    return {name: t.clone() for name, t in tensors.items()}


def store_quantized(sha256: str, mode: str, state_dict: dict[str, torch.Tensor]) -> None:
    """Keep a quantized model's weights beside the float ones (written whole or not at all)."""
    from safetensors.torch import save_file

    path = quantized_path(sha256, mode)
    if path.parent.is_dir():
        with atomic.atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in state_dict.items()}, tmp)
