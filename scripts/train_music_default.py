"""Train the embedded chorale model and copy it into the package (src/luoxia/music/weights/chorale).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/train_music_default.py [--run runs/music-default]

Writes RUN/run.toml (below), then runs exactly `luoxia train music --config RUN/run.toml` (resumable:
run it again after an interruption), then stores the exported model folder in float16. The shipped
model was trained this way on one CPU thread of a shared 2-core machine (see docs/music.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "src" / "luoxia" / "music" / "weights" / "chorale"
CONFIG = """\
data = "data"
out = "run"
seed = 0
seq_len = 512
batch_size = 16
max_steps = 600
lr = 2e-3
min_lr = 1e-4
warmup_steps = 50
eval_every = 100
eval_batches = 4
checkpoint_every = 100
log_every = 20
compile = false

[model]
dim = 256
n_layers = 4
n_heads = 8

[corpus]
source = "bach"
transpose = [-5, 6]
val_every = 10
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "runs" / "music-default"), help="the run folder")
    args = ap.parse_args()
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.toml").write_text(CONFIG)
    luoxia = [sys.executable, "-m", "luoxia.cli.main"]
    subprocess.run([*luoxia, "train", "music", "--config", str(run / "run.toml")], check=True)

    exported = run / "run"
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy2(exported / name, WEIGHTS / name)
    state = {k: v.to(torch.float16) for k, v in load_file(exported / "model.safetensors").items()}
    save_file(state, WEIGHTS / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((WEIGHTS / "config.json").read_text())
    config["torch_dtype"] = "float16"
    (WEIGHTS / "config.json").write_text(json.dumps(config, indent=2))
    (WEIGHTS / "pieces.json").write_text((run / "data" / "pieces.json").read_text())
    size = sum(f.stat().st_size for f in WEIGHTS.iterdir())
    print(f"wrote {WEIGHTS} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
