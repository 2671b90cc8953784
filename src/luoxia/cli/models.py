"""`luoxia models`: the models the registry knows (embedded, trained by you, cached conversions)."""

from __future__ import annotations

import argparse
import dataclasses
import json


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("models", help="list the available models",
                            description="List the models luoxia can load by name, with their size and source.")
    p.add_argument("--json", dest="as_json", action="store_true", help="print the list as JSON")
    p.set_defaults(run=lambda args: models(as_json=args.as_json))


def models(*, as_json: bool) -> int:
    from luoxia.core.registry import list_models

    entries = list_models() + modality_models()
    if as_json:
        print(json.dumps([dataclasses.asdict(e) for e in entries], ensure_ascii=False, indent=2))
        return 0
    rows = [("NAME", "KIND", "SIZE", "DESCRIPTION / SOURCE")]
    for e in entries:
        about = f"{e.description} — {e.source}" if e.description and e.source else e.description or e.source
        rows.append((e.name, e.kind, human_size(e.size_bytes) if e.size_bytes else "-", about))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[3]]).rstrip())
    return 0


def modality_models() -> list:
    """The embedded image, music and video models (shipped inside their packages), as registry entries."""
    from luoxia.core.registry import ModelEntry
    from luoxia.image import pipeline as image
    from luoxia.music import pipeline as music
    from luoxia.video import pipeline as video

    trainers = {image: "scripts/train_image_defaults.py", music: "scripts/train_music_default.py",
                video: "scripts/train_video_default.py"}
    entries = []
    for module, trainer in trainers.items():
        for name, about in module.EMBEDDED.items():
            path = module.WEIGHTS / name / "model.safetensors"
            size = path.stat().st_size if path.is_file() else 0
            entries.append(ModelEntry(name, "embedded", size, str(path.parent) if size else f"missing: {trainer}",
                                      about))
    return entries


def human_size(n: int) -> str:
    """Bytes for people.

    >>> human_size(98362432)
    '93.8 MiB'
    """
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"
