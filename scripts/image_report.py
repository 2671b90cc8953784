"""Measure the image models for docs/images.md: FID, KID, adherence and sample speed, plus the figures.

    .venv/bin/python scripts/image_report.py --runs runs -n 500          # prints the Markdown table

Rows: the shipped diffusion models (shapes, digits) and the VAE / GAN baselines trained by
`scripts/train_image_defaults.py --only compare` (runs/shapes-vae, runs/shapes-gan, runs/digits-vae,
runs/digits-gan), each sampled `n` times the way `luoxia eval image` does (shapes: uniform one-object
captions; digits: the ten classes in turn), 50 DDIM steps and guidance 3 for diffusion. Writes
docs/images/*.png (labelled sample grids, the shapes world, img2img/inpainting/VAE examples) and
benchmarks/results/image_report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
DOCS = ROOT / "docs" / "images"


def save_grid(images: np.ndarray, name: str, prov_model: str, prompt: str, nrow: int = 8, scale: int = 2) -> None:
    from luoxia.core.artifact import Artifact
    from luoxia.core.provenance import Provenance
    from luoxia.image.grid import make_grid

    Artifact("image", make_grid(images, nrow=nrow, scale=scale), Provenance(model=prov_model, prompt=prompt)).save(
        DOCS / name)


def world_figure() -> None:
    """Ground truth of the shapes world (rendered, not generated: no AI label)."""
    from PIL import Image

    from luoxia.image.datasets import shapes_dataset
    from luoxia.image.grid import make_grid

    d = shapes_dataset(16, seed=7)
    Image.fromarray(make_grid(d.images, nrow=8, scale=3)).save(DOCS / "shapes-world.png")
    (DOCS / "shapes-world.txt").write_text("\n".join(d.captions) + "\n")


def editing_figures(seed: int = 0) -> None:
    """img2img at several strengths, and inpainting, with the shipped shapes model."""
    from PIL import Image

    from luoxia.image import shapes as world
    from luoxia.image.pipeline import ImageModel

    model = ImageModel.load("shapes")
    scene = [world.Shape("circle", "red", "large", "center", 0.5, 0.5)]
    init = Image.fromarray(world.render(scene, 32))
    rows = [np.asarray(init)[None].repeat(4, 0)]
    for strength in (0.3, 0.6, 0.9):
        rows.append(model.generate("a large blue square in the center", init=init, strength=strength, n=4,
                                   seed=seed).images)
    save_grid(np.concatenate(rows), "img2img.png", "shapes", "a large blue square in the center (img2img from a "
              "red circle; rows: init, strength 0.3, 0.6, 0.9)", nrow=4, scale=3)
    two = [world.Shape("square", "yellow", "small", "top left", 0.18, 0.18),
           world.Shape("circle", "red", "large", "bottom right", 0.75, 0.75)]
    init = Image.fromarray(world.render(two, 32))
    mask = np.zeros((32, 32), np.uint8)
    mask[16:, 16:] = 255
    out = model.generate("a small yellow square at the top left and a large green triangle at the bottom right",
                         init=init, mask=Image.fromarray(mask), n=4, seed=seed).images
    masked = np.asarray(init).copy()
    masked[16:, 16:] = 128
    save_grid(np.concatenate([np.asarray(init)[None], masked[None], out]), "inpaint.png", "shapes",
              "inpainting: the bottom-right quarter redrawn as a large green triangle", nrow=6, scale=3)


ROWS = [f"{data}/{kind}" for data in ("shapes", "digits") for kind in ("diffusion", "VAE", "GAN")]


def measure(runs: Path, n: int, steps: int, guidance: float, seed: int, only: list[str]) -> list[dict]:
    from luoxia.eval.image import evaluate_model
    from luoxia.image.pipeline import ImageModel

    rows = []
    for data in ("shapes", "digits"):
        for kind, where in (("diffusion", data), ("VAE", str(runs / f"{data}-vae")),
                            ("GAN", str(runs / f"{data}-gan"))):
            if f"{data}/{kind}" not in only:
                continue
            if kind != "diffusion" and not (Path(where) / "model.safetensors").is_file():
                print(f"skip {kind} on {data}: {where} not trained", file=sys.stderr)
                continue
            model = ImageModel.load(where)
            t0 = time.perf_counter()
            r = evaluate_model(model, data, n, steps=steps, guidance=guidance, seed=seed,
                               log=lambda s: print(s, file=sys.stderr, flush=True))
            params = sum(p.numel() for p in model.net.parameters())
            rows.append({"data": data, "model": kind, "source": where, "params": params, "fid": r["fid"],
                         "kid": r["kid"], "kid_std": r["kid_std"], "adherence": r.get("adherence", {}),
                         "images_per_s": r["images_per_s"], "seconds": round(time.perf_counter() - t0, 1),
                         "steps": steps if model.kind == "ddpm" else None})
            save_grid(r["images"][:32], f"{data}-{kind.lower()}.png", model.name,
                      " | ".join(str(p) for p in r["prompts"][:32]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| data | model | params | FID ↓ | KID×1000 ↓ | adherence ↑ | images/s ↑ |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        adh = r["adherence"].get("all")
        lines.append(f"| {r['data']} | {r['model']} | {r['params'] / 1e6:.1f}M | {r['fid']:.2f} | "
                     f"{1000 * r['kid']:.2f} | {'—' if adh is None else f'{100 * adh:.1f}%'} | "
                     f"{r['images_per_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs")
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip", action="append", default=[], choices=["measure", "figures"])
    ap.add_argument("--rows", default=",".join(ROWS),
                    help="which rows to measure (default all); others are kept from the saved results")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    DOCS.mkdir(parents=True, exist_ok=True)
    if "figures" not in args.skip:
        world_figure()
        editing_figures(args.seed)
    if "measure" in args.skip:
        return
    only = args.rows.split(",")
    if unknown := set(only) - set(ROWS):
        ap.error(f"unknown rows {sorted(unknown)}; choose from {', '.join(ROWS)}")
    out = ROOT / "benchmarks" / "results" / "image_report.json"
    saved = json.loads(out.read_text())["rows"] if out.is_file() else []
    measured = {(r["data"], r["model"]): r for r in saved}
    for r in measure(args.runs, args.n, args.steps, args.guidance, args.seed, only):
        measured[(r["data"], r["model"])] = r
    rows = [measured[tuple(name.split("/"))] for name in ROWS if tuple(name.split("/")) in measured]
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    result = {"machine": f"{cpu}, {os.cpu_count()} CPUs", "threads": args.threads, "n": args.n, "steps": args.steps,
              "guidance": args.guidance, "seed": args.seed, "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['machine']}, {args.threads} torch thread(s); n={args.n}, {args.steps} DDIM steps, guidance "
          f"{args.guidance}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
