"""Image data sets, held in memory as uint8 (N, H, W, C) with captions and/or class labels.

    shapes_dataset(20000, size=32, seed=0)   the procedural shapes world (captions + layouts)
    digits_dataset(size=32)                  scikit-learn's 1,797 8×8 digits, upscaled (labels + captions)
    folder_dataset("photos/", size=64)       PNG/JPEG/... of any size: shorter side resized, centre-cropped;
                                             captions from NAME.txt beside each image or a CSV (file, caption);
                                             class labels from sub-folder names when there are sub-folders

Files that cannot be read as images are skipped and counted (`ImageData.skipped`), never fatal.
`to_tensor` maps pixels to [-1, 1], the range the models work in.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np
import torch

from luoxia.core.errors import ImageTooLargeError, UserFileError
from luoxia.image import shapes as world

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SIDECAR_SUFFIXES = {".txt", ".csv", ".json", ".md"}
MAX_PIXELS = 64_000_000  # refuse to decode larger images (a 8000×8000 photo is 64 MP)
MAX_DATA_BYTES = 8 << 30  # the in-memory data set may not exceed this
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclasses.dataclass
class ImageData:
    name: str
    images: np.ndarray  # uint8 (N, H, W, C)
    captions: list[str] | None = None
    labels: np.ndarray | None = None  # int64 (N,)
    class_names: list[str] | None = None
    layouts: list[list[world.Shape]] | None = None
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)  # reason → count

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        return self.images.shape[1]

    @property
    def channels(self) -> int:
        return self.images.shape[3]


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) → float32 (N, C, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(images, dtype=np.uint8, order="C")).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] → uint8 (N, H, W, C)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def shapes_dataset(n: int = 20000, size: int = 32, seed: int = 0, max_objects: int = 3,
                   single_share: float = 0.5) -> ImageData:
    """`n` random scenes; `single_share` of them hold one object, the rest 2..max_objects."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    captions, layouts = [], []
    for i in range(n):
        count = 1 if rng.random() < single_share or max_objects == 1 else int(rng.integers(2, max_objects + 1))
        scene = world.random_scene(rng, count)
        images[i] = world.render(scene, size)
        captions.append(world.random_caption(scene, rng))
        layouts.append(scene)
    return ImageData("shapes", images, captions=captions, layouts=layouts)


def digits_dataset(size: int = 32) -> ImageData:
    """scikit-learn's 8×8 digits (0..16 grey levels), bilinearly upscaled to size×size, one channel."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images).float().div(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    labels = d.target.astype(np.int64)
    captions = [f"a handwritten digit {int(k)}" for k in labels]
    return ImageData("digits", images, captions=captions, labels=labels, class_names=[str(k) for k in range(10)])


def open_image(path: Path, mode: str = "RGB"):
    """A decoded PIL image, refusing decompression bombs; raises UserFileError / ImageTooLargeError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageTooLargeError(f"{path} is {w}×{h} pixels, more than the {MAX_PIXELS // 1_000_000} MP "
                                         "luoxia decodes; shrink it first")
            im.load()
            return im.convert(mode)
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"{path} is larger than the {MAX_PIXELS // 1_000_000} MP luoxia decodes; shrink it "
                                 "first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise UserFileError(f"{path} cannot be read as an image ({type(e).__name__}); give a PNG or JPEG file") \
            from None


def fit(image, size: int):
    """Resize the shorter side to `size` (area-averaging when shrinking), centre-crop to size×size."""
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


def _csv_captions(folder: Path) -> dict[str, str]:
    """file name or relative path → caption, from every CSV with a file/image/path and a caption/text column."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.csv")):
        try:
            rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        for row in rows:
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            key = next((row[k] for k in ("file", "filename", "image", "path") if row.get(k)), None)
            text = next((row[k] for k in ("caption", "text", "prompt") if row.get(k)), None)
            if key and text:
                found[key] = text
    return found


def folder_dataset(folder: str | Path, size: int = 32, channels: int = 3, limit: int | None = None) -> ImageData:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserFileError(f"data folder {folder} does not exist; give a folder of images, or shapes / digits")
    csv_caps = _csv_captions(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() not in SIDECAR_SUFFIXES)
    if limit is not None:
        files = files[:limit]
    if len(files) * size * size * channels > MAX_DATA_BYTES:
        raise ImageTooLargeError(f"{len(files)} images of {size}×{size} need more than {MAX_DATA_BYTES >> 30} GiB; "
                                 "use a smaller --size or a --limit")
    images, captions, classes, skipped = [], [], [], {}
    for path in files:
        try:
            im = open_image(path, "L" if channels == 1 else "RGB")
        except (UserFileError, ImageTooLargeError) as e:
            reason = "too large" if isinstance(e, ImageTooLargeError) else (
                "not an image" if path.suffix.lower() not in IMAGE_SUFFIXES else "unreadable")
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        array = np.asarray(fit(im, size))
        images.append(array[..., None] if array.ndim == 2 else array)
        rel = path.relative_to(folder)
        sidecar = path.with_suffix(".txt")
        text = sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.is_file() else \
            csv_caps.get(str(rel), csv_caps.get(path.name, ""))
        captions.append(" ".join(text.split()))
        classes.append(rel.parts[0] if len(rel.parts) > 1 else "")
    if not images:
        detail = ", ".join(f"{v} {k}" for k, v in skipped.items()) or "no files"
        raise UserFileError(f"data folder {folder} holds no readable images ({detail}); add PNG or JPEG files")
    names = sorted(set(classes))
    labels = np.array([names.index(c) for c in classes], np.int64) if len(names) > 1 else None
    return ImageData(folder.name, np.stack(images), captions=captions if any(captions) else None, labels=labels,
                     class_names=names if labels is not None else None, skipped=skipped)


def load_dataset(spec: str, size: int = 32, n: int | None = None, seed: int = 0) -> ImageData:
    """`shapes`, `digits` or a folder path."""
    if spec == "shapes":
        return shapes_dataset(n or 20000, size=size, seed=seed)
    if spec == "digits":
        return digits_dataset(size)
    return folder_dataset(spec, size=size, limit=n)
