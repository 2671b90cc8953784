"""Words, Chinese characters, sentences and n-grams: the units every text metric counts.

English is split into words; Chinese, which has no spaces, into characters (the usual unit of
Chinese n-gram metrics). Both can be mixed in one text:

    >>> words("The cat sat. 床前明月光")
    ['the', 'cat', 'sat', '床', '前', '明', '月', '光']
    >>> split_sentences("床前明月光，疑是地上霜。举头望明月！He left. She stayed?")
    ['床前明月光，疑是地上霜。', '举头望明月！', 'He left.', 'She stayed?']
    >>> ngrams(["a", "b", "c"], 2)
    [('a', 'b'), ('b', 'c')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# CJK unified ideographs (with extension A and the compatibility block), kana and hangul: one token per character.
CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_WORD = re.compile(rf"[{CJK}]|[^\W{CJK}]+(?:['’][^\W{CJK}]+)*")
# A sentence ends at Chinese 。！？；… (no space needed) or at . ! ? followed by a space or the end;
# closing quotes and brackets stay with the sentence they close.
_SENTENCE_END = re.compile(r"(?:[。！？；…]+|[.!?]+(?=\s|$))[”’\"'」』）)]*")


def is_chinese(text: str) -> bool:
    """True when CJK characters outnumber the other word characters."""
    cjk = len(re.findall(f"[{CJK}]", text))
    return cjk > 0 and cjk >= len(re.findall(r"\w", text)) - cjk


def words(text: str, lowercase: bool = True) -> list[str]:
    """Words (letters, digits, inner apostrophes) and single CJK characters; punctuation dropped."""
    return _WORD.findall(text.lower() if lowercase else text)


def chars(text: str) -> list[str]:
    """Every non-space character: the character-level unit for Chinese n-grams."""
    return [c for c in text if not c.isspace()]


def split_sentences(text: str) -> list[str]:
    """Sentences, on Chinese 。！？；… and English . ! ? (newlines end a sentence too)."""
    sentences = []
    for line in text.splitlines():
        start = 0
        for m in _SENTENCE_END.finditer(line):
            sentences.append(line[start:m.end()].strip())
            start = m.end()
        sentences.append(line[start:].strip())
    return [s for s in sentences if s]


def ngrams(tokens: Sequence, n: int) -> list[tuple]:
    """The n-grams of a token sequence, in order."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
