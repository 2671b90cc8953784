"""Video editing and effects on uint8 frames (T, H, W, 3): each function takes a clip and returns a new one.

    trim(frames, fps, start=1.0, end=3.0)          seconds [start, end)
    concat([(a, fps_a), (b, fps_b)], crossfade=0.5)  joined at the first clip's fps and size, cross-faded
    resize(frames, 256, 144) / crop(frames, x, y, w, h)
    speed(frames, 2.0)                              twice as fast (every other frame), 0.5: each frame twice
    effect(frames, "sepia", strength=1.0)           grayscale, sepia, invert, posterize, warm, cool, blur, edges
    overlay_text(frames, fps, "Hello", start=0, end=2, position="bottom")
    restyle(frames, image_model, "a blue square", strength=0.5, smoothing=0.5)
                                                    image-to-image on every frame, one seed for all, then
                                                    temporal smoothing (exponential moving average)

Length changes are by whole frames; the fps stays the clip's (so `speed` changes the duration).
The CLI (`luoxia video-edit`) reads files with `luoxia.video.io.read_video` and writes through
`Artifact.save`, so every edited file is labelled.
"""

from __future__ import annotations

import numpy as np

from luoxia.core.errors import InvalidParameterError
from luoxia.video.io import check_clip, check_memory

EFFECTS = ("grayscale", "sepia", "invert", "posterize", "warm", "cool", "blur", "edges")
POSITIONS = ("top", "center", "bottom")


def trim(frames: np.ndarray, fps: float, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """The frames shown in [start, end) seconds."""
    frames, fps = check_clip(frames, fps)
    duration = len(frames) / fps
    end = duration if end is None else end
    if start < 0 or end <= start:
        raise InvalidParameterError(f"trim needs 0 <= start < end, got start {start} s and end {end} s")
    a, b = int(round(start * fps)), min(len(frames), int(round(end * fps)))
    if a >= len(frames) or b <= a:
        raise InvalidParameterError(f"trim [{start}, {end}) s holds no frames of a {duration:.2f} s clip")
    return frames[a:b].copy()


def resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise InvalidParameterError(f"resize needs a width and height in [1, 8192], got {width}×{height}")
    check_memory(len(frames), height, width, "the resized clip")
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.LANCZOS))
                     for f in frames])


