"""Stop strings: find the first one in generated text, and how much of the text may be shown yet.

While streaming, a tail of the text that could be the start of a stop string is held back, so a
stop string never reaches the user half-printed.
"""

from __future__ import annotations

from collections.abc import Sequence


def find_stop(text: str, stops: Sequence[str]) -> int:
    """Index where the earliest stop string begins in `text`, or -1.

    >>> find_stop("Hello\\nUser: hi", ["User:"])
    6
    """
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else -1


def safe_length(text: str, stops: Sequence[str]) -> int:
    """Length of the prefix of `text` that cannot be the beginning of a stop string.

    >>> safe_length("Hello\\nUs", ["\\nUser:"])
    5
    """
    held = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), held, -1):
            if text.endswith(s[:n]):
                held = n
                break
    return len(text) - held
