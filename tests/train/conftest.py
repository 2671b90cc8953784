"""A prepared tiny data set for the training tests (see tests/tiny_corpus.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_corpus import make_corpus


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    from luoxia.data.prepare import DataConfig, prepare

    root = tmp_path_factory.mktemp("train_data")
    corpus = make_corpus(root / "corpus")
    prepare(DataConfig(inputs=[str(corpus)], out=str(root / "data"), tokenizer="bpe", vocab_size=320,
                       val_fraction=0.1), log=lambda _: None)
    return root / "data"
