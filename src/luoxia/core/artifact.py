"""Artifacts: generated content plus its provenance, and the one save path that labels it.

Every file luoxia writes with generated content goes through `Artifact.save`, so the labels are
there by construction: the explicit (visible or audible) label and the implicit GB 45438-2025
metadata, in the place each file type keeps it (see `luoxia.safety.labels`). All writes are atomic.

    Artifact("text", "Once upon a time", provenance).save("story.txt")   # + story.txt.aigc.json
    Artifact("image", pil_image_or_uint8_array, provenance).save("cat.png")
    Artifact("audio", Audio(samples, 22050), provenance).save("tune.wav")   # or .mp3
    Artifact("midi", midi_bytes_or_mido_file, provenance).save("tune.mid")
    Artifact("video", Video(frames, 12), provenance).save("clip.mp4")

The label writers live in `safety.labels`; `save` imports them when called (the one place where
core reaches up a layer, so that no other save path can exist).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from luoxia.core.provenance import Provenance

if TYPE_CHECKING:
    from luoxia.safety.labels import LabelOptions

Kind = Literal["text", "image", "audio", "midi", "video"]

TEXT_NOTICE = "[AI生成 · AI-generated · luoxia]"


@dataclasses.dataclass
class Audio:
    """Audio content: float samples in [-1, 1], shape (N,) or (N, channels), and the sample rate."""

    samples: object
    sample_rate: int


@dataclasses.dataclass
class Video:
    """Video content: uint8 RGB frames (T, H, W, 3) and frames per second."""

    frames: object
    fps: float


@dataclasses.dataclass
class Artifact:
    kind: Kind
    content: object
    provenance: Provenance

    def save(self, path: str | Path, label: LabelOptions | None = None) -> Path:
        """Write the content with both AI-generated labels; the file type follows the extension.

        `label` sets the visible label's corner, size, producer name and audio cue; only
        `LabelOptions(visible=False)` drops the visible label, and that choice is recorded.
        """
        from luoxia.safety import labels

        return labels.write(self.kind, Path(path), self.content, self.provenance, label)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".aigc.json")
