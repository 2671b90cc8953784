"""Video training data, held in memory as uint8 clips (N, T, H, W, 3) with captions.

    moving_shapes_dataset(4000, frames=8, size=32)   the moving-shapes world (captions + trajectories)
    folder_dataset("clips/", frames=8, size=32)      every video in a folder: the first `frames` frames
                                                     (evenly strided over up to `stride` × frames),
                                                     resized and centre-cropped; captions from NAME.txt
                                                     beside a clip, else the file name's words

Files that cannot be read, or are shorter than `frames`, are skipped and counted (`skipped`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from luoxia.core.errors import LuoxiaError, UserFileError
from luoxia.video import world
from luoxia.video.io import VIDEO_SUFFIXES, fit_clip, read_video

MAX_DATA_BYTES = 4 << 30


@dataclasses.dataclass
class VideoData:
    name: str
    clips: np.ndarray  # uint8 (N, T, H, W, 3)
    captions: list[str]
    tracks: list[world.Clip] | None = None  # ground truth (moving shapes only), frames dropped
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def frames(self) -> int:
        return self.clips.shape[1]

    @property
    def size(self) -> int:
        return self.clips.shape[2]


def to_tensor(clips: np.ndarray) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) → float32 (N, T, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(clips, dtype=np.uint8, order="C")).permute(0, 1, 4, 2, 3).float().div(127.5).sub(1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, T, 3, H, W) in [-1, 1] → uint8 (N, T, H, W, 3)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()


def moving_shapes_dataset(n: int = 4000, frames: int = 8, size: int = 32, seed: int = 0,
                          motions: tuple[str, ...] = world.MOTIONS, variants: float = 0.5) -> VideoData:
    """`variants`: the share of captions that say the motion in another way (`world.VARIANTS`)."""
    rng = np.random.default_rng([seed, 9])
    say = np.random.default_rng([seed, 10])  # its own stream: the clips do not depend on `variants`
    clips, captions, truth = [], [], []
    for _ in range(n):
        c = world.random_clip(rng, frames, size, tuple(motions))
        clips.append(c.frames)
        variant = int(say.integers(1, 3)) if say.random() < variants else 0
        captions.append(world.caption_of(c.kind, c.colour, c.motion, c.to_colour, variant))
        truth.append(dataclasses.replace(c, frames=np.zeros(0, np.uint8)))
    return VideoData("moving-shapes", np.stack(clips), captions, truth)


def folder_dataset(folder: str | Path, frames: int = 8, size: int = 32, limit: int | None = None,
                   stride: int = 1) -> VideoData:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserFileError(f"{folder} is not a folder; give a folder of video files (or moving-shapes)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not files:
        raise UserFileError(f"{folder} holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    clips, captions, skipped = [], [], {}
    for path in files[:limit] if limit else files:
        try:
            video, _ = read_video(path, max_frames=frames * stride)
        except LuoxiaError:
            skipped["unreadable"] = skipped.get("unreadable", 0) + 1
            continue
        video = video[::stride]
        if len(video) < frames:
            skipped["too short"] = skipped.get("too short", 0) + 1
            continue
        clips.append(fit_clip(video[:frames], size))
        sidecar = path.with_suffix(".txt")
        captions.append(sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.is_file()
                        else " ".join(path.stem.replace("_", " ").replace("-", " ").split()))
        if len(clips) * frames * size * size * 3 > MAX_DATA_BYTES:
            raise UserFileError(f"{folder} decodes to more than {MAX_DATA_BYTES >> 30} GiB of clips; use --n to "
                                "read fewer files or a smaller --size")
    if not clips:
        raise UserFileError(f"none of the {len(files)} videos in {folder} could be used "
                            f"({', '.join(f'{v} {k}' for k, v in skipped.items())}); need ≥ {frames} frames each")
    return VideoData(folder.name, np.stack(clips), captions, None, skipped)


def load_dataset(spec: str, frames: int = 8, size: int = 32, n: int | None = None, seed: int = 0,
                 motions: tuple[str, ...] = world.MOTIONS, variants: float = 0.5) -> VideoData:
    if spec == "moving-shapes":
        return moving_shapes_dataset(n or 4000, frames, size, seed, motions, variants)
    return folder_dataset(spec, frames, size, limit=n)
