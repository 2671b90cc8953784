"""Duplicate removal: exact (a hash of the text with case and whitespace folded) and near
(MinHash over character 5-grams with LSH, via `datasketch`; Broder 1997, Leskovec et al. ch. 3).

Character shingles work for Chinese, which has no spaces, as well as for English. A document is a
near duplicate when its estimated Jaccard similarity to one kept earlier reaches `threshold`;
the first of a group is kept, so the result depends only on the input order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

_FOLD_RE = re.compile(r"\s+")


@dataclasses.dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    threshold: float = 0.8  # estimated Jaccard similarity at which a document counts as a near duplicate
    num_perm: int = 64
    shingle_size: int = 5
    seed: int = 1


def fingerprint(text: str) -> bytes:
    return hashlib.blake2b(_FOLD_RE.sub("", text.lower()).encode(), digest_size=16).digest()


def shingles(text: str, size: int) -> set[bytes]:
    """Character n-grams of the whitespace-folded text.

    >>> sorted(shingles("ab cd", 3))
    [b'abc', b'bcd']
    """
    folded = _FOLD_RE.sub("", text.lower())
    if len(folded) <= size:
        return {folded.encode()}
    return {folded[i:i + size].encode() for i in range(len(folded) - size + 1)}


class Deduplicator:
    """`check(text)` → None for a new document (now remembered), or "exact_duplicate" / "near_duplicate"."""

    def __init__(self, config: DedupConfig):
        self.config = config
        self.hashes: set[bytes] = set()
        self.lsh = None
        if config.near:
            from datasketch import MinHashLSH

            self.lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
            self._n = 0

    def check(self, text: str) -> str | None:
        if self.config.exact:
            h = fingerprint(text)
            if h in self.hashes:
                return "exact_duplicate"
            self.hashes.add(h)
        if self.lsh is not None:
            from datasketch import MinHash

            m = MinHash(num_perm=self.config.num_perm, seed=self.config.seed)
            m.update_batch(list(shingles(text, self.config.shingle_size)))
            if self.lsh.query(m):
                return "near_duplicate"
            self.lsh.insert(str(self._n), m)
            self._n += 1
        return None
