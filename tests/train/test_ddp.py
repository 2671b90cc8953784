"""torchrun with 2 CPU processes (gloo): the loss curve matches the single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from luoxia.train.loop import read_metrics, train
from tiny_corpus import tiny_config

RUN_TOML = """data = "{data}"
out = "{out}"
seq_len = 32
batch_size = 8
max_steps = 10
lr = 3e-3
min_lr = 3e-4
warmup_steps = 3
eval_every = 5
eval_batches = 2
checkpoint_every = 10
log_every = 2
[model]
dim = 32
n_layers = 2
n_heads = 4
n_kv_heads = 2
"""


def test_two_process_loss_curve_matches_single_process(tmp_path, data_dir):
    toml = tmp_path / "run.toml"
    toml.write_text(RUN_TOML.format(data=data_dir, out=tmp_path / "ddp"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "luoxia.cli.main", "train", "text", "--config", str(toml)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "×2" in proc.stderr and json.loads(proc.stdout.strip().splitlines()[-1])["finished"]

    single = tiny_config(data_dir, tmp_path / "single", max_steps=10, eval_every=5, log_every=2)
    train(single, log=lambda _: None)
    ddp_rows, one_rows = read_metrics(tmp_path / "ddp/metrics.jsonl"), read_metrics(tmp_path / "single/metrics.jsonl")
    for key in ("loss", "val_loss"):
        a = [r[key] for r in ddp_rows if key in r]
        b = [r[key] for r in one_rows if key in r]
        assert len(a) == len(b) > 1
        assert a == pytest.approx(b, rel=1e-3), key
