"""Where luoxia keeps its files: `$LUOXIA_HOME`, default `~/.cache/luoxia`."""

from __future__ import annotations

import os
from pathlib import Path


def luoxia_home() -> Path:
    return Path(os.environ.get("LUOXIA_HOME") or Path.home() / ".cache" / "luoxia")


def weights_cache_dir() -> Path:
    """Converted weights (e.g. dequantized GGUF tensors as safetensors), keyed by source hash."""
    return luoxia_home() / "weights"


def trained_models_dir() -> Path:
    """Models trained by the user, one folder per short name."""
    return luoxia_home() / "models"
