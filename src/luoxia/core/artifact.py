"""Artifacts: generated content plus its provenance, and the one save path that labels it.

Every file luoxia writes with generated content goes through `Artifact.save`, so the labels are
there by construction. For text this writes the content with a visible AI-generated notice and a
machine-readable provenance sidecar (`FILE.aigc.json`) next to it; both writes are atomic.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

from luoxia.core import atomic
from luoxia.core.provenance import Provenance

Kind = Literal["text", "image", "audio", "midi", "video"]

TEXT_NOTICE = "[AI生成 · AI-generated · luoxia]"


@dataclasses.dataclass
class Artifact:
    kind: Kind
    content: object
    provenance: Provenance

    def save(self, path: str | Path) -> Path:
        """Write the content with its visible notice and its provenance sidecar; return the path."""
        path = Path(path)
        if self.kind != "text":
            raise NotImplementedError(f"saving {self.kind} artifacts is not implemented yet")
        body = f"{self.content}\n\n{TEXT_NOTICE}\n".encode()
        provenance = self.provenance.with_content(body)
        atomic.write_bytes(path, body)
        atomic.write_text(sidecar_path(path), json.dumps(provenance.to_dict(), ensure_ascii=False, indent=2))
        return path


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".aigc.json")
