"""The embedded chorale model: it ships in the package, loads offline and writes a short labelled piece."""

from __future__ import annotations

import json

from luoxia.eval.music import scale_consistency
from luoxia.music import tokens
from luoxia.music.pipeline import WEIGHTS, MusicModel
from luoxia.safety.labels import read


def test_embedded_model_is_small_and_complete():
    folder = WEIGHTS / "chorale"
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size <= 20 * 2**20
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == len(tokens.VOCAB)


def test_embedded_model_composes_a_labelled_piece(tmp_path):
    from luoxia.cli.main import main

    model = MusicModel.load()
    piece = model.generate(bars=2, seed=0)
    assert piece.notes and piece.end <= 2 * piece.bar_ticks
    assert scale_consistency(piece) >= 0.8  # a trained model stays mostly in one key; random tokens do not
    assert main(["music", "--bars", "1", "--seed", "1", "--audio", "numpy", "-o", str(tmp_path / "m.mid")]) == 0
    assert read(tmp_path / "m.mid").label["AIGC"]["Label"] == "1"
