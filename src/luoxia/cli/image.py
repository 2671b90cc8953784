"""`luoxia image`: text-to-image, image-to-image and inpainting with an image model; `luoxia train image`.

    luoxia image "a small red circle at the top left" -n 16 --steps 50 --guidance 3 --seed 0 -o out.png
    luoxia image "a blue square in the center" --init photo.png --strength 0.6 -o edit.png
    luoxia image "a green triangle" --init scene.png --mask hole.png -o filled.png
    luoxia train image --model ddpm --data shapes --steps 4000 --out runs/shapes

Every PNG is written through `Artifact.save`, so it carries the visible and the metadata labels
(`luoxia inspect out.png`). Defaults are those of `ImageModel.generate` and `ImageTrainConfig`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from luoxia.cli import THREADS_HELP, use_threads


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("image", help="generate images from a prompt (also img2img and inpainting)",
                            description="Generate images with an image model (default: the embedded shapes-world "
                                        "diffusion model) and save them with AI-generated labels.")
    p.add_argument("prompt", nargs="?", help='what to draw, e.g. "a small red circle at the top left"')
    p.add_argument("-n", "--num-images", type=int, default=1, metavar="N", help="how many images (default 1)")
    p.add_argument("--model", default="shapes", metavar="NAME|PATH",
                   help="shapes (default), digits, a registered name or a run folder of `luoxia train image`")
    p.add_argument("--steps", type=int, default=50, help="denoising steps (default 50)")
    p.add_argument("--guidance", type=float, default=3.0,
                   help="classifier-free guidance scale (default 3; 1 = plain conditional, 0 = unconditional)")
    p.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim", help="sampler (default ddim)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM noise (0 = deterministic, 1 ≈ DDPM)")
    p.add_argument("--seed", type=int, help="random seed (chosen and recorded when not given)")
    p.add_argument("--label", help="class name or index, for class-conditional models (digits: 0-9)")
    p.add_argument("--init", type=Path, metavar="IMAGE",
                   help="start from this image (diffusion: img2img, SDEdit; VAE: its reconstruction)")
    p.add_argument("--interpolate", type=Path, nargs=2, metavar=("A", "B"),
                   help="VAE: decode -n points on the latent path from image A to image B")
    p.add_argument("--strength", type=float, default=0.6,
                   help="img2img: how far to noise the init image, 0 = keep it, 1 = ignore it (default 0.6)")
    p.add_argument("--mask", type=Path, metavar="MASK",
                   help="inpainting: an image the size of --init, white where to draw, black where to keep")
    p.add_argument("--resample", type=int, default=5,
                   help="inpainting: RePaint resampling rounds per step (default 5; 1 = none)")
    p.add_argument("-o", "--output", type=Path, default=Path("image.png"), metavar="FILE",
                   help="PNG (or JPEG/WebP) to write (default image.png)")
    p.add_argument("--separate", action="store_true", help="one file per image: FILE_000.png, FILE_001.png, ...")
    p.add_argument("--scale", type=int, metavar="K", help="enlarge by K whole pixels (default: to >= 128 px)")
    p.add_argument("--nrow", type=int, help="images per grid row (default: a square grid)")
    p.add_argument("--json", action="store_true", help="print the provenance as JSON")
    p.add_argument("--threads", type=int, metavar="T",
                   help=THREADS_HELP)
    p.set_defaults(run=image)


def image(args: argparse.Namespace) -> int:
    from luoxia.core.artifact import TEXT_NOTICE
    from luoxia.core.errors import InvalidParameterError
    from luoxia.image.diffusion import check_sampling_args
    from luoxia.image.pipeline import ImageModel, save_result

    check_sampling_args(args.guidance, args.strength, args.steps)  # fail before loading anything
    if args.scale is not None and not 1 <= args.scale <= 32:
        raise InvalidParameterError(f"--scale must be in [1, 32], got {args.scale}")
    if args.nrow is not None and args.nrow < 1:
        raise InvalidParameterError(f"--nrow must be >= 1, got {args.nrow}")
    if args.strength != 0.6 and args.init is None:
        raise InvalidParameterError("--strength applies to --init (img2img); give the image to start from")
    use_threads(args.threads)
    model = ImageModel.load(args.model)
    scale = args.scale or max(1, 128 // model.size)
    check_output_size(args.num_images, model.size * scale, args.separate)
    if args.interpolate:
        result = model.interpolate(*args.interpolate, steps=max(2, args.num_images))
    else:
        result = model.generate(args.prompt, n=args.num_images, label=args.label, steps=args.steps,
                                guidance=args.guidance, seed=args.seed, sampler=args.sampler, eta=args.eta,
                                init=args.init, strength=args.strength, mask=args.mask, resample=args.resample)
    paths = save_result(result, args.output, separate=args.separate, scale=scale, nrow=args.nrow)
    p = result.provenance
    if args.json:
        print(json.dumps({"files": [str(x) for x in paths], "provenance": p.to_dict()}, ensure_ascii=False))
    else:
        for path in paths:
            print(path)
    what = ", ".join(f"{k} {v}" for k, v in p.params.items() if k not in ("n", "kind"))
    print(f"{TEXT_NOTICE} {len(result.images)} image(s) {model.size}×{model.size} ×{scale} | {model.name} "
          f"{model.kind} | {what} | seed {p.seed} | {p.stats.get('seconds', 0):.1f} s "
          f"({p.stats.get('images_per_s', 0):.1f} images/s)", file=sys.stderr)
    return 0


def check_output_size(n: int, side: int, separate: bool) -> None:
    """Refuse a grid (or files) too large to hold in memory before generating anything."""
    from luoxia.core.errors import ImageTooLargeError
    from luoxia.image.datasets import MAX_PIXELS

    pixels = side * side * (1 if separate else max(n, 1))
    if pixels > MAX_PIXELS:
        raise ImageTooLargeError(f"{n} images of {side}×{side} pixels make a {pixels / 1e6:.0f} MP grid, more than "
                                 f"{MAX_PIXELS // 1_000_000} MP; lower -n or --scale, or use --separate")


def register_train(sub: argparse._SubParsersAction) -> None:
    """`luoxia train image ...` (called by luoxia.cli.train)."""
    t = sub.add_parser("image", help="train a VAE, GAN or diffusion model on images",
                       description="Train an image model on the shapes world, scikit-learn's digits or a folder "
                                   "of images (captions from NAME.txt or a CSV; classes from sub-folders). Resumes "
                                   "from the newest checkpoint in --out. Unset flags keep the defaults of "
                                   "luoxia.image.training.ImageTrainConfig (or the --config TOML's values).")
    t.add_argument("--config", type=Path, metavar="TOML", help="a TOML file of ImageTrainConfig keys")
    t.add_argument("--model", choices=["ddpm", "vae", "gan"], help="model family (default ddpm)")
    t.add_argument("--data", metavar="shapes|digits|FOLDER", help="training data (default shapes)")
    t.add_argument("--out", metavar="DIR", help="run folder (default runs/image)")
    t.add_argument("--size", type=int, help="image side in pixels (default 32)")
    t.add_argument("--n", type=int, help="shapes: scenes to render (default 20000); folders: at most N files")
    t.add_argument("--cond", choices=["auto", "text", "class", "none"], help="condition (default auto)")
    t.add_argument("--preset", help="network size: tiny, small, shapes, base (default small)")
    t.add_argument("--steps", type=int, help="optimizer steps (default 2000)")
    t.add_argument("--batch-size", type=int, help="images per step (default 32)")
    t.add_argument("--lr", type=float, help="peak learning rate (default 2e-4)")
    t.add_argument("--ema-decay", type=float, help="EMA decay of the exported weights (default 0.999)")
    t.add_argument("--p-uncond", type=float, help="condition dropout for guidance (default 0.1)")
    t.add_argument("--gan-reg", choices=["sn", "gp"], help="GAN: spectral norm or gradient penalty (default sn)")
    t.add_argument("--seed", type=int, help="seed of data, init and batches (default 0)")
    t.add_argument("--log-every", type=int, help="steps between progress lines (default 20)")
    t.add_argument("--sample-every", type=int, help="steps between sample grids (default 500)")
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 250)")
    t.add_argument("--threads", type=int, help="CPU threads for torch")
    t.add_argument("--name", help="register the finished model under this name (luoxia image --model NAME)")
    t.add_argument("--no-resume", action="store_true", help="start over even if --out has checkpoints")
    t.add_argument("--export", type=Path, metavar="DIR",
                   help="do not train: write the newest checkpoint of --out as a model folder DIR (EMA weights), "
                        "to sample an unfinished run")
    t.set_defaults(run=train_image)


def train_image(args: argparse.Namespace) -> int:
    import dataclasses

    from luoxia.core.errors import InvalidParameterError, UserFileError
    from luoxia.image.training import ImageTrainConfig, train

    values: dict = {}
    if args.config is not None:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            values = tomllib.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise UserFileError(f"cannot read {args.config} ({e}); give a TOML file") from None
        except tomllib.TOMLDecodeError as e:
            raise UserFileError(f"{args.config} is not valid TOML ({e})") from None
    known = {f.name for f in dataclasses.fields(ImageTrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidParameterError(f"unknown keys in {args.config}: {', '.join(unknown)}; see ImageTrainConfig")
    for key in known:
        value = getattr(args, key, None)
        if value is not None:
            values[key] = value
    if args.no_resume:
        values["resume"] = False
    if args.export is not None:
        from luoxia.image.training import export_checkpoint
        from luoxia.train.resume import latest

        run_dir = Path(values.get("out") or ImageTrainConfig().out)
        checkpoint = latest(run_dir)
        if checkpoint is None:
            raise UserFileError(f"{run_dir} has no checkpoints to export; give the run folder with --out")
        print(export_checkpoint(checkpoint, args.export))
        return 0
    summary = train(ImageTrainConfig(**values))
    print(json.dumps(summary))
    return 0
