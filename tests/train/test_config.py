"""Bad run configs and bad training input: one-line errors naming the fix."""

from __future__ import annotations

import os

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


def test_paths_are_relative_to_the_toml_folder(tmp_path, data_dir, monkeypatch):
    conf = tmp_path / "conf"
    (conf / "pretrained").mkdir(parents=True)
    toml = conf / "run.toml"
    rel_data = os.path.relpath(data_dir, conf)
    toml.write_text(f'data = "{rel_data}"\nout = "run"\ninit = "pretrained"\n')
    cfg = load_train_config(str(toml))
    assert (cfg.data, cfg.out, cfg.init) == (str(conf / rel_data), str(conf / "run"), str(conf / "pretrained"))
    toml.write_text(f'data = "{data_dir}"\nout = "{tmp_path / "abs"}"\ninit = "smollm2"\n')
    cfg = load_train_config(str(toml))
    assert (cfg.data, cfg.out, cfg.init) == (str(data_dir), str(tmp_path / "abs"), "smollm2")  # a model name stays

    # The whole command, run from another folder: the run folder appears beside the TOML file.
    toml.write_text(f'data = "{rel_data}"\nout = "run"\nseq_len = 32\nbatch_size = 8\nlog_every = 1\ncompile = false\n'
                    "[model]\ndim = 32\nn_layers = 1\nn_heads = 4\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "text", "--config", os.path.relpath(toml, elsewhere), "--max-steps", "2"]) == 0
    assert (conf / "run" / "model.safetensors").is_file() and not any(elsewhere.iterdir())
