"""From a model name or path to a ready `Transformer` and its tokenizer.

GGUF files are converted once and cached (see `formats.cache`); HF folders are read directly.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from luoxia.core import registry
from luoxia.core.errors import ModelNotFoundError
from luoxia.core.filehash import cached_sha256
from luoxia.text.formats import cache
from luoxia.text.formats.bundle import ModelBundle
from luoxia.text.model import Transformer


def load_bundle(name_or_path: str, use_cache: bool = True) -> tuple[ModelBundle, dict]:
    """The model's bundle and how it was loaded: {"from_cache": bool, "load_s": seconds}."""
    from luoxia.text.formats.gguf import load_gguf
    from luoxia.text.formats.hf import load_hf

    t0 = time.perf_counter()
    path = registry.resolve(name_or_path)
    if path.is_dir():
        bundle, from_cache = load_hf(path), False
    elif path.suffix.lower() == ".gguf" or _looks_like_gguf(path):
        sha = cached_sha256(path)
        bundle = cache.load_cached(sha) if use_cache else None
        from_cache = bundle is not None
        if bundle is None:
            bundle = load_gguf(path)
            if use_cache:
                with contextlib.suppress(OSError):  # a full or read-only cache only costs a conversion
                    cache.store(bundle)
        bundle.source = str(path.resolve())
    else:
        raise ModelNotFoundError(f"{path} is neither a .gguf file nor a Hugging Face model folder")
    if name_or_path in registry.EMBEDDED:
        bundle.name = name_or_path
    return bundle, {"from_cache": from_cache, "load_s": round(time.perf_counter() - t0, 3)}


def _looks_like_gguf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def build_model(bundle: ModelBundle, device: torch.device, dtype: torch.dtype) -> Transformer:
    """Instantiate without allocating (meta device), then adopt the loaded tensors."""
    with torch.device("meta"):
        model = Transformer(bundle.config)
    state_dict = dict(bundle.state_dict)
    if bundle.config.tie_embeddings:
        state_dict["output.weight"] = state_dict["tok_embeddings.weight"]
    model.load_state_dict(state_dict, assign=True, strict=True)
    if bundle.config.tie_embeddings:
        model.output.weight = model.tok_embeddings.weight
    return model.to(device=device, dtype=dtype).eval()
