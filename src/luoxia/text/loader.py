"""From a model name or path to a ready `Transformer` and its tokenizer.

GGUF files are converted once and cached (see `formats.cache`); HF folders are read directly.
Quantized models are cached too, so a second load skips quantizing.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from luoxia.core import registry
from luoxia.core.device import pick_dtype
from luoxia.core.errors import InvalidParameterError, ModelNotFoundError
from luoxia.core.filehash import cached_sha256
from luoxia.text.formats import cache
from luoxia.text.formats.bundle import ModelBundle
from luoxia.text.model import Transformer
from luoxia.text.quant import calibration_ids, choose_quant, quantize


def load_bundle(name_or_path: str, use_cache: bool = True, weights: bool = True) -> tuple[ModelBundle, dict]:
    """The model's bundle and how it was loaded: {"from_cache": bool, "load_s": seconds}. Without
    `weights`, a bundle from the cache comes without its float weights (state_dict empty)."""
    from luoxia.text.formats.gguf import load_gguf
    from luoxia.text.formats.hf import load_hf

    t0 = time.perf_counter()
    path = registry.resolve(name_or_path)
    if path.is_dir():
        bundle, from_cache = load_hf(path), False
    elif path.suffix.lower() == ".gguf" or _looks_like_gguf(path):
        sha = cached_sha256(path)
        bundle = cache.load_cached(sha, weights=weights) if use_cache else None
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


def load_model(name_or_path: str, device: torch.device, dtype: str | None, quant: str | None,
               use_cache: bool = True, compile: bool = False) -> tuple[Transformer, ModelBundle, dict]:
    """The ready model, quantized as `quant` asks (see `text.quant.choose_quant`), its bundle (tokenizer
    and names; the model owns the weights) and how it was loaded ({"from_cache", "quant", ...})."""
    # Float weights are skipped when a quantized copy may serve instead (read again below if not).
    bundle, info = load_bundle(name_or_path, use_cache=use_cache, weights=quant == "none")
    mode = choose_quant(quant, bundle.source_dtype, device, compile)
    computes = "float32" if mode == "w8a8" else "bfloat16"
    if mode != "none" and dtype not in (None, "auto", computes):
        raise InvalidParameterError(f"--quant {mode} computes in {computes}; drop --dtype {dtype} or use --quant none")
    packed = cache.load_quantized(bundle.sha256, mode) if use_cache and mode != "none" else None
    model = None
    if packed is not None:
        with torch.device("meta"):
            model = quantize(Transformer(bundle.config), mode, empty=True)
        try:
            model.load_state_dict(packed, assign=True, strict=True)
            model.eval()
        except RuntimeError:  # names or shapes of another layout: quantize again and replace the file
            model = None
    if model is None:
        if not bundle.state_dict:  # the float weights were cached, the quantized ones not yet
            bundle, info = load_bundle(name_or_path, use_cache=use_cache)
        model = build_model(bundle, device, pick_dtype(dtype, device) if mode == "none" else torch.float32)
        quantize(model, mode, calibration=calibration_ids(bundle.tokenizer) if mode in ("w8a8", "int4") else None)
        if use_cache and mode != "none":
            with contextlib.suppress(OSError):  # a full or read-only cache only costs quantizing next time
                cache.store_quantized(bundle.sha256, mode, model.state_dict())
    bundle.state_dict = {}  # the model owns the tensors now
    info["quant"] = mode
    return model, bundle, info
