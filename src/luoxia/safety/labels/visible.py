"""The explicit (visible or audible) label, per modality.

- text: a notice with an AI element and a generation element ("AI生成 · AI-generated"), at the end;
- images and video frames: a corner text on a dark box whose text height is at least 5% of the
  shorter side (GB 45438 §4.2), in a configurable corner;
- audio: Morse "AI" (·− ··, "short-long-short-short") as a short tone at the start.

`LabelOptions` carries the choices; turning the visible label off takes `visible=False`, which is
recorded in the provenance (and so covered by the signature).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from luoxia.core.artifact import TEXT_NOTICE
from luoxia.core.errors import InvalidParameterError

IMAGE_TEXT = "AI-generated"
IMAGE_TEXT_CJK = "AI生成 AI-generated"
CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
MIN_HEIGHT_FRACTION = 0.05
VIDEO_LABEL_SECONDS = 2.0
# Fonts with CJK glyphs, tried in order; Pillow's own font has Latin only.
CJK_FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
             "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


@dataclasses.dataclass(frozen=True)
class LabelOptions:
    """How `Artifact.save` labels a file. `visible=False` is the only way to drop the visible label,
    and it is written into the file's provenance."""

    visible: bool = True
    position: str = "bottom-right"  # image / video corner
    height_fraction: float = 0.06  # text height / shorter side; at least 0.05
    producer: str = "luoxia"  # ContentProducer (printable ASCII)
    font: str | None = None  # a TrueType file; default: a CJK font when one is installed, else Pillow's
    cue_hz: float = 880.0  # audio cue tone
    cue_unit_s: float = 0.06  # Morse dot length

    def validate(self) -> LabelOptions:
        if self.position not in CORNERS:
            raise InvalidParameterError(f"label position {self.position!r} is not one of {', '.join(CORNERS)}")
        if not MIN_HEIGHT_FRACTION <= self.height_fraction <= 0.5:
            raise InvalidParameterError(f"label height_fraction must be in [0.05, 0.5], got {self.height_fraction}")
        if not (20 <= self.cue_hz <= 8000 and 0.01 <= self.cue_unit_s <= 0.5):
            raise InvalidParameterError("audio cue needs 20 <= cue_hz <= 8000 and 0.01 <= cue_unit_s <= 0.5")
        return self

    def record(self, kind: str) -> dict:
        """What the provenance says about the visible label of a `kind` artifact."""
        if not self.visible:
            return {"visible": False, "disabled_by": "LabelOptions(visible=False)"}
        if kind == "text":
            return {"visible": True, "text": TEXT_NOTICE, "where": "end"}
        if kind in ("image", "video"):
            out = {"visible": True, "text": _image_text(self)[0], "position": self.position,
                   "height_fraction": self.height_fraction}
            if kind == "video":
                out["seconds"] = VIDEO_LABEL_SECONDS
            return out
        if kind == "audio":
            return {"visible": True, "cue": "morse AI", "hz": self.cue_hz, "unit_s": self.cue_unit_s}
        return {"visible": None, "reason": f"{kind} has no visible form; the implicit label applies"}


# --- text ----------------------------------------------------------------------------------------


