"""Quality filters in the spirit of Gopher (Rae et al. 2021, appendix A) and C4, made Chinese-aware.

A "unit" is a word of a space-separated script or one CJK character, so length and repetition
rules mean the same for English and Chinese. Each rule has a threshold in `FilterConfig`; `check`
returns the name of the first rule a document breaks, or None. Rules, in order:

    too_short / too_long        units outside [min_units, max_units]
    symbol_ratio                '#', '…' and '...' per unit above max_symbol_ratio (Gopher: 0.1)
    digit_ratio                 digits among non-space characters above max_digit_ratio
    alpha_ratio                 share of units holding a letter (any script) below min_alpha_ratio (Gopher: 0.8)
    duplicate_lines             share of non-empty lines that repeat an earlier line above max_dup_line_ratio (0.3)
    repeated_ngrams             share of units inside n-grams seen before above max_dup_ngram_ratio
                                (Gopher's duplicate n-gram rule, n = dup_ngram_size)
    bad_phrase                  contains a boilerplate phrase (C4: "lorem ipsum", "javascript")
"""

from __future__ import annotations

import dataclasses
import re

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f\u3040-\u30ff\uac00-\ud7af"
UNIT_RE = re.compile(f"[{CJK}]|[^\\s{CJK}]+")
SYMBOL_RE = re.compile(r"#|\.\.\.|…")
LETTER_RE = re.compile(r"[^\W\d_]")


@dataclasses.dataclass
class FilterConfig:
    enabled: bool = True
    min_units: int = 5
    max_units: int = 100_000
    max_symbol_ratio: float = 0.1
    max_digit_ratio: float = 0.3
    min_alpha_ratio: float = 0.5
    max_dup_line_ratio: float = 0.3
    dup_ngram_size: int = 5
    max_dup_ngram_ratio: float = 0.3
    bad_phrases: tuple[str, ...] = ("lorem ipsum", "enable javascript", "javascript is disabled")

    RULES = ("too_short", "too_long", "symbol_ratio", "digit_ratio", "alpha_ratio", "duplicate_lines",
             "repeated_ngrams", "bad_phrase")


def units(text: str) -> list[str]:
    """Words and CJK characters.

    >>> units("Hello, 世界 ok")
    ['Hello,', '世', '界', 'ok']
    """
    return UNIT_RE.findall(text)


def check(text: str, config: FilterConfig) -> str | None:
    """The first rule `text` breaks, or None when it passes."""
    if not config.enabled:
        return None
    u = units(text)
    n = len(u)
    if n < config.min_units:
        return "too_short"
    if n > config.max_units:
        return "too_long"
    if len(SYMBOL_RE.findall(text)) / n > config.max_symbol_ratio:
        return "symbol_ratio"
    visible = sum(1 for c in text if not c.isspace())
    if sum(c.isdigit() for c in text) / max(visible, 1) > config.max_digit_ratio:
        return "digit_ratio"
    if sum(1 for w in u if LETTER_RE.search(w)) / n < config.min_alpha_ratio:
        return "alpha_ratio"
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) > 1 and (len(lines) - len(set(lines))) / len(lines) > config.max_dup_line_ratio:
        return "duplicate_lines"
    if _dup_ngram_ratio(u, config.dup_ngram_size) > config.max_dup_ngram_ratio:
        return "repeated_ngrams"
    lowered = text.lower()
    if any(p in lowered for p in config.bad_phrases):
        return "bad_phrase"
    return None


def _dup_ngram_ratio(u: list[str], size: int) -> float:
    """Share of units covered by an n-gram that occurred earlier in the document."""
    if len(u) < 2 * size:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(u)
    for i in range(len(u) - size + 1):
        gram = tuple(u[i:i + size])
        if gram in seen:
            for j in range(i, i + size):
                covered[j] = True
        else:
            seen.add(gram)
    return sum(covered) / len(u)
