"""The whole `luoxia data prepare` pipeline: accounting, determinism, tokenizers, bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from luoxia.cli.main import main
from luoxia.core.errors import InputEncodingError, InvalidParameterError
from luoxia.data.bpe import train_tokenizer
from luoxia.data.prepare import DataConfig, prepare
from luoxia.data.shards import TokenData


def _digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.bin"))}


def test_prepare_accounts_for_every_document(tmp_path, corpus_dir):
    (corpus_dir.parent / "extra").mkdir(exist_ok=True)
    extra = corpus_dir.parent / "extra"
    (extra / "dup.txt").write_text((corpus_dir / "doc000.txt").read_text())  # an exact duplicate
    (extra / "short.txt").write_text("hi")
    report = prepare(DataConfig(inputs=[str(corpus_dir), str(extra)], out=str(tmp_path / "a"), tokenizer="bpe",
                                vocab_size=300), log=lambda _: None)
    assert report.docs_in == 122
    assert report.removed["exact_duplicate"].docs == 1 and report.removed["too_short"].docs == 1
    assert report.docs_out + sum(r.docs for r in report.removed.values()) == report.docs_in
    saved = json.loads((tmp_path / "a" / "report.json").read_text())
    assert saved["version"] == 1 and saved["docs_out"] == 120
    assert "exact_duplicate" in (tmp_path / "a" / "report.md").read_text()
    data = TokenData.open(tmp_path / "a")
    train, val = data.split("train"), data.split("val")
    assert data.manifest["dtype"] == "uint16" and data.manifest["docs"] == {"train": 114, "val": 6}
    tok = data.tokenizer()
    eos = tok.eos_ids[0]
    assert int((train[0] == eos).sum()) == 114 and int((val[0] == eos).sum()) == 6
    first = train[0][: int(np.argmax(train[0] == eos))]
    assert tok.decode(first.tolist()) == (corpus_dir / "doc000.txt").read_text().strip()
    # Deterministic: the same input gives the same shards, byte for byte.
    prepare(DataConfig(inputs=[str(corpus_dir), str(extra)], out=str(tmp_path / "b"), tokenizer="bpe",
                       vocab_size=300), log=lambda _: None)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_char_tokenizer_is_one_token_per_character_with_byte_fallback():
    tok = train_tokenizer(["床前明月光，疑是地上霜。", "hello"], kind="char", vocab_size=0)
    assert len(tok.encode("明月光")) == 3
    assert tok.decode(tok.encode("齉 new 🙂")) == "齉 new 🙂"  # unseen characters fall back to bytes
    with pytest.raises(InvalidParameterError, match="supports only .* use --vocab-size"):
        train_tokenizer(["abc"], kind="char", vocab_size=1000)


def test_reuse_tokenizer_for_fine_tuning_data(tmp_path, corpus_dir):
    prepare(DataConfig(inputs=[str(corpus_dir)], out=str(tmp_path / "a"), tokenizer="char", vocab_size=0),
            log=lambda _: None)
    prepare(DataConfig(inputs=[str(corpus_dir / "doc001.txt"), str(corpus_dir / "doc005.txt")],
                       val_inputs=[str(corpus_dir / "doc003.txt")], out=str(tmp_path / "b"),
                       tokenizer=str(tmp_path / "a" / "tokenizer.json")), log=lambda _: None)
    a, b = TokenData.open(tmp_path / "a"), TokenData.open(tmp_path / "b")
    assert b.manifest["docs"] == {"train": 2, "val": 1}  # the --val input is held out whole
    assert a.vocab_size == b.vocab_size
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()


def test_bad_input_is_one_line(tmp_path, corpus_dir, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("\n\n  \n")
    with pytest.raises(InvalidParameterError, match="empty corpus"):
        prepare(DataConfig(inputs=[str(empty)], out=str(tmp_path / "o1")), log=lambda _: None)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "good.txt").write_text((corpus_dir / "doc000.txt").read_text())
    (mixed / "bad.txt").write_bytes("落霞与孤鹜齐飞，秋水共长天一色。".encode("gb18030"))
    with pytest.raises(InputEncodingError):
        prepare(DataConfig(inputs=[str(mixed)], out=str(tmp_path / "o2"), vocab_size=257), log=lambda _: None)
    report = prepare(DataConfig(inputs=[str(mixed)], out=str(tmp_path / "o3"), on_error="skip", tokenizer="char",
                                vocab_size=0), log=lambda _: None)
    assert report.docs_out == 1 and report.skipped_files[0]["path"].endswith("bad.txt")
    assert "bad.txt" in (tmp_path / "o3" / "report.md").read_text()

    toml = tmp_path / "data.toml"
    toml.write_text('inputs = ["x"]\nout = "y"\n[filters]\nmin_unitz = 3\n')
    assert main(["data", "prepare", "--config", str(toml)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'min_unitz'" in err
    assert main(["data", "prepare", str(corpus_dir), "--out", str(tmp_path / "o4"), "--vocab-size", "99999"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("luoxia: error: the corpus supports only")
