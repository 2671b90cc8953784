"""Token shards: the tokenized corpus as flat uint16/uint32 files that training memory-maps.

    out/train_000.bin, train_001.bin, ...   tokens of the training documents, each followed by EOS
    out/val_000.bin                         every k-th document (k = round(1 / val_fraction))
    out/manifest.json                       version, dtype, vocab size, EOS id, shard files and counts

The split goes by document position, so the same input always gives the same shards, byte for
byte. The manifest is written last: a folder without one is not a finished data set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from luoxia.core import atomic
from luoxia.core.errors import CorruptFileError, InvalidParameterError, UserFileError
from luoxia.text.tokenizer import Tokenizer

MANIFEST_VERSION = 1
ENCODE_BATCH = 256


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


class _SplitWriter:
    """Appends tokens to `<split>_NNN.bin`, starting a new shard every `shard_tokens` tokens."""

    def __init__(self, directory: Path, split: str, dtype: np.dtype, shard_tokens: int):
        self.directory, self.split, self.dtype, self.shard_tokens = directory, split, dtype, shard_tokens
        self.shards: list[dict] = []
        self._stack: contextlib.ExitStack | None = None
        self._file = None
        self._count = 0

    def _open(self) -> None:
        name = f"{self.split}_{len(self.shards):03d}.bin"
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic.atomic_path(self.directory / name))
        self._file = self._stack.enter_context(open(tmp, "wb"))  # noqa: SIM115 (closed by the stack)
        self.shards.append({"file": name, "tokens": 0})
        self._count = 0

    def write(self, ids: np.ndarray) -> None:
        while len(ids):
            if self._file is None:
                self._open()
            room = self.shard_tokens - self._count
            part, ids = ids[:room], ids[room:]
            part.astype(self.dtype).tofile(self._file)
            self._count += len(part)
            self.shards[-1]["tokens"] = self._count
            if self._count >= self.shard_tokens:
                self.close()

    def close(self, error: BaseException | None = None) -> None:
        if self._stack is not None:
            stack, self._stack, self._file = self._stack, None, None
            if error is None:
                stack.close()
            else:
                stack.__exit__(type(error), error, error.__traceback__)

    @property
    def tokens(self) -> int:
        return sum(s["tokens"] for s in self.shards)


def write_shards(texts: Iterable[str | tuple[str, str | None]], tokenizer: Tokenizer, directory: Path,
                 val_fraction: float = 0.05, shard_tokens: int = 100_000_000) -> dict:
    """Tokenize `texts` into shards under `directory`; returns the manifest (also written).

    An item may be (text, "train" | "val") to choose its split; plain texts (or None) go by position.
    """
    if not 0 <= val_fraction < 1:
        raise InvalidParameterError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if shard_tokens < 1:
        raise InvalidParameterError(f"shard_tokens must be at least 1, got {shard_tokens}")
    if not tokenizer.eos_ids:
        raise InvalidParameterError("the tokenizer has no end-of-sequence token to separate documents; add one")
    eos = tokenizer.eos_ids[0]
    dtype = token_dtype(tokenizer.vocab_size)
    every = max(2, round(1 / val_fraction)) if val_fraction > 0 else 0
    writers = {s: _SplitWriter(directory, s, dtype, shard_tokens) for s in ("train", "val")}
    docs = {"train": 0, "val": 0}
    index = 0
    try:
        batch: list[str] = []
        chosen: list[str | None] = []

        def flush() -> None:
            nonlocal index
            for enc, given in zip(tokenizer.backend.encode_batch(batch, add_special_tokens=False), chosen):
                split = given or ("val" if every and index % every == every - 1 else "train")
                writers[split].write(np.asarray([*enc.ids, eos], dtype=np.int64))
                docs[split] += 1
                index += 1
            batch.clear()
            chosen.clear()

        for item in texts:
            text, split = item if isinstance(item, tuple) else (item, None)
            batch.append(text)
            chosen.append(split)
            if len(batch) >= ENCODE_BATCH:
                flush()
        if batch:
            flush()
    except BaseException as e:
        for w in writers.values():
            w.close(e)
        raise
    for w in writers.values():
        w.close()
    manifest = {
        "version": MANIFEST_VERSION, "dtype": dtype.name, "vocab_size": tokenizer.vocab_size, "eos_id": eos,
        "tokenizer": "tokenizer.json", "val_fraction": val_fraction, "docs": docs,
        "tokens": {s: w.tokens for s, w in writers.items()},
        "shards": {s: w.shards for s, w in writers.items()},
    }
    atomic.write_text(directory / "manifest.json", json.dumps(manifest, indent=2))
    return manifest


@dataclasses.dataclass
class TokenData:
    """A prepared data folder, memory-mapped: `split("train")` gives its shards as arrays."""

    directory: Path
    manifest: dict

    @classmethod
    def open(cls, directory: str | Path) -> TokenData:
        directory = Path(directory)
        path = directory / "manifest.json"
        if not path.is_file():
            raise UserFileError(f"{directory} has no manifest.json; prepare it with `luoxia data prepare ... --out "
                                f"{directory}`")
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise CorruptFileError(f"{path} is not readable JSON ({e}); prepare the data again") from None
        if manifest.get("version") != MANIFEST_VERSION:
            raise CorruptFileError(f"{path} has version {manifest.get('version')!r}, this luoxia reads "
                                   f"{MANIFEST_VERSION}; prepare the data again")
        return cls(directory, manifest)

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])

    def split(self, name: str) -> list[np.ndarray]:
        dtype = np.dtype(self.manifest["dtype"])
        arrays = []
        for shard in self.manifest["shards"][name]:
            f = self.directory / shard["file"]
            if not f.is_file() or f.stat().st_size != shard["tokens"] * dtype.itemsize:
                raise CorruptFileError(f"shard {f} is missing or has the wrong size; prepare the data again")
            if shard["tokens"]:
                arrays.append(np.memmap(f, dtype=dtype, mode="r"))
        return arrays

    def tokenizer(self) -> Tokenizer:
        from luoxia.text.formats.hf import read_tokenizer

        return read_tokenizer(self.directory)
