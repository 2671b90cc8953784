"""The measurements and sample GIFs of docs/video.md.

    nice -n 10 .venv/bin/python scripts/video_report.py -n 48 --steps 25      # → docs/video/

Writes docs/video/ground-truth.gif (moving-shapes clips, rendered), docs/video/samples.gif (the
embedded model on the same captions, side by side, one row per caption) and
docs/video/results.json (what `luoxia eval video` measures), and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from luoxia.core import atomic
from luoxia.core.artifact import Artifact, Video
from luoxia.core.provenance import Provenance
from luoxia.eval.video import evaluate_model
from luoxia.video import world
from luoxia.video.pipeline import VideoModel

ROOT = Path(__file__).resolve().parents[1]
SHOW = [("circle", "red", "right"), ("square", "blue", "down"), ("triangle", "green", "left"),
        ("circle", "yellow", "up"), ("square", "purple", "grows"), ("triangle", "white", "shrinks")]


def grid(clips: np.ndarray, scale: int = 3) -> np.ndarray:
    """(N, T, H, W, 3) → (T, H·scale, N·W·scale, 3): the clips side by side, 2 px apart."""
    n, t, h, w, _ = clips.shape
    out = np.full((t, h, n * (w + 2) - 2, 3), 255, np.uint8)
    for i, c in enumerate(clips):
        out[:, :, i * (w + 2):i * (w + 2) + w] = c
    return out.repeat(scale, 1).repeat(scale, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=48, help="clips to evaluate")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--model", default="moving-shapes")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "video")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model = VideoModel.load(args.model)
    truth = [world.make_clip(k, c, m, model.frames, model.size, np.random.default_rng(i)) for i, (k, c, m)
             in enumerate(SHOW)]
    captions = [c.caption for c in truth]
    Artifact("video", Video(grid(np.stack([c.frames for c in truth])), 4),
             Provenance(model="moving-shapes world (rendered ground truth)", prompt=" | ".join(captions))
             ).save(args.out / "ground-truth.gif")
    samples = model.sample(captions, steps=args.steps, guidance=args.guidance, seed=0)
    Artifact("video", Video(grid(samples), 4),
             Provenance(model=model.name, model_sha256=model.sha256, seed=0, prompt=" | ".join(captions),
                        params={"steps": args.steps, "guidance": args.guidance})).save(args.out / "samples.gif")
    result = evaluate_model(model, args.n, steps=args.steps, guidance=args.guidance, seed=0)
    result.pop("clips")
    result.pop("captions")
    result["training"] = {k: model.config.get("training", {}).get(k) for k in ("steps", "seconds", "checkpoint")}
    atomic.write_text(args.out / "results.json", json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
