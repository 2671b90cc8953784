"""Text-to-video, image-to-video and frame interpolation with a video model, saved with AI-generated labels.

    model = VideoModel.load()                       # embedded "moving-shapes"; or a run folder
    result = model.generate("a red circle moves from left to right", frames=16, fps=8, seed=0)
    result.artifact(scale=4).save("out.mp4")        # or .gif / .webp; labelled either way
    model.generate("...", first_frame="start.png")  # image-to-video: animate a given first frame
    model.between(frame_a, frame_b, frames=8)       # frame interpolation: fill the frames in between

The loop is the image pipeline's (`luoxia.image.diffusion.sample`, DDIM with classifier-free
guidance) on (B, T, C, H, W) clips. Given frames (the first, or the first and last) are kept by
replacement: after every step the known frames are set to the given ones noised to the current
level (as RePaint does for pixels), so the temporal attention makes the rest agree with them.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from luoxia.core.artifact import Artifact, Video
from luoxia.core.errors import InvalidParameterError, ModelNotFoundError
from luoxia.core.provenance import Provenance
from luoxia.image.diffusion import Condition, check_sampling_args, sample
from luoxia.video.data import to_tensor, to_uint8
from luoxia.video.formats import load_model
from luoxia.video.io import check_fps, check_memory

WEIGHTS = Path(__file__).parent / "weights"
EMBEDDED = {"moving-shapes": "text-to-video diffusion on the moving-shapes world, 8 frames of 32×32"}
DEFAULT_VIDEO_MODEL = "moving-shapes"
MAX_FRAMES = 64  # the temporal attention is trained on 8; beyond this the clip is unlikely to hold together
MAX_BATCH_FRAMES = 256  # frames per forward pass (twice that with guidance)


def resolve_video_model(name_or_path: str) -> Path:
    if name_or_path in EMBEDDED:
        path = WEIGHTS / name_or_path
        if not (path / "model.safetensors").is_file():
            raise ModelNotFoundError(f"the embedded video model {name_or_path!r} is missing from {path}; reinstall "
                                     "luoxia or retrain it with scripts/train_video_default.py")
        return path
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    from luoxia.core.registry import resolve

    try:
        return resolve(name_or_path)
    except ModelNotFoundError:
        raise ModelNotFoundError(f"no video model {name_or_path!r}: not a folder or a known name; embedded: "
                                 f"{', '.join(EMBEDDED)} (or a run folder of `luoxia train video`)") from None


@dataclasses.dataclass
class VideoResult:
    frames: np.ndarray  # uint8 (T, H, W, 3)
    fps: float
    provenance: Provenance

    def artifact(self, scale: int = 1) -> Artifact:
        frames = self.frames.repeat(scale, 1).repeat(scale, 2) if scale > 1 else self.frames
        return Artifact("video", Video(frames, self.fps), self.provenance)


def check_frames(frames: int) -> int:
    if not 2 <= frames <= MAX_FRAMES:
        raise InvalidParameterError(f"frames must be in [2, {MAX_FRAMES}], got {frames}")
    return frames


class VideoModel:
    def __init__(self, net: torch.nn.Module, config: dict, name: str, source: Path):
        self.net, self.config, self.name, self.source = net, config, name, source
        self.size, self.frames, self.fps = config["image_size"], config["frames"], float(config.get("fps", 8))
        self._text = None
        self._sha256: str | None = None

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_VIDEO_MODEL) -> VideoModel:
        path = resolve_video_model(name_or_path)
        if path.is_file():
            path = path.parent
        net, config = load_model(path)
        return cls(net, config, name_or_path if name_or_path in EMBEDDED else path.name, path)

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            from luoxia.core.filehash import sha256_file

            self._sha256 = sha256_file(self.source / "model.safetensors")
        return self._sha256

    @property
    def text(self):
        if self._text is None:
            from luoxia.image.text_encoder import shared_text_encoder

            self._text = shared_text_encoder()
        return self._text

    def _frame_tensor(self, image, what: str) -> torch.Tensor:
        """A path / PIL image / uint8 array → (3, size, size) in [-1, 1]."""
        from PIL import Image

        from luoxia.image.datasets import fit, open_image

        if isinstance(image, str | Path):
            image = open_image(Path(image), "RGB")
        elif isinstance(image, np.ndarray):
            image = Image.fromarray(np.asarray(image, np.uint8))
        if not isinstance(image, Image.Image):
            raise InvalidParameterError(f"{what} must be a path, a PIL image or a uint8 array")
        array = np.asarray(fit(image.convert("RGB"), self.size))
        return to_tensor(array[None, None])[0, 0]

    @torch.no_grad()
    def sample(self, prompts: list[str], *, frames: int | None = None, steps: int = 50, guidance: float = 3.0,
               seed: int = 0, eta: float = 0.0, known: dict[int, torch.Tensor] | None = None,
               resample: int = 1, progress=None) -> np.ndarray:
        """uint8 clips (N, T, H, W, 3) for N prompts; `known` maps frame indices to given frames (3, H, W)."""
        from luoxia.image.schedulers import ScheduleConfig, make_sampler

        frames = check_frames(frames or self.frames)
        check_sampling_args(guidance, 1.0, steps)
        check_memory(len(prompts) * frames, self.size, self.size, "the requested clips")
        generator = torch.Generator().manual_seed(seed)
        per_batch = max(1, MAX_BATCH_FRAMES // frames)
        out = []
        for start in range(0, len(prompts), per_batch):
            chunk = prompts[start:start + per_batch]
            b = len(chunk)
            shape = (b, frames, 3, self.size, self.size)
            cond = Condition(text=self.text.encode(chunk))
            null = Condition(text=self.text.encode([""] * b))
            init = mask = None
            if known:
                init = torch.zeros(shape)
                mask = torch.ones(b, frames, 1, 1, 1)
                for i, frame in known.items():
                    init[:, i], mask[:, i] = frame, 0.0
            x = sample(self.net, make_sampler("ddim", ScheduleConfig(**self.config["schedule"]), eta), shape, cond,
                       null, guidance=guidance, steps=steps, generator=generator, init=init, mask=mask,
                       resample=resample, progress=progress)
            out.append(to_uint8(x))
        return np.concatenate(out)

    def generate(self, prompt: str, *, frames: int | None = None, fps: float | None = None, steps: int = 50,
                 guidance: float = 3.0, seed: int | None = None, eta: float = 0.0, first_frame=None,
                 resample: int = 2, progress=None) -> VideoResult:
        """One clip for `prompt`; with `first_frame` (path / PIL / uint8 array) it animates that image."""
        if not prompt or not prompt.strip():
            raise InvalidParameterError("give a prompt, e.g. \"a red circle moves from left to right\"")
        fps = check_fps(fps if fps is not None else self.fps)
        frames = check_frames(frames or self.frames)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
        known = {0: self._frame_tensor(first_frame, "the first frame")} if first_frame is not None else None
        t0 = time.perf_counter()
        clip = self.sample([prompt], frames=frames, steps=steps, guidance=guidance, seed=seed, eta=eta, known=known,
                           resample=resample if known else 1, progress=progress)[0]
        seconds = time.perf_counter() - t0
        params = {"mode": "img2video" if known else "txt2video", "frames": frames, "fps": fps, "steps": steps,
                  "guidance": guidance, "sampler": "ddim", "eta": eta}
        return VideoResult(clip, fps, self._provenance(prompt, seed, params, seconds, frames))

    def between(self, a, b, *, frames: int | None = None, fps: float | None = None, prompt: str = "",
                steps: int = 50, guidance: float = 1.0, seed: int = 0, resample: int = 3) -> VideoResult:
        """Frame interpolation: a clip that starts at frame `a` and ends at frame `b` (both given)."""
        fps = check_fps(fps if fps is not None else self.fps)
        frames = check_frames(frames or self.frames)
        known = {0: self._frame_tensor(a, "the first frame"), frames - 1: self._frame_tensor(b, "the last frame")}
        t0 = time.perf_counter()
        clip = self.sample([prompt], frames=frames, steps=steps, guidance=guidance, seed=seed, known=known,
                           resample=resample)[0]
        params = {"mode": "interpolate-frames", "frames": frames, "fps": fps, "steps": steps, "guidance": guidance,
                  "resample": resample}
        return VideoResult(clip, fps, self._provenance(prompt, seed, params, time.perf_counter() - t0, frames))

    def _provenance(self, prompt: str, seed: int, params: dict, seconds: float, frames: int) -> Provenance:
        return Provenance(model=self.name, model_source=str(self.source), model_sha256=self.sha256, params=params,
                          seed=seed, prompt=prompt,
                          stats={"seconds": round(seconds, 3), "frames_per_s": round(frames / max(seconds, 1e-9), 2)})
