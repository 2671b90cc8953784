"""Text-to-image (and class-to-image) generation with a trained model, saved with AI-generated labels.

    model = ImageModel.load("shapes")            # embedded; or "digits", a run folder, a registered name
    result = model.generate("a small red circle at the top left", n=16, steps=50, guidance=3, seed=0)
    result.grid_artifact().save("out.png")       # one labelled PNG; result.artifacts() for one per image
    model.generate("a blue square", init=image, strength=0.6)          # image-to-image (SDEdit)
    model.generate("a green triangle", init=image, mask=mask)           # inpainting (white = fill)

Diffusion models take every option; a VAE or GAN draws from its prior (class-conditional ones
read the class from the prompt or `label`), so steps, guidance, init and mask do not apply.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import numpy as np
import torch

from luoxia.core.artifact import Artifact
from luoxia.core.errors import ImageTooLargeError, InvalidParameterError, ModelNotFoundError, UserFileError
from luoxia.core.provenance import Provenance
from luoxia.image.datasets import MAX_PIXELS, fit, open_image, to_tensor, to_uint8
from luoxia.image.diffusion import Condition, check_sampling_args, sample
from luoxia.image.formats import load_model
from luoxia.image.grid import make_grid

WEIGHTS = Path(__file__).parent / "weights"
EMBEDDED = {"shapes": "text-to-image diffusion on the shapes world, 32×32",
            "digits": "class-conditional diffusion on scikit-learn's digits, 32×32"}
DEFAULT_IMAGE_MODEL = "shapes"
MAX_BATCH = 64  # images per forward pass (twice that with guidance)
MAX_IMAGES = 10_000


def resolve_image_model(name_or_path: str) -> Path:
    if name_or_path in EMBEDDED:
        path = WEIGHTS / name_or_path
        if not (path / "model.safetensors").is_file():
            raise ModelNotFoundError(f"the embedded image model {name_or_path!r} is missing from {path}; "
                                     "reinstall luoxia or retrain it with scripts/train_image_defaults.py")
        return path
    from luoxia.core.registry import resolve

    try:
        return resolve(name_or_path)
    except ModelNotFoundError:
        raise ModelNotFoundError(f"no image model {name_or_path!r}: not a folder or a known name; embedded: "
                                 f"{', '.join(EMBEDDED)} (or a run folder of `luoxia train image`)") from None


@dataclasses.dataclass
class ImageResult:
    images: np.ndarray  # uint8 (N, H, W, C)
    provenance: Provenance

    def artifacts(self, scale: int = 1) -> list[Artifact]:
        """One artifact per image (its own seed index in the params)."""
        out = []
        for i, img in enumerate(self.images):
            img = img.repeat(scale, 0).repeat(scale, 1) if scale > 1 else img
            prov = dataclasses.replace(self.provenance, params={**self.provenance.params, "index": i})
            out.append(Artifact("image", img[..., 0] if img.shape[2] == 1 else img, prov))
        return out

    def grid_artifact(self, nrow: int | None = None, scale: int = 1) -> Artifact:
        nrow = nrow or max(1, int(np.ceil(np.sqrt(len(self.images)))))
        return Artifact("image", make_grid(self.images, nrow=nrow, scale=scale), self.provenance)


class ImageModel:
    def __init__(self, net: torch.nn.Module, config: dict, name: str, source: Path):
        self.net, self.config, self.name, self.source = net, config, name, source
        self.kind = config["kind"]
        self.size, self.channels = config["image_size"], config["channels"]
        self.cond = config.get("cond", "none")
        self.class_names: list[str] = config.get("class_names") or []
        self._text = None
        self._sha256: str | None = None

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_IMAGE_MODEL) -> ImageModel:
        path = resolve_image_model(name_or_path)
        if path.is_file():
            path = path.parent
        net, config = load_model(path)
        if config["kind"] == "ddpm":  # NHWC convolutions are ~15-20% faster on the CPU; same math
            net = net.to(memory_format=torch.channels_last)
            net.channels_last = True
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

    # --- conditions ---------------------------------------------------------------------------------

    def label_of(self, prompt: str | None, label: int | str | None) -> int | None:
        """A class index from `label` (index or name) or from a class name / digit word in the prompt."""
        if not self.class_names:
            return None
        if label is not None:
            if isinstance(label, int) or str(label).isdigit() and str(label) not in self.class_names:
                index = int(label)
            elif str(label) in self.class_names:
                index = self.class_names.index(str(label))
            else:
                index = -1
            if not 0 <= index < len(self.class_names):
                raise InvalidParameterError(f"label {label!r} is not one of this model's classes: "
                                            f"{', '.join(self.class_names)}")
            return index
        if prompt:
            from luoxia.image.datasets import DIGIT_NAMES

            words = re.findall(r"\w+", prompt.lower())
            for i, name in enumerate(self.class_names):
                spoken = DIGIT_NAMES[int(name)] if name.isdigit() and int(name) < 10 else None
                if name.lower() in words or spoken in words:
                    return i
            raise InvalidParameterError(f"the prompt {prompt!r} names none of this model's classes "
                                        f"({', '.join(self.class_names)}); say one, or use --label")
        return None

    def condition(self, prompt: str | None, label: int | None, n: int) -> tuple[Condition, Condition | None]:
        if self.cond == "text":
            c = self.text.encode([prompt or ""] * n)
            return Condition(text=c), Condition(text=self.text.encode([""] * n))
        if self.cond == "class":
            null = torch.full((n,), len(self.class_names), dtype=torch.long)
            return Condition(labels=null if label is None else torch.full((n,), label)), Condition(labels=null)
        return Condition(), None

    # --- generation ---------------------------------------------------------------------------------

    def _image_tensor(self, image, what: str, mode: str) -> torch.Tensor:
        """A path / PIL image / uint8 array → (1, C, size, size) in [-1, 1] (C=1 for masks)."""
        from PIL import Image

        if isinstance(image, str | Path):
            image = open_image(Path(image), mode)
        elif isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        if not isinstance(image, Image.Image):
            raise InvalidParameterError(f"{what} must be a path, a PIL image or a uint8 array")
        if image.width * image.height > MAX_PIXELS:
            raise ImageTooLargeError(f"{what} is {image.width}×{image.height} pixels, more than "
                                     f"{MAX_PIXELS // 1_000_000} MP; shrink it first")
        image = fit(image.convert(mode), self.size)
        array = np.asarray(image)
        return to_tensor(array[None, ..., None] if array.ndim == 2 else array[None])

    def _inputs(self, init, mask) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        from PIL import Image

        if mask is not None and init is None:
            raise InvalidParameterError("--mask needs --init: the image whose masked region is filled")
        init_t = mask_t = None
        if init is not None:
            if isinstance(init, str | Path):
                init = open_image(Path(init), "RGB")
            init_t = self._image_tensor(init, "the init image", "L" if self.channels == 1 else "RGB")
        if mask is not None:
            if isinstance(mask, str | Path):
                mask = open_image(Path(mask), "L")
            mask_img = mask if isinstance(mask, Image.Image) else Image.fromarray(np.asarray(mask))
            init_size = init.size if isinstance(init, Image.Image) else (np.asarray(init).shape[1],
                                                                          np.asarray(init).shape[0])
            if mask_img.size != init_size:
                raise InvalidParameterError(f"the mask is {mask_img.width}×{mask_img.height} but the init image is "
                                            f"{init_size[0]}×{init_size[1]}; give a mask of the same size "
                                            "(white = fill, black = keep)")
            mask_t = (self._image_tensor(mask_img, "the mask", "L") > 0).float()  # any white → fill
            if mask_t.sum() == 0:
                raise InvalidParameterError("the mask is black everywhere, so there is nothing to fill; paint the "
                                            "region to fill white")
        return init_t, mask_t

    @torch.no_grad()
    def generate(self, prompt: str | None = None, *, n: int = 1, label: int | str | None = None, steps: int = 50,
                 guidance: float = 3.0, seed: int | None = None, sampler: str = "ddim", eta: float = 0.0,
                 init=None, strength: float = 0.6, mask=None, resample: int = 5,
                 progress=None) -> ImageResult:
        check_sampling_args(guidance, strength, steps)
        if not 1 <= n <= MAX_IMAGES:
            raise InvalidParameterError(f"n must be in [1, {MAX_IMAGES}], got {n}")
        if n * self.size * self.size * self.channels > 4 * MAX_PIXELS:
            raise ImageTooLargeError(f"{n} images of {self.size}×{self.size} do not fit in memory; ask for fewer")
        if sampler not in ("ddim", "ddpm"):
            raise InvalidParameterError(f"sampler must be ddim or ddpm, got {sampler!r}")
        if resample < 1:
            raise InvalidParameterError(f"resample must be >= 1, got {resample}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
        class_label = self.label_of(prompt, label)
        init_t, mask_t = self._inputs(init, mask)
        if self.kind == "gan" and init_t is not None or self.kind == "vae" and mask_t is not None:
            raise InvalidParameterError(f"{'--mask' if mask_t is not None else '--init'} needs a diffusion model "
                                        f"(or a VAE for --init); {self.name} is a {self.kind}")
        t0 = time.perf_counter()
        generator = torch.Generator().manual_seed(seed)
        chunks = []
        for start in range(0, n, MAX_BATCH):
            b = min(MAX_BATCH, n - start)
            if self.kind == "ddpm":
                chunks.append(self._diffuse(prompt, class_label, b, steps, guidance, generator, sampler, eta,
                                            init_t, strength, mask_t, resample, progress))
            else:
                cond, _ = self.condition(prompt, class_label, b)
                kw = {"pooled": cond.text.pooled} if cond.text is not None else {"labels": cond.labels}
                if init_t is not None:  # a VAE's reconstruction of the init image (from the posterior mean)
                    chunks.append(self.net.reconstruct(init_t.expand(b, -1, -1, -1), **kw))
                else:
                    chunks.append(self.net.sample(b, generator=generator, **kw))
        images = to_uint8(torch.cat(chunks))
        seconds = time.perf_counter() - t0
        mode = "inpaint" if mask_t is not None else "img2img" if init_t is not None else "txt2img"
        if self.kind == "vae" and init_t is not None:
            mode = "reconstruct"
        params = {"n": n, "mode": mode, "kind": self.kind}
        if self.kind == "ddpm":
            params.update(steps=steps, guidance=guidance, sampler=sampler, eta=eta)
            if init_t is not None and mask_t is None:
                params["strength"] = strength
            if mask_t is not None:
                params["resample"] = resample
        if class_label is not None:
            params["label"] = self.class_names[class_label]
        prov = Provenance(model=self.name, model_source=str(self.source), model_sha256=self.sha256, params=params,
                          seed=seed, prompt=prompt or "",
                          stats={"seconds": round(seconds, 3), "images_per_s": round(n / max(seconds, 1e-9), 2)})
        return ImageResult(images, prov)

    @torch.no_grad()
    def interpolate(self, a, b, steps: int = 8) -> ImageResult:
        """VAE only: decodings along the (spherical) path between the latents of images a and b."""
        if self.kind != "vae":
            raise InvalidParameterError(f"latent interpolation needs a VAE; {self.name} is a {self.kind}")
        if not 2 <= steps <= 256:
            raise InvalidParameterError(f"interpolation steps must be in [2, 256], got {steps}")
        mode = "L" if self.channels == 1 else "RGB"
        x = torch.cat([self._image_tensor(i if not isinstance(i, str | Path) else open_image(Path(i), mode),
                                          "an interpolation end", mode) for i in (a, b)])
        images = to_uint8(self.net.interpolate(x[0], x[1], steps))
        prov = Provenance(model=self.name, model_source=str(self.source), model_sha256=self.sha256,
                          params={"mode": "interpolate", "steps": steps, "kind": self.kind, "n": steps})
        return ImageResult(images, prov)

    def _diffuse(self, prompt, label, b, steps, guidance, generator, sampler, eta, init_t, strength, mask_t,
                 resample, progress) -> torch.Tensor:
        from luoxia.image.schedulers import ScheduleConfig, make_sampler

        scheduler = make_sampler(sampler, ScheduleConfig(**self.config["schedule"]), eta)
        cond, null = self.condition(prompt, label, b)
        init = init_t.expand(b, -1, -1, -1) if init_t is not None else None
        mask = mask_t.expand(b, -1, -1, -1) if mask_t is not None else None
        return sample(self.net, scheduler, (b, self.channels, self.size, self.size), cond, null,
                      guidance=guidance, steps=steps, generator=generator, init=init,
                      strength=1.0 if mask is not None else strength, mask=mask, resample=resample,
                      progress=progress)


def save_result(result: ImageResult, path: str | Path, *, separate: bool = False, scale: int = 1,
                nrow: int | None = None) -> list[Path]:
    """Write a grid to `path`, or (separate) one file per image: NAME_000.png, NAME_001.png, ..."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UserFileError(f"output {path} must end in .png, .jpg or .webp")
    if not separate:
        grid = result.grid_artifact(nrow=nrow, scale=scale)
        return [grid.save(path)]
    return [a.save(path.with_name(f"{path.stem}_{i:03d}{path.suffix}"))
            for i, a in enumerate(result.artifacts(scale=scale))]
