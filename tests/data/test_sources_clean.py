"""Sources, cleaning, filters and dedup, one rule at a time."""

from __future__ import annotations

import json

import pytest

from luoxia.core.errors import InputEncodingError, UserFileError
from luoxia.data.clean import clean_text, html_to_text, nfkc, strip_ansi
from luoxia.data.dedup import DedupConfig, Deduplicator
from luoxia.data.filters import FilterConfig, check, units
from luoxia.data.sources import iter_documents, list_files, read_documents

FORTUNE = "\x1b[32m《静夜思》\x1b[m\n\x1b[33m作者：李白\x1b[m\n床前明月光，疑是地上霜。\n%\n第二条\n%\n"


def test_fortune_entries_and_ansi(tmp_path):
    f = tmp_path / "tang"
    f.write_text(FORTUNE, encoding="utf-8")
    docs = list(read_documents(f))
    assert [d.text for d in docs][1] == "第二条\n"
    assert clean_text(docs[0].text) == "《静夜思》\n作者：李白\n床前明月光，疑是地上霜。"


def test_jsonl_html_md_parquet(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"body": "one"}) + "\n\n" + json.dumps({"body": "two"}) + "\n")
    (tmp_path / "b.html").write_text("<html><head><title>t</title></head><body><p>Hi &amp; bye</p>"
                                     "<script>var x;</script><div>next</div></body></html>")
    (tmp_path / "c.md").write_text("# Title\n\ntext\n")
    (tmp_path / "c.md.dat").write_bytes(b"\x00\x01")  # an index file in a folder: passed over
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["p1", "p2", None]}), tmp_path / "d.parquet")
    docs = list(iter_documents(list_files([tmp_path]), text_field="body"))
    texts = [clean_text(d.text, is_html=d.html) for d in docs]
    assert texts == ["one", "two", "Hi & bye\n\nnext", "# Title\n\ntext", "p1", "p2"]


def test_clean_rules():
    assert strip_ansi("\x1b[1;31mred\x1b[0m \x1b]0;title\x07x") == "red x"
    assert nfkc("ＡＢＣ１２３，好！") == "ABC123，好！"  # full-width letters folded, Chinese punctuation kept
    assert clean_text("a\u200bb\x07c  \t d\r\n\n\n\ne ") == "abc d\n\ne"
    assert html_to_text("<p>a</p><style>p{}</style><p>b</p>") == "a\n\nb"


def test_filters_are_chinese_aware():
    cfg = FilterConfig()
    assert units("Hello, 世界 ok") == ["Hello,", "世", "界", "ok"]
    assert check("床前明月光，疑是地上霜。", cfg) is None
    assert check("短", cfg) == "too_short"
    assert check("123 456 789 101 112 131 415", cfg) == "digit_ratio"
    assert check("### ### ### ### ### ###", cfg) == "symbol_ratio"
    assert check("same line here\nsame line here\nsame line here\nother line", cfg) == "duplicate_lines"
    assert check("a b c d e f " * 10, cfg) == "repeated_ngrams"
    assert check("Please enable JavaScript to view this page properly today", cfg) == "bad_phrase"
    assert check("短", FilterConfig(min_units=1)) is None


def test_dedup_exact_and_near():
    d = Deduplicator(DedupConfig(threshold=0.7))
    base = "落霞与孤鹜齐飞，秋水共长天一色。渔舟唱晚，响穷彭蠡之滨；雁阵惊寒，声断衡阳之浦。"
    assert d.check(base) is None
    assert d.check(base.replace("，", "， ")) == "exact_duplicate"  # whitespace folded
    assert d.check(base[:-1] + "！") == "near_duplicate"
    assert d.check("The quick brown fox jumps over the lazy dog, again and again.") is None


def test_bad_files(tmp_path, monkeypatch):
    bad = tmp_path / "gbk.txt"
    bad.write_bytes("床前明月光".encode("gb18030"))
    with pytest.raises(InputEncodingError, match="not UTF-8.*--on-error skip"):
        list(read_documents(bad))
    with pytest.raises(UserFileError, match="does not exist"):
        list_files([tmp_path / "missing"])
    import luoxia.data.sources as sources

    def denied(path):
        raise PermissionError(13, "Permission denied")
        yield  # pragma: no cover

    monkeypatch.setattr(sources, "_lines", denied)
    with pytest.raises(UserFileError, match="permission denied"):
        list(read_documents(tmp_path / "x.txt"))
