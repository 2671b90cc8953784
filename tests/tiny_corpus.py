"""A tiny mixed-language corpus and tiny run configs, written by the data and training tests themselves."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = [
    "river", "moon", "light", "cloud", "mountain", "wind", "autumn", "spring", "rain", "snow", "bird",
    "flower", "tree", "stone", "road", "night", "morning", "lamp", "boat", "bridge", "field", "village",
    "song", "letter", "friend",
]
HANZI = "床前明月光疑是地上霜举头望低思故乡落霞与孤鹜齐飞秋水共长天一色白日依山尽黄河入海流"


def make_corpus(directory: Path, n_docs: int = 120, seed: int = 0) -> Path:
    """Text files of random English sentences and Chinese lines (no accidental duplicates)."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n_docs):
        if i % 2:
            lines = ["".join(rng.choice(HANZI) for _ in range(7)) + "，" + "".join(rng.choice(HANZI) for _ in range(7))
                     + "。" for _ in range(4)]
        else:
            lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12))).capitalize() + "."
                     for _ in range(4)]
        (directory / f"doc{i:03d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def tiny_config(data_dir: Path, out: Path, **overrides):
    """A run config for a 2-layer, 32-wide model on 8 × 32-token batches, eager (compiling costs more than it saves)."""
    from luoxia.train.config import ModelSpec, TrainConfig

    base = dict(data=str(data_dir), out=str(out), seq_len=32, batch_size=8, max_steps=20, lr=3e-3, min_lr=3e-4,
                warmup_steps=3, eval_every=10, eval_batches=2, checkpoint_every=10, log_every=5, compile=False,
                model=ModelSpec(dim=32, n_layers=2, n_heads=4, n_kv_heads=2))
    return TrainConfig(**{**base, **overrides})
