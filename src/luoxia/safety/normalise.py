"""Text normalisation shared by the content filter and the PII detector.

Evasions it undoes: full-width and other compatibility forms (ＡＢＣ１２３ → ABC123, NFKC, one
character at a time so positions map back), zero-width and invisible characters (dropped), case
(casefold). `normalise_with_map` keeps, for every output character, the index of the input
character it came from, so a match in the normalised text can be redacted in the original.

    >>> normalise("Ｂ\u200bＯＭＢ")
    'bomb'
"""

from __future__ import annotations

import unicodedata

# Zero-width and invisible format characters used to split words without showing it.
INVISIBLE = frozenset("\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
                      "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069"
                      "\u3164\ufeff\uffa0")


def _char(c: str, fold: bool) -> str:
    if c in INVISIBLE:
        return ""
    if c.isascii():
        return c.casefold() if fold else c
    n = unicodedata.normalize("NFKC", c)
    if len(n) != 1:  # e.g. a ligature: keep one character per input character
        n = c
    return n.casefold() if fold and len(n.casefold()) == 1 else n


def normalise_with_map(text: str, fold: bool = True) -> tuple[str, list[int]]:
    """(normalised text, index in `text` of each normalised character)."""
    out, index = [], []
    for i, c in enumerate(text):
        n = _char(c, fold)
        if n:
            out.append(n)
            index.append(i)
    return "".join(out), index


def normalise(text: str, fold: bool = True) -> str:
    return normalise_with_map(text, fold)[0]
