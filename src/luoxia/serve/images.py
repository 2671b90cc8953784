"""The image side of the server: `/v1/images/generations` over an `ImageModel`.

Each image is written by `Artifact.save` (visible corner label + signed XMP metadata) and sent as
those exact PNG bytes, so what a client saves is a labelled file that `luoxia inspect` verifies.
The models are small (32×32), so images are enlarged with nearest-neighbour pixels to the asked
`size` (default 256×256), a whole multiple of the model's size.
"""

from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path

from luoxia.core.errors import InvalidParameterError
from luoxia.image.pipeline import DEFAULT_IMAGE_MODEL, ImageModel
from luoxia.safety import labels
from luoxia.safety.labels import LabelOptions
from luoxia.serve.schemas import ImageRequest

DEFAULT_SIZE = 256
MAX_SIZE = 1024


class ImageService:
    def __init__(self, model: ImageModel):
        self.model, self.name = model, model.name
        self._lock = threading.Lock()  # one generation at a time: the model's forward passes use all cores

    @classmethod
    def load(cls, name: str | None = None) -> ImageService:
        return cls(ImageModel.load(name or DEFAULT_IMAGE_MODEL))

    def scale_for(self, size: str | None) -> int:
        side = self.model.size
        if size in (None, "auto"):
            return max(1, DEFAULT_SIZE // side)
        match = re.fullmatch(r"(\d+)x(\d+)", size)
        if not match or match[1] != match[2] or int(match[1]) % side or not side <= int(match[1]) <= MAX_SIZE:
            raise InvalidParameterError(f"size {size!r} is not available: ask for a square NxN with N a multiple of "
                                        f"{side} up to {MAX_SIZE}, e.g. {DEFAULT_SIZE}x{DEFAULT_SIZE}")
        return int(match[1]) // side

    def generate(self, req: ImageRequest) -> list[tuple[bytes, dict]]:
        """Labelled PNG bytes and each image's provenance as written into it."""
        scale = self.scale_for(req.size)
        with self._lock:
            result = self.model.generate(req.prompt, n=req.n, steps=req.steps, guidance=req.guidance, seed=req.seed)
        out = []
        with tempfile.TemporaryDirectory(prefix="luoxia-serve-") as tmp:
            for i, artifact in enumerate(result.artifacts(scale=scale)):
                path = artifact.save(Path(tmp) / f"image-{i}.png", LabelOptions(visible=req.visible_label))
                out.append((path.read_bytes(), labels.read(path).provenance))
        return out
