"""Train (or resume) the embedded video model and export it to src/luoxia/video/weights/moving-shapes.

    nice -n 10 .venv/bin/python scripts/train_video_default.py            # resumes runs/video-default
    .venv/bin/python scripts/train_video_default.py --export-only          # newest checkpoint → weights

One torch thread (faster than two OpenMP threads on a busy 2-core machine). The run is resumable:
kill it any time and start the same command again; `--steps N` extends the run (the cosine
schedule is stretched to the new total, so extend before the end, or accept a new warm restart).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from luoxia.train.resume import latest
from luoxia.video.training import VideoTrainConfig, export_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "luoxia" / "video" / "weights" / "moving-shapes"
CONFIG = dict(data="moving-shapes", out=str(ROOT / "runs" / "video-default"), frames=8, size=32, n=4000,
              motions=("right", "left", "down", "up", "grows", "shrinks"), init="shapes", steps=3600,
              batch_size=4, lr=2e-4, min_lr=2e-5, new_lr_scale=5.0, warmup_steps=100, ema_decay=0.995,
              p_uncond=0.1, high_noise_share=0.5, variants=0.5, seed=0, fps=8.0, sample_every=250,
              checkpoint_every=50, threads=1, export_dtype="int8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=CONFIG["steps"])
    ap.add_argument("--export-only", action="store_true", help="export the newest checkpoint and stop")
    args = ap.parse_args()
    cfg = VideoTrainConfig(**{**CONFIG, "steps": args.steps})
    if not args.export_only:
        print(json.dumps(train(cfg)))
    checkpoint = latest(Path(cfg.out))
    print(export_checkpoint(checkpoint, WEIGHTS))


if __name__ == "__main__":
    main()
