"""Corpus → token shards (split by piece, transposed) → `luoxia train music` → a loadable music model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from music_fixtures import chorale_like

from luoxia.core.errors import InvalidParameterError
from luoxia.data.shards import TokenData
from luoxia.music import tokens
from luoxia.music.corpus import CorpusConfig, load_music_config, prepare, read_corpus, training_texts
from luoxia.music.pipeline import MusicModel
from luoxia.music.score import midi_bytes


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    for i in range(5):
        (folder / f"piece{i}.mid").write_bytes(midi_bytes(chorale_like(2 + i).transpose(i)))
    (folder / "readme.txt").write_text("not music")  # ignored: not a music file name
    return folder


def test_split_by_piece_and_transpositions(corpus):
    pieces = list(read_corpus(str(corpus)))
    assert [name for name, _ in pieces] == [f"piece{i}" for i in range(5)]
    docs = list(training_texts(pieces, CorpusConfig(source=str(corpus), transpose=[-1, 2], val_every=5)))
    assert [split for _, split in docs].count("val") == 1  # piece4, once, in its own key
    assert len(docs) == 4 * 4 + 1
    first_keys = [text.split()[1] for text, split in docs if split == "train"][:4]
    assert first_keys == ["Key_B_major", "Key_C_major", "Key_C#_major", "Key_D_major"]


def test_prepare_writes_shards_the_loop_reads(corpus, tmp_path):
    manifest = prepare(CorpusConfig(source=str(corpus), transpose=[0, 1], val_every=5), tmp_path / "data")
    data = TokenData.open(tmp_path / "data")
    assert data.vocab_size == len(tokens.VOCAB) and manifest["docs"] == {"train": 8, "val": 1}
    val = np.concatenate(data.split("val"))
    assert val[0] == tokens.BOS and val[-1] == tokens.EOS
    piece, _ = tokens.decode(val.tolist())
    assert piece.notes == chorale_like(6).transpose(4).notes
    assert json.loads((tmp_path / "data" / "pieces.json").read_text())["held_out"] == ["piece4"]


def test_train_music_end_to_end(corpus, tmp_path, run_luoxia):
    config = tmp_path / "run.toml"
    config.write_text(f"""data = "data"\nout = "run"\nseq_len = 32\nbatch_size = 2\nmax_steps = 2\nwarmup_steps = 1
eval_every = 0\neval_batches = 1\ncheckpoint_every = 0\ncompile = false\n[model]\ndim = 32\nn_layers = 1\nn_heads = 2
[corpus]\nsource = "{corpus}"\ntranspose = [0, 0]\nval_every = 5\n""")
    code, out, err = run_luoxia("train", "music", "--config", config)
    assert code == 0, err
    assert "prepared" in out and json.loads(out.splitlines()[-1])["finished"] is True
    model = MusicModel.load(str(tmp_path / "run"))
    assert model.context == 32 and (tmp_path / "run" / "loss.png").is_file()
    assert model.generate(bars=1, seed=0).end <= 16


def test_config_errors(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('data = "d"\nout = "o"\n[corpus]\ntranspose = [2, 5]\n')
    with pytest.raises(InvalidParameterError, match="transpose"):
        load_music_config(config)
    config.write_text('data = "d"\nout = "o"\n[corpus]\nsorce = "bach"\n')
    with pytest.raises(InvalidParameterError, match="sorce"):
        load_music_config(config)
