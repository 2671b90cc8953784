"""SHA-256 of (large) files, remembered by path, size and mtime so a second start skips the hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from luoxia.core import atomic
from luoxia.core.paths import luoxia_home

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def cached_sha256(path: str | os.PathLike) -> str:
    """The file's SHA-256, from the index in `$LUOXIA_HOME/hashes.json` when size and mtime still match."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    index_path = luoxia_home() / "hashes.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    digest = sha256_file(path)
    index = {k: v for k, v in index.items() if not k.startswith(f"{path}|")}
    index[key] = digest
    with contextlib.suppress(OSError):  # a read-only home only costs a re-hash next time
        atomic.write_text(index_path, json.dumps(index, indent=0))
    return digest
