"""Retrain luoxia's embedded image models and the FID/KID feature network, and copy them into the package.

    .venv/bin/python scripts/train_image_defaults.py                  # all of it (hours on 2 CPU cores)
    .venv/bin/python scripts/train_image_defaults.py --only shapes    # or digits, features, compare
    make image-defaults                                               # the same as the first line

What it runs (each resumable: run it again after an interruption and it continues):
    shapes    `luoxia train image --model ddpm --data shapes --preset shapes --steps 5000 ...` → runs/shapes-ddpm,
              EMA weights in int8 (per output channel; float16 biases and norms) → src/luoxia/image/weights/shapes/
    digits    the same on scikit-learn's digits (class-conditional) → src/luoxia/image/weights/digits/
    features  the 256-d feature network for FID/KID → src/luoxia/eval/weights/image_features/
    compare   the VAE and GAN baselines on both data sets (runs/*-vae, runs/*-gan; not shipped), for
              the comparison in docs/images.md (`luoxia eval image --model runs/... -o ...`)
One torch thread per run by default (--threads): on a shared machine two OpenMP threads can be 10× slower.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

# The exact settings of the shipped models (keys of luoxia.image.training.ImageTrainConfig).
RUNS = {
    "shapes": dict(model="ddpm", data="shapes", n=20000, steps=5000, batch_size=32, preset="shapes", lr=3e-4,
                   min_lr=3e-5, warmup_steps=200, sample_every=500, checkpoint_every=250),
    "digits": dict(model="ddpm", data="digits", steps=3000, batch_size=32, preset="digits", lr=3e-4, min_lr=3e-5,
                   warmup_steps=200, sample_every=500, checkpoint_every=250),
    "shapes-vae": dict(model="vae", data="shapes", n=20000, steps=2000, batch_size=64, preset="small", lr=1e-3,
                       min_lr=1e-4, kl_weight=0.05),
    "shapes-gan": dict(model="gan", data="shapes", n=20000, steps=2000, batch_size=64, preset="small", lr=2e-4,
                       min_lr=2e-4, gan_reg="sn"),
    "digits-vae": dict(model="vae", data="digits", steps=1500, batch_size=64, preset="small", lr=1e-3, min_lr=1e-4,
                       kl_weight=0.05),
    "digits-gan": dict(model="gan", data="digits", steps=1500, batch_size=64, preset="small", lr=2e-4, min_lr=2e-4,
                       gan_reg="sn"),
}
SHIPPED = {"shapes": "shapes", "digits": "digits"}


def train_run(name: str, runs_dir: Path, threads: int) -> Path:
    from luoxia.image.training import ImageTrainConfig, train

    out = runs_dir / f"{name}-ddpm" if name in SHIPPED else runs_dir / name
    summary = train(ImageTrainConfig(out=str(out), threads=threads, keep_checkpoints=20, **RUNS[name]))
    print(json.dumps(summary))
    return out


def ship(run: Path, name: str) -> Path:
    """The run's EMA weights (int8 per output channel, float16 elsewhere) + config.json → src/luoxia/image/weights/."""
    import torch

    from luoxia.image.formats import load_model, save_model

    net, config = load_model(run)
    target = ROOT / "src" / "luoxia" / "image" / "weights" / name
    config = {k: v for k, v in config.items() if k not in ("format", "version", "dtype")}
    config["training"]["retrain"] = f"scripts/train_image_defaults.py --only {name}"
    save_model(target, net, config, dtype=torch.int8)
    size = (target / "model.safetensors").stat().st_size
    print(f"shipped {run} as {target} ({size / 2**20:.1f} MiB)")
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["shapes", "digits", "features", "compare"], action="append")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs", help="where the run folders go (default runs/)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    todo = args.only or ["features", "digits", "shapes", "compare"]
    import torch

    torch.set_num_threads(args.threads)
    if "features" in todo:
        from luoxia.eval.image_features import WEIGHTS, train_feature_net

        print(json.dumps(train_feature_net(WEIGHTS)))
    for name in ("digits", "shapes"):
        if name in todo:
            ship(train_run(name, args.runs, args.threads), name)
    if "compare" in todo:
        for name in ("digits-vae", "digits-gan", "shapes-vae", "shapes-gan"):
            train_run(name, args.runs, args.threads)


if __name__ == "__main__":
    main()
