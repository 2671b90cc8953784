"""Bad run configs and bad training input: one-line errors naming the fix."""

from __future__ import annotations

import pytest

from luoxia.cli.main import main
from luoxia.core.errors import InvalidParameterError, UserFileError
from luoxia.train.config import load_train_config
from luoxia.train.loop import train
from tiny_corpus import tiny_config


def _run(tmp_path, text, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text(text)
    assert main(["train", "text", "--config", str(toml)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("luoxia: error: ")
    return err


def test_config_errors_are_one_line(tmp_path, capsys, data_dir):
    ok = f'data = "{data_dir}"\nout = "{tmp_path / "o"}"\n'
    assert "unknown key 'learning_rate'" in _run(tmp_path, ok + "learning_rate = 1\n", capsys)
    assert "unknown key 'layers' in" in _run(tmp_path, ok + "[model]\nlayers = 2\n", capsys)
    assert "batch_size must be at least 1" in _run(tmp_path, ok + "batch_size = 0\n", capsys)
    assert "seq_len must be int" in _run(tmp_path, ok + 'seq_len = "long"\n', capsys)
    assert "not valid TOML" in _run(tmp_path, ok + "= 3\n", capsys)
    assert "has no manifest.json" in _run(tmp_path, f'data = "{tmp_path}"\nout = "x"\n', capsys)
    assert "no `data`" in _run(tmp_path, 'out = "x"\n', capsys)


def test_impossible_values(tmp_path, data_dir):
    with pytest.raises(InvalidParameterError, match="multiple of micro_batch_size"):
        train(tiny_config(data_dir, tmp_path / "a", micro_batch_size=3), log=lambda _: None)
    with pytest.raises(InvalidParameterError, match="fewer than seq_len"):
        train(tiny_config(data_dir, tmp_path / "b", seq_len=100_000), log=lambda _: None)
    with pytest.raises(UserFileError, match="not found"):
        load_train_config(str(tmp_path / "missing.toml"))
