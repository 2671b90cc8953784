"""Reading videos into uint8 frames (T, H, W, 3), with one-line errors for what a user can get wrong.

    frames, fps = read_video("clip.mp4")                    # any format the bundled ffmpeg reads
    frames, fps = read_video("anim.gif", max_frames=64)     # GIF / animated WebP through Pillow
    check_clip(frames, fps)                                 # uint8 (T, H, W, 3), T ≥ 1, fps > 0, fits

MP4, MOV, MKV, WebM, AVI ... are decoded by the ffmpeg binary of `imageio-ffmpeg` (piped raw
RGB, never a temporary file). Writing goes through `Artifact("video", Video(frames, fps), ...)`
so every file is labelled (`luoxia.safety.labels.video`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from luoxia.core.errors import CorruptFileError, ImageTooLargeError, InvalidParameterError, UserFileError

MAX_VIDEO_BYTES = 2 << 30  # decoded RGB frames held in memory at most (2 GiB)
PILLOW_SUFFIXES = {".gif", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".gif", ".webp"}


class ClipTooLongError(ImageTooLargeError):
    """A clip whose decoded frames would not fit in memory."""


def check_fps(fps: float) -> float:
    if not fps > 0 or fps != fps or fps > 1000:
        raise InvalidParameterError(f"fps must be > 0 (and at most 1000), got {fps}")
    return float(fps)


def check_clip(frames: np.ndarray, fps: float, what: str = "the clip") -> tuple[np.ndarray, float]:
    """The frames as uint8 (T, H, W, 3), checked; fps checked."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise InvalidParameterError(f"{what} must be uint8 frames (T, H, W, 3); got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise InvalidParameterError(f"{what} has zero frames; give at least one")
    check_memory(len(frames), frames.shape[1], frames.shape[2], what)
    return frames, check_fps(fps)


def check_memory(frames: int, height: int, width: int, what: str = "the clip") -> None:
    need = frames * height * width * 3
    if need > MAX_VIDEO_BYTES:
        raise ClipTooLongError(f"{what} needs {need / 2**30:.1f} GiB as decoded frames ({frames} frames of "
                               f"{width}×{height}), more than {MAX_VIDEO_BYTES / 2**30:.0f} GiB; trim it or read "
                               "fewer frames (--max-frames), or scale it down first")


def read_video(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """(frames uint8 (T, H, W, 3), fps) of a video file; `max_frames` reads only the first frames."""
    path = Path(path)
    if not path.is_file():
        raise UserFileError(f"{path} does not exist or is not a file; give a video file")
    if max_frames is not None and max_frames < 1:
        raise InvalidParameterError(f"max_frames must be >= 1, got {max_frames}")
    if path.suffix.lower() in PILLOW_SUFFIXES:
        frames, fps = _read_pillow(path, max_frames)
    else:
        frames, fps = _read_ffmpeg(path, max_frames)
    if len(frames) == 0:
        raise CorruptFileError(f"{path} has zero video frames; give a clip with at least one frame")
    return frames, fps


def _read_ffmpeg(path: Path, max_frames: int | None) -> tuple[np.ndarray, float]:
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
    except (RuntimeError, OSError, StopIteration) as e:
        raise CorruptFileError(f"{path} is not a readable video ({_short(e)}); check the file") from None
    width, height = meta["size"]
    fps = float(meta.get("fps") or 0) or 25.0
    estimate = int(round(float(meta.get("duration") or 0) * fps))
    check_memory(min(estimate, max_frames or estimate), height, width, str(path))
    frames = []
    try:
        for raw in reader:
            frames.append(np.frombuffer(raw, np.uint8).reshape(height, width, 3))
            check_memory(len(frames), height, width, str(path))
            if max_frames is not None and len(frames) >= max_frames:
                break
    except (RuntimeError, OSError) as e:
        raise CorruptFileError(f"{path} cannot be decoded ({_short(e)}); check the file") from None
    finally:
        reader.close()
    return (np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)), fps


def _read_pillow(path: Path, max_frames: int | None) -> tuple[np.ndarray, float]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            info = dict(im.info)
            check_memory(getattr(im, "n_frames", 1), im.height, im.width, str(path))
            frames, durations = [], []
            for frame in ImageSequence.Iterator(im):
                frames.append(np.asarray(frame.convert("RGB")))
                durations.append(frame.info.get("duration") or 100)
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CorruptFileError(f"{path} is not a readable animation ({_short(e)}); check the file") from None
    if not frames:
        return np.zeros((0, 1, 1, 3), np.uint8), 10.0
    # GIF and WebP writers merge identical consecutive frames into one longer frame: expand them again, by the
    # frame duration luoxia's labels record (luoxia.safety.labels.video), else the shortest frame's
    text = b"".join(v.encode() if isinstance(v, str) else v for v in (info.get("comment"), info.get("xmp")) if v)
    recorded = re.search(rb"luoxia_frame_ms=(\d+)|<luoxia:FrameMs>(\d+)<", text)
    base = int(recorded.group(1) or recorded.group(2)) if recorded else max(10, min(durations))
    repeats = [max(1, round(d / base)) for d in durations]
    video = np.repeat(np.stack(frames), repeats, axis=0)
    return (video[:max_frames] if max_frames else video), 1000.0 / base


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[-200:] if text else type(e).__name__


def fit_clip(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to `size` and centre-crop to size×size, frame by frame."""
    from PIL import Image

    out = []
    for f in frames:
        im = Image.fromarray(f)
        s = size / min(im.size)
        im = im.resize((max(size, round(im.width * s)), max(size, round(im.height * s))), Image.Resampling.BICUBIC)
        left, top = (im.width - size) // 2, (im.height - size) // 2
        out.append(np.asarray(im.crop((left, top, left + size, top + size))))
    return np.stack(out)
