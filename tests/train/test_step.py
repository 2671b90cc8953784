"""The shared training step: compiled forward + loss matches eager; a failing compiler falls back to eager."""

from __future__ import annotations

import pytest
import torch

from luoxia.train.loop import read_metrics, train
from luoxia.train.step import compiled, lm_loss
from tiny_corpus import tiny_config


def test_compiled_training_matches_eager(tmp_path, data_dir):
    runs = {}
    for compile_ in (False, True):
        out = tmp_path / f"compile_{compile_}"
        train(tiny_config(data_dir, out, max_steps=6, log_every=1, eval_every=0, compile=compile_), log=lambda _: None)
        runs[compile_] = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert len(runs[True]) == 6 and runs[True] == pytest.approx(runs[False], rel=1e-4)


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken(fn):
        def call(*args):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    notes: list[str] = []
    loss_fn = compiled(lm_loss, notes.append)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 10))
    x = torch.randint(0, 10, (2, 5))
    assert loss_fn(model, x).item() == pytest.approx(lm_loss(model, x).item())
    assert len(notes) == 1 and "no working C++ compiler" in notes[0] and "more detail" not in notes[0]
    loss_fn(model, x)  # later calls go straight to eager, with no second note
    assert len(notes) == 1
    with pytest.raises(IndexError):  # a real error is raised, not hidden
        compiled(lm_loss, notes.append)(model, torch.full((2, 5), 99))
