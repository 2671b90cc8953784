"""Raw documents from files and folders, streamed one at a time.

    .txt .md        one document per file (a file over `MAX_DOC_CHARS` is cut at blank lines)
    .jsonl          one document per line, its text in `text_field`
    .parquet        one document per row of the `text_field` column (needs pyarrow)
    .html .htm      one document per file, tags kept for `clean.html_to_text`
    fortune files   entries separated by lines holding only "%" (Debian's fortunes; no suffix)

Folders are walked in sorted order, so the documents always come in the same order. Files are read
as UTF-8; a file that is not (or cannot be read) raises a one-line error, or with
`on_error="skip"` is listed in `skipped` and left out — never silently.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

from luoxia.core.errors import InputEncodingError, UserFileError

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
KNOWN_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".jsonl", ".parquet", ".fortune"}
MAX_DOC_CHARS = 1 << 20  # cut longer plain-text files at blank lines, so memory stays bounded


@dataclasses.dataclass
class Document:
    text: str
    source: str  # "path" or "path:entry"
    html: bool = False


@dataclasses.dataclass
class Skipped:
    path: str
    reason: str


def list_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """The files to read, in a fixed order; folders are walked, symlinked duplicates read once.

    In a folder only known suffixes and suffix-less files (fortune files) are taken, so indexes such
    as fortune's `.dat` files are passed over; a file named explicitly is always taken.
    """
    files: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item).expanduser()
        if not path.exists():
            raise UserFileError(f"input {path} does not exist; give existing files or folders")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            candidates = [p for p in found if p.suffix.lower() in KNOWN_SUFFIXES or not p.suffix]
        else:
            candidates = [path]
        for p in candidates:
            real = p.resolve()
            if real not in seen:
                seen.add(real)
                files.append(p)
    return files


def file_format(path: Path) -> str:
    """"text", "html", "jsonl", "parquet" or "fortune" (a suffix-less file with "%" separator lines)."""
    suffix = path.suffix.lower()
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in (".jsonl", ".parquet"):
        return suffix[1:]
    if suffix == ".fortune":
        return "fortune"
    if not suffix:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if head.startswith(b"%\n") or b"\n%\n" in head:
            return "fortune"
    return "text"


def read_documents(path: Path, text_field: str = "text") -> Iterator[Document]:
    """The documents of one file; raises UserFileError / InputEncodingError on unreadable input."""
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            yield from _parquet(path, text_field)
        elif fmt == "jsonl":
            yield from _jsonl(path, text_field)
        elif fmt == "fortune":
            yield from _fortune(path)
        else:
            yield from _text(path, html=fmt == "html")
    except UnicodeDecodeError as e:
        raise InputEncodingError(
            f"{path} is not UTF-8 (byte {e.start} of a line: {e.object[e.start:e.start + 4]!r}); "
            "convert it (e.g. `iconv -f GB18030 -t UTF-8`) or pass --on-error skip"
        ) from None
    except PermissionError:
        raise UserFileError(f"cannot read {path}: permission denied; fix its permissions or leave it out") from None
    except IsADirectoryError:
        raise UserFileError(f"cannot read {path}: it is a folder") from None
    except OSError as e:
        raise UserFileError(f"cannot read {path} ({e.strerror or e}); fix the file or leave it out") from None


def iter_documents(files: list[Path], text_field: str = "text", on_error: str = "fail",
                   skipped: list[Skipped] | None = None) -> Iterator[Document]:
    """Documents of all `files`; with on_error="skip", bad files go to `skipped` (documents already
    read from such a file are kept: the file is read as a stream)."""
    from luoxia.core.errors import LuoxiaError

    for path in files:
        try:
            yield from read_documents(path, text_field)
        except LuoxiaError as e:
            if on_error != "skip":
                raise
            if skipped is not None:
                skipped.append(Skipped(str(path), str(e)))


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8", newline=None) as f:
        yield from f


def _text(path: Path, html: bool) -> Iterator[Document]:
    buf: list[str] = []
    size, part = 0, 0
    for line in _lines(path):
        buf.append(line)
        size += len(line)
        if size >= MAX_DOC_CHARS and not line.strip() and not html:
            yield Document("".join(buf), f"{path}:{part}")
            buf, size, part = [], 0, part + 1
    if buf:
        yield Document("".join(buf), str(path) if part == 0 else f"{path}:{part}", html=html)


def _fortune(path: Path) -> Iterator[Document]:
    buf: list[str] = []
    n = 0
    for line in _lines(path):
        if line.rstrip("\r\n") == "%":
            if buf:
                yield Document("".join(buf), f"{path}:{n}")
            buf, n = [], n + 1
        else:
            buf.append(line)
    if buf:
        yield Document("".join(buf), f"{path}:{n}")


def _jsonl(path: Path, text_field: str) -> Iterator[Document]:
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise UserFileError(f"{path} line {n} is not JSON ({e}); fix the line or leave the file out") from None
        text = record.get(text_field) if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise UserFileError(f"{path} line {n} has no string field {text_field!r}; pass --text-field NAME")
        yield Document(text, f"{path}:{n}")


def _parquet(path: Path, text_field: str) -> Iterator[Document]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserFileError(f"reading {path} needs pyarrow; `pip install pyarrow` or convert it to .jsonl") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise UserFileError(f"{path} is not a readable parquet file ({e}); fix or leave it out") from None
    if text_field not in pf.schema_arrow.names:
        raise UserFileError(f"{path} has no column {text_field!r} (columns: {', '.join(pf.schema_arrow.names)}); "
                            "pass --text-field NAME")
    n = 0
    for batch in pf.iter_batches(columns=[text_field], batch_size=1024):
        for text in batch.column(0).to_pylist():
            if isinstance(text, str):
                yield Document(text, f"{path}:{n}")
            n += 1
