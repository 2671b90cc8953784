"""torchrun with 2 CPU processes (gloo): DDP and FSDP loss curves match the single-process run, and an
FSDP run resumes a single-process checkpoint and gathers its own into the same layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from luoxia.train.loop import read_metrics, train
from tiny_corpus import tiny_config

RUN_TOML = """data = "{data}"
out = "{out}"
parallel = "{parallel}"
seq_len = 32
batch_size = 8
max_steps = 10
lr = 3e-3
min_lr = 3e-4
warmup_steps = 3
eval_every = 5
eval_batches = 2
checkpoint_every = 5
log_every = 1
compile = false
[model]
dim = 32
n_layers = 2
n_heads = 4
n_kv_heads = 2
"""


def _single(data_dir, out, **kw):
    return tiny_config(data_dir, out, max_steps=10, eval_every=5, log_every=1, checkpoint_every=5, **kw)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("single") / "run"
    train(_single(data_dir, out), log=lambda _: None)
    return out


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_single_process(tmp_path, data_dir, single_run, parallel):
    out = tmp_path / parallel
    if parallel == "fsdp":  # start from a single-process checkpoint: FSDP loads it into its shards
        train(_single(data_dir, out), stop_at=5, log=lambda _: None)
    toml = tmp_path / "run.toml"
    toml.write_text(RUN_TOML.format(data=data_dir, out=out, parallel=parallel))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "luoxia.cli.main", "train", "text", "--config", str(toml)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "×2" in proc.stderr and json.loads(proc.stdout.strip().splitlines()[-1])["finished"]

    rows, one_rows = read_metrics(out / "metrics.jsonl"), read_metrics(single_run / "metrics.jsonl")
    for key in ("loss", "val_loss"):
        a = [r[key] for r in rows if key in r]
        b = [r[key] for r in one_rows if key in r]
        assert len(a) == len(b) > 1
        assert a == pytest.approx(b, rel=1e-3), key
    # The checkpoint (gathered from the shards under FSDP) and the exported model hold the same tensors.
    for name in ("checkpoints/step_000010/model.safetensors", "checkpoints/step_000010/state.safetensors",
                 "model.safetensors"):
        ours, theirs = load_file(out / name), load_file(single_run / name)
        assert ours.keys() == theirs.keys()
        for k in ours:
            if not k.startswith("rng."):
                torch.testing.assert_close(ours[k].float(), theirs[k].float(), rtol=1e-3, atol=1e-4, msg=k)
