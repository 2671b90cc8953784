"""The converted-weights cache: a model already converted (e.g. a dequantized GGUF) kept as
safetensors in `$LUOXIA_HOME/weights/<source sha256>/`, so a second start skips the conversion.

Layout (versioned): `config.json` (our model config + where it came from), `model.safetensors`
(our parameter names, float32), `tokenizer.json` + `tokenizer_config.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from luoxia.core import atomic
from luoxia.core.paths import weights_cache_dir
from luoxia.text.formats.bundle import ModelBundle
from luoxia.text.formats.hf import read_tokenizer
from luoxia.text.model import TransformerConfig

CACHE_VERSION = 2  # 2: records the source tensor type


def cache_dir_for(sha256: str) -> Path:
    return weights_cache_dir() / sha256


def load_cached(sha256: str) -> ModelBundle | None:
    """The cached conversion of the source with this hash, or None when absent or unusable."""
    from safetensors.torch import load_file

    directory = cache_dir_for(sha256)
    try:
        meta = json.loads((directory / "config.json").read_text())
        if meta.get("luoxia_cache_version") != CACHE_VERSION:
            return None
        state_dict = load_file(directory / "model.safetensors")
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