def crop(frames: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    _, H, W, _ = frames.shape
    if x < 0 or y < 0 or width < 1 or height < 1 or x + width > W or y + height > H:
        raise InvalidParameterError(f"crop {width}×{height} at ({x}, {y}) does not fit in the {W}×{H} frames")
    return frames[:, y:y + height, x:x + width].copy()


def speed(frames: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times as fast at the same fps: frame i of the result is frame ⌊i·factor⌋."""
    if not 0.01 <= factor <= 100:
        raise InvalidParameterError(f"speed factor must be in [0.01, 100], got {factor}")
    n = max(1, int(round(len(frames) / factor)))
    check_memory(n, frames.shape[1], frames.shape[2], "the slowed-down clip")
    idx = np.minimum((np.arange(n) * factor).astype(np.int64), len(frames) - 1)
    return frames[idx].copy()


def _fit_to(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    return frames if frames.shape[1:3] == (height, width) else resize(frames, width, height)


def _retime(frames: np.ndarray, fps: float, target: float) -> np.ndarray:
    return frames if abs(fps - target) < 1e-6 else speed(frames, fps / target)


def concat(clips: list[tuple[np.ndarray, float]], crossfade: float = 0.0) -> tuple[np.ndarray, float]:
    """Clips one after another, at the first clip's fps and size; `crossfade` seconds of each join are a
    linear blend of the two clips (so the result is that much shorter per join)."""
    if not clips:
        raise InvalidParameterError("concat needs at least one clip")
    if crossfade < 0:
        raise InvalidParameterError(f"crossfade must be >= 0 seconds, got {crossfade}")
    first, fps = check_clip(*clips[0])
    _, H, W, _ = first.shape
    out = first.astype(np.float32)
    for frames, clip_fps in clips[1:]:
        frames, clip_fps = check_clip(frames, clip_fps)
        nxt = _retime(_fit_to(frames, H, W), clip_fps, fps).astype(np.float32)
        n = min(int(round(crossfade * fps)), len(out), len(nxt))
        if n:
            w = ((np.arange(n) + 1) / (n + 1))[:, None, None, None]  # weight of the incoming clip
            blend = (1 - w) * out[len(out) - n:] + w * nxt[:n]
            out = np.concatenate([out[:len(out) - n], blend, nxt[n:]])
        else:
            out = np.concatenate([out, nxt])
        check_memory(len(out), H, W, "the joined clip")
    return np.clip(np.round(out), 0, 255).astype(np.uint8), fps


def effect(frames: np.ndarray, name: str, strength: float = 1.0) -> np.ndarray:
    """A per-frame colour or style effect, blended with the original by `strength` ∈ [0, 1]."""
    from PIL import Image, ImageFilter

    if name not in EFFECTS:
        raise InvalidParameterError(f"unknown effect {name!r}; choose one of {', '.join(EFFECTS)}")
    if not 0 <= strength <= 1:
        raise InvalidParameterError(f"effect strength must be in [0, 1], got {strength}")
    x = frames.astype(np.float32)
    if name == "grayscale":
        y = np.repeat((x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, axis=-1)
    elif name == "sepia":
        m = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
        y = x @ m.T
    elif name == "invert":
        y = 255 - x
    elif name == "posterize":  # 4 levels per channel
        y = np.floor(x / 64) * 85
    elif name in ("warm", "cool"):
        shift = np.array([30, 10, -30] if name == "warm" else [-30, 0, 30], np.float32)
        y = x + shift
    else:
        blur = ImageFilter.GaussianBlur(radius=max(1, frames.shape[2] // 100))
        f = blur if name == "blur" else ImageFilter.FIND_EDGES
        y = np.stack([np.asarray(Image.fromarray(fr).filter(f)) for fr in frames]).astype(np.float32)
    out = (1 - strength) * x + strength * y
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def overlay_text(frames: np.ndarray, fps: float, text: str, start: float = 0.0, end: float | None = None,
                 position: str = "bottom", colour: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """`text` drawn on the frames shown in [start, end) seconds, on a dark band, centred horizontally."""
    from PIL import Image, ImageDraw, ImageFont

    if not text.strip():
        raise InvalidParameterError("the overlay text is empty")
    if position not in POSITIONS:
        raise InvalidParameterError(f"position must be one of {', '.join(POSITIONS)}, got {position!r}")
    _, H, W, _ = frames.shape
    end = len(frames) / fps if end is None else end
    a, b = max(0, int(round(start * fps))), min(len(frames), int(round(end * fps)))
    font = ImageFont.load_default(size=max(8, H // 12))
    out = frames.copy()
    for i in range(a, b):
        im = Image.fromarray(out[i])
        d = ImageDraw.Draw(im)
        x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
        tw, th = x1 - x0, y1 - y0
        x = (W - tw) // 2
        y = {"top": H // 20, "center": (H - th) // 2, "bottom": H - th - H // 20}[position]
        pad = max(2, th // 4)
        d.rectangle([x - pad, y - pad + y0, x + tw + pad, y + th + pad + y0], fill=(0, 0, 0))
        d.text((x - x0, y), text, font=font, fill=colour)
        out[i] = np.asarray(im)
    return out


def smooth(frames: np.ndarray, amount: float) -> np.ndarray:
    """Temporal smoothing: y_t = (1 − a) x_t + a y_{t−1}, an exponential moving average over frames."""
    if not 0 <= amount < 1:
        raise InvalidParameterError(f"smoothing must be in [0, 1), got {amount}")
    out = frames.astype(np.float32)
    for t in range(1, len(out)):
        out[t] = (1 - amount) * out[t] + amount * out[t - 1]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def restyle(frames: np.ndarray, model, prompt: str, *, strength: float = 0.5, smoothing: float = 0.5,
            steps: int = 25, guidance: float = 3.0, seed: int = 0) -> np.ndarray:
    """The image model's image-to-image (SDEdit) on every frame with one seed for all (so the same noise
    meets each frame), then temporal smoothing; the result has the image model's size."""
    if not 0 < strength <= 1:
        raise InvalidParameterError(f"strength must be in (0, 1], got {strength}")
    out = [model.generate(prompt, init=f, strength=strength, steps=steps, guidance=guidance, seed=seed).images[0]
           for f in frames]
    return smooth(np.stack(out), smoothing)
