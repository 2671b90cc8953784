"""Bit-exact resume, atomic checkpoints (killed or disk-full writes), shape checks, schedule."""

from __future__ import annotations

import errno

import pytest
from safetensors.torch import load_file

from luoxia.core.errors import InvalidParameterError, UserFileError
from luoxia.train import resume
from luoxia.train.loop import read_metrics, train
from luoxia.train.schedule import WarmupCosine
from tiny_corpus import tiny_config

QUIET = dict(log=lambda _: None)


def _tensors(ckpt):
    return {**load_file(ckpt / "model.safetensors"), **load_file(ckpt / "state.safetensors")}


def test_resume_is_bit_exact(tmp_path, data_dir):
    straight = train(tiny_config(data_dir, tmp_path / "a"), **QUIET)
    assert straight["finished"] and straight["loss"] < 5.0
    first = train(tiny_config(data_dir, tmp_path / "b"), stop_at=10, **QUIET)
    assert not first["finished"] and resume.latest(tmp_path / "b").name == "step_000010"
    assert not (tmp_path / "b" / "config.json").exists()  # not exported before the end
    train(tiny_config(data_dir, tmp_path / "b"), **QUIET)
    a, b = _tensors(tmp_path / "a/checkpoints/step_000020"), _tensors(tmp_path / "b/checkpoints/step_000020")
    assert a.keys() == b.keys()
    for k in a:
        if k != "rng.torch":
            assert a[k].equal(b[k]), k
    losses = lambda run: [r["loss"] for r in read_metrics(tmp_path / run / "metrics.jsonl") if "loss" in r]
    assert losses("a") == losses("b") and len(losses("a")) == 4
    assert (tmp_path / "a" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_killed_or_failed_writes_leave_loadable_checkpoints(tmp_path, data_dir, monkeypatch):
    cfg = tiny_config(data_dir, tmp_path / "run", max_steps=20, checkpoint_every=5)
    train(cfg, stop_at=5, **QUIET)
    # A kill in the middle of a write leaves only a temporary folder: ignored, then cleaned up.
    stale = tmp_path / "run/checkpoints/.step_000010.abc.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\x00" * 10)
    assert resume.latest(tmp_path / "run").name == "step_000005"
    # Disk full while writing the next checkpoint: one-line error, nothing partial visible.
    import safetensors.torch

    real = safetensors.torch.save_file

    def full(tensors, path, *a, **k):
        if str(path).endswith("state.safetensors"):
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(UserFileError, match="No space left on device.*free disk space"):
        train(cfg, stop_at=10, **QUIET)
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    ckpts = sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir())
    assert ckpts == ["step_000005"]  # the stale temporary was removed, the failed one never appeared
    resume.load(resume.latest(tmp_path / "run"))
    assert train(cfg, **QUIET)["finished"]


def test_resume_from_another_shape_is_refused(tmp_path, data_dir):
    train(tiny_config(data_dir, tmp_path / "run"), stop_at=10, **QUIET)
    cfg = tiny_config(data_dir, tmp_path / "run")
    cfg.model.dim = 64
    with pytest.raises(InvalidParameterError, match="another shape.*dim 32.*dim 64"):
        train(cfg, **QUIET)


def test_schedule_warmup_then_cosine():
    s = WarmupCosine(lr=1.0, min_lr=0.1, warmup_steps=10, total_steps=110)
    assert s(0) == pytest.approx(0.1) and s(9) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.55) and s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)
