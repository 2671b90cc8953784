"""`luoxia data prepare`: the whole data pipeline in three streamed passes.

    1. read → clean → filter → dedup  →  out/clean.jsonl and out/report.{json,md}
    2. train the tokenizer on clean.jsonl (or reuse a given one)  →  out/tokenizer.json
    3. tokenize clean.jsonl into shards  →  out/{train,val}_NNN.bin and out/manifest.json

Only the dedup index (hashes and MinHash signatures) grows with the corpus; documents stream.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from luoxia.core import atomic
from luoxia.core.errors import InvalidParameterError, LuoxiaError, UserFileError
from luoxia.data.clean import clean_text
from luoxia.data.dedup import DedupConfig, Deduplicator
from luoxia.data.filters import FilterConfig, check
from luoxia.data.report import Report
from luoxia.data.sources import Skipped, iter_documents, list_files
from luoxia.text.tokenizer import Tokenizer


@dataclasses.dataclass
class DataConfig:
    inputs: list[str] = dataclasses.field(default_factory=list)
    val_inputs: list[str] = dataclasses.field(default_factory=list)  # held out whole (then val_fraction is unused)
    out: str = ""
    text_field: str = "text"  # the text key of .jsonl records and .parquet columns
    on_error: str = "fail"  # "fail": an unreadable or non-UTF-8 file stops; "skip": it is reported and left out
    simplified: bool = False  # Traditional → Simplified Chinese (needs opencc)
    tokenizer: str = "bpe"  # "bpe", "char", or an existing tokenizer.json / model folder to reuse
    vocab_size: int = 8000  # for "char", 0 takes every character
    min_frequency: int = 0  # 0: 2 for bpe, 1 for char
    val_fraction: float = 0.05
    shard_tokens: int = 100_000_000
    filters: FilterConfig = dataclasses.field(default_factory=FilterConfig)
    dedup: DedupConfig = dataclasses.field(default_factory=DedupConfig)

    def validate(self) -> None:
        if not self.inputs:
            raise InvalidParameterError("no inputs; name the files or folders to prepare")
        if not self.out:
            raise InvalidParameterError("no output folder; pass --out DIR")
        if self.on_error not in ("fail", "skip"):
            raise InvalidParameterError(f"on_error must be fail or skip, got {self.on_error!r}")
        if self.vocab_size < 0:
            raise InvalidParameterError(f"vocab_size must be positive, got {self.vocab_size}")
        if not 0 < self.dedup.threshold <= 1:
            raise InvalidParameterError(f"dedup threshold must be in (0, 1], got {self.dedup.threshold}")


def _clean_docs(path: Path, with_split: bool = False) -> Iterator:
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            yield (record["text"], record.get("split")) if with_split else record["text"]


def load_tokenizer_from(spec: str) -> Tokenizer:
    from luoxia.text.formats.hf import read_tokenizer

    path = Path(spec).expanduser()
    if path.is_file():
        path = path.parent
    if not (path / "tokenizer.json").is_file():
        from luoxia.core.registry import resolve

        try:
            path = resolve(spec)
        except LuoxiaError:
            raise UserFileError(f"tokenizer {spec!r} is neither bpe, char, a tokenizer.json nor a model folder; "
                                "give one of those") from None
        if path.is_file():  # a GGUF model
            from luoxia.text.loader import load_bundle

            return load_bundle(str(path))[0].tokenizer
    return read_tokenizer(path)


def prepare(config: DataConfig, log=print) -> Report:
    config.validate()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    files = list_files(config.inputs + config.val_inputs)
    val_files = {p.resolve() for p in list_files(config.val_inputs)} if config.val_inputs else set()
    report = Report(inputs=[str(i) for i in config.inputs + config.val_inputs], files=len(files))
    if not files:
        raise UserFileError(f"no readable files in {', '.join(map(str, config.inputs))}; "
                            "give .txt, .md, .jsonl, .parquet, .html or fortune files")
    t0 = time.perf_counter()
    dedup = Deduplicator(config.dedup) if config.dedup.exact or config.dedup.near else None
    skipped: list[Skipped] = []
    clean_path = out / "clean.jsonl"
    with atomic.atomic_path(clean_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for doc in iter_documents(files, config.text_field, config.on_error, skipped):
            report.docs_in += 1
            report.chars_in += len(doc.text)
            text = clean_text(doc.text, is_html=doc.html, simplified=config.simplified)
            rule = "empty" if not text else check(text, config.filters)
            if rule is None and dedup is not None:
                rule = dedup.check(text)
            if rule is not None:
                report.remove(rule, text or doc.text, doc.source)
                continue
            report.docs_out += 1
            report.chars_out += len(text)
            record = {"text": text, "source": doc.source}
            if val_files:
                record["split"] = "val" if Path(doc.source.rsplit(":", 1)[0]).resolve() in val_files else "train"
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    report.skipped_files = [dataclasses.asdict(s) for s in skipped]
    report.save(out)
    log(f"cleaned in {time.perf_counter() - t0:.1f} s: {report.summary()}")
    if report.docs_out == 0:
        where = "no documents were read" if report.docs_in == 0 else "every document was removed"
        raise InvalidParameterError(f"empty corpus: {where} (see {out / 'report.md'}); "
                                    "check the inputs or loosen the filter thresholds")

    t0 = time.perf_counter()
    if config.tokenizer in ("bpe", "char"):
        from luoxia.data.bpe import train_tokenizer

        tokenizer = train_tokenizer(_clean_docs(clean_path), config.tokenizer, config.vocab_size, config.min_frequency)
        report.tokenizer = {"kind": config.tokenizer, "vocab_size": tokenizer.vocab_size}
    else:
        tokenizer = load_tokenizer_from(config.tokenizer)
        report.tokenizer = {"kind": "given", "from": config.tokenizer, "vocab_size": tokenizer.vocab_size}
    tokenizer.save(out)
    log(f"tokenizer ({report.tokenizer['kind']}, {tokenizer.vocab_size:,} tokens) in {time.perf_counter() - t0:.1f} s")

    from luoxia.data.shards import write_shards

    t0 = time.perf_counter()
    manifest = write_shards(_clean_docs(clean_path, with_split=True), tokenizer, out, config.val_fraction,
                            config.shard_tokens)
    report.shards = {"dtype": manifest["dtype"], "train_tokens": manifest["tokens"]["train"],
                     "val_tokens": manifest["tokens"]["val"], "train_docs": manifest["docs"]["train"],
                     "val_docs": manifest["docs"]["val"]}
    report.save(out)
    log(f"shards in {time.perf_counter() - t0:.1f} s: {manifest['tokens']['train']:,} train tokens, "
        f"{manifest['tokens']['val']:,} val tokens ({manifest['dtype']}) in {os.fspath(out)}")
    return report
