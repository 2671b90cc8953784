"""The data tests' corpus (see tests/tiny_corpus.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_corpus import make_corpus


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))
