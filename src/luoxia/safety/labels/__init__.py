"""AI-generated labels, written by `Artifact.save` and read back by `luoxia inspect`.

One module per file family; each has `write(path, content, provenance, options)` and
`read(path) -> Found`. The implicit label (`aigc`) is the same everywhere; where it goes differs:

| file | implicit label | visible label |
|---|---|---|
| .txt (any text) | sidecar FILE.aigc.json: {"AIGC": ..., provenance...} | notice at the end |
| .md | front matter lines `AIGC: {...}` and `provenance: {...}` | notice at the end |
| .png / .jpg / .webp | XMP: TC260:AIGC (+ IPTC DigitalSourceType); PNG in iTXt XML:com.adobe.xmp | corner text |
| .wav | RIFF chunk `AIGC` (provenance in chunk `lxpv`) | Morse "AI" cue |
| .mp3 | ID3 TXXX:AIGC (provenance in TXXX:luoxia_provenance) | Morse "AI" cue |
| .mid | meta text event {"AIGC": ...} in track 0 (provenance in a second one) | none (no visible form) |
| .mp4 | metadata key AIGC (-movflags use_metadata_tags) | corner text on the first 2 s |
| .gif / .webp (video) | GIF comment `AIGC=...`; animated WebP XMP TC260:AIGC | corner text on the first 2 s |
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from luoxia.core.errors import InvalidParameterError
from luoxia.safety.labels.visible import LabelOptions

__all__ = ["Found", "LabelOptions", "FORMATS", "format_for", "write", "read"]


@dataclasses.dataclass
class Found:
    """What a file holds: its label (None when missing), copies found, provenance, and the
    hash of its canonical content (what the label's signature covers)."""

    format: str
    label: dict | None
    copies: int
    provenance: dict | None
    payload_sha256: str
    visible: bool | None  # None: this format has no visible label to check
    notes: list[str] = dataclasses.field(default_factory=list)

    def take_label(self, labels: list, where: str, missing: str | None = None) -> None:
        """Parse the first of the label strings found in `where`, or note that there was none."""
        from luoxia.safety.labels import aigc

        if not labels:
            if missing:
                self.notes.append(missing)
            return
        try:
            self.label = aigc.parse(labels[0])
        except ValueError as e:
            self.notes.append(f"{where} is not a valid label ({e})")


# kind -> extension -> format name
FORMATS = {
    "text": {".md": "markdown", ".markdown": "markdown"},  # anything else: text + sidecar
    "image": {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"},
    "audio": {".wav": "wav", ".mp3": "mp3"},
    "midi": {".mid": "midi", ".midi": "midi"},
    "video": {".mp4": "mp4", ".gif": "gif", ".webp": "webp_anim"},
}


def format_for(kind: str, path: Path) -> str:
    ext = path.suffix.lower()
    if kind == "text":
        return FORMATS["text"].get(ext, "text")
    known = FORMATS.get(kind, {})
    if ext not in known:
        raise InvalidParameterError(f"cannot save {kind} as {path.name}: use one of the extensions "
                                    f"{', '.join(sorted(known))}")
    return known[ext]


def _module(fmt: str):
    from luoxia.safety.labels import audio, image, midi, text, video

    return {"text": text, "markdown": text, "png": image, "jpeg": image, "webp": image, "wav": audio,
            "mp3": audio, "midi": midi, "mp4": video, "gif": video, "webp_anim": video}[fmt]


def write(kind: str, path: Path, content: object, provenance, options: LabelOptions | None = None) -> Path:
    """Write `content` of `kind` to `path` with both labels; the format follows the extension."""
    options = (options or LabelOptions()).validate()
    fmt = format_for(kind, path)
    _module(fmt).write(path, fmt, content, provenance, options)
    return path


def sniff(path: Path) -> str:
    """The format of a file, from its first bytes (then its extension, for text)."""
    with open(path, "rb") as f:
        head = f.read(32)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":  # VP8X flag 0x02: an animation (a video artifact)
        return "webp_anim" if head[12:16] == b"VP8X" and len(head) > 20 and head[20] & 0x02 else "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head.startswith(b"MThd"):
        return "midi"
    if head[4:8] == b"ftyp":
        return "mp4"
    if path.suffix.lower() in (".md", ".markdown") or head.startswith(b"---\nAIGC: "):
        return "markdown"
    return "text"


def read(path: Path) -> Found:
    fmt = sniff(path)
    return _module(fmt).read(path, fmt)