def has_text_notice(text: str) -> bool:
    """True when the text starts or ends with a notice holding an AI element and a generation element."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    ends = [lines[0], lines[-1]] if lines else []
    ai = ("AI", "人工智能")
    made = ("生成", "合成", "generated")
    return any(any(a in s for a in ai) and any(m in s.lower() for m in made) for s in ends)


# --- images --------------------------------------------------------------------------------------


def _image_text(options: LabelOptions) -> tuple[str, str | None]:
    if options.font:
        return IMAGE_TEXT_CJK, options.font
    for font in CJK_FONTS:
        if Path(font).exists():
            return IMAGE_TEXT_CJK, font
    return IMAGE_TEXT, None


def _font(path: str | None, size: int):
    from PIL import ImageFont

    if path is None:
        return ImageFont.load_default(size=size)
    try:
        return ImageFont.truetype(path, size)
    except OSError as e:
        raise InvalidParameterError(f"cannot load label font {path}: {e}; give a TrueType file") from None


def label_box(width: int, height: int, options: LabelOptions) -> tuple[int, int, int, int]:
    """Where the corner label goes: (x0, y0, x1, y1), the dark box around the text."""
    text, font_path = _image_text(options)
    target = max(8, math.ceil(options.height_fraction * min(width, height)))
    font = _font(font_path, target)
    left, top, right, bottom = font.getbbox(text)
    # Grow the font until the glyphs (not the line box) are at least `target` pixels high.
    size = target
    while bottom - top < target and size < 4 * target:
        size += 1
        font = _font(font_path, size)
        left, top, right, bottom = font.getbbox(text)
    pad = max(2, target // 4)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    x0 = width - w if options.position.endswith("right") else 0
    y0 = height - h if options.position.startswith("bottom") else 0
    return max(0, x0), max(0, y0), min(width, x0 + w), min(height, y0 + h)


def draw_image_label(image, options: LabelOptions):
    """A copy of the PIL image with the corner label drawn on it (white text on a dark box)."""
    from PIL import ImageDraw

    text, font_path = _image_text(options)
    out = image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image.copy()
    x0, y0, x1, y1 = label_box(out.width, out.height, options)
    target = max(8, math.ceil(options.height_fraction * min(out.width, out.height)))
    size = target
    font = _font(font_path, size)
    while (b := font.getbbox(text))[3] - b[1] < target and size < 4 * target:
        size += 1
        font = _font(font_path, size)
    left, top, _, _ = font.getbbox(text)
    pad = max(2, target // 4)
    draw = ImageDraw.Draw(out)
    draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=(0, 0, 0, 255) if out.mode == "RGBA" else (0, 0, 0))
    draw.text((x0 + pad - left, y0 + pad - top), text, font=font,
              fill=(255, 255, 255, 255) if out.mode == "RGBA" else (255, 255, 255))
    return out


def image_label_present(image, record: dict) -> bool:
    """The recorded corner box holds the dark box with light text (a legibility check, not OCR)."""
    options = LabelOptions(position=record.get("position", "bottom-right"),
                           height_fraction=record.get("height_fraction", 0.06))
    x0, y0, x1, y1 = label_box(image.width, image.height, options)
    box = np.asarray(image.convert("L").crop((x0, y0, x1, y1)), dtype=np.float32)
    return box.size > 0 and float((box < 64).mean()) > 0.4 and float((box > 160).mean()) > 0.03


# --- audio ---------------------------------------------------------------------------------------

MORSE_AI = ".- .."  # A = ·−, I = ··


def morse_cue(sample_rate: int, options: LabelOptions) -> np.ndarray:
    """Morse "AI" as a tone: dot = 1 unit, dash = 3, gaps 1 unit inside a letter and 3 between
    letters, then 3 units of silence before the content. Short fades avoid clicks."""
    unit = max(1, round(options.cue_unit_s * sample_rate))
    t = np.arange(3 * unit) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * options.cue_hz * t)
    fade = min(unit // 8, 64)
    if fade:
        ramp = np.linspace(0, 1, fade)
        tone[:fade] *= ramp
    pieces: list[np.ndarray] = []
    for i, letter in enumerate(MORSE_AI.split()):
        if i:
            pieces.append(np.zeros(3 * unit))
        for j, symbol in enumerate(letter):
            if j:
                pieces.append(np.zeros(unit))
            n = unit if symbol == "." else 3 * unit
            beep = tone[:n].copy()
            if fade:
                beep[-fade:] *= ramp[::-1]
            pieces.append(beep)
    pieces.append(np.zeros(3 * unit))
    return np.concatenate(pieces).astype(np.float32)


def morse_pattern(samples: np.ndarray, sample_rate: int, options: LabelOptions) -> str:
    """Read back the on/off pattern at the start of `samples` as Morse ("." and "-", letters split by " ")."""
    unit = max(1, round(options.cue_unit_s * sample_rate))
    n = len(morse_cue(sample_rate, options))
    head = np.abs(samples[:n]) if samples.ndim == 1 else np.abs(samples[:n]).max(axis=1)
    on = [float(head[i:i + unit // 2 + 1].max()) > 0.05 if i < len(head) else False
          for i in range(unit // 4, n, unit)]  # one probe per unit, a quarter unit in
    runs: list[tuple[bool, int]] = []
    for state in on:
        if runs and runs[-1][0] == state:
            runs[-1] = (state, runs[-1][1] + 1)
        else:
            runs.append((state, 1))
    out = ""
    for state, length in runs:
        if state:
            out += "." if length == 1 else "-"
        elif length >= 3 and out:
            out += " "
    return out.strip()
