"""Logic and coherence: do adjacent sentences hang together, do the numbers agree with the prompt?

- `adjacent_similarity`: mean cosine similarity of the embeddings of consecutive sentences (a text
  that jumps between topics scores low; one sentence alone has none).
- `number_contradictions`: a number in the output that disagrees with the prompt about the same thing.
  "The same thing" is the word after the number (English, plural "s" dropped: "120 employees") or up
  to three CJK characters after it (Chinese: "120名员工"), or "%". When prompt and output give that
  thing only different numbers, it is flagged. A heuristic, so it misses paraphrases ("staff" vs
  "employees") and flags nothing when the output does not say what the number counts.

    >>> number_contradictions("The firm has 120 employees and 3 offices.", "Its 150 employees work in 3 offices.")
    [Contradiction(unit='employee', prompt=['120'], output=['150'])]
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import defaultdict

from luoxia.eval.embeddings import SentenceEncoder
from luoxia.eval.textsplit import CJK, split_sentences

_NUMBER = re.compile(rf"(?<![A-Za-z0-9_.])(\d+(?:,\d{{3}})*(?:\.\d+)?)\s*(%|[{CJK}]{{1,3}}|[A-Za-z][A-Za-z'-]*)?")


@dataclasses.dataclass
class Contradiction:
    unit: str  # what the numbers count
    prompt: list[str]  # the prompt's numbers for it
    output: list[str]  # the output's numbers for it, none of which the prompt gives


def numbers_with_units(text: str) -> dict[str, set[str]]:
    """{unit: {numbers}} for every number followed by a unit word (commas removed: "1,000" is "1000")."""
    found: dict[str, set[str]] = defaultdict(set)
    for m in _NUMBER.finditer(text):
        number, unit = m.group(1).replace(",", ""), (m.group(2) or "").lower()
        if not unit:
            continue
        if unit.isascii() and len(unit) > 3 and unit.endswith("s") and not unit.endswith("ss"):
            unit = unit[:-1]
        found[unit].add(number)
    return found


def number_contradictions(prompt: str, output: str) -> list[Contradiction]:
    """Units that prompt and output both give numbers for, where the output's numbers are all different."""
    given, said = numbers_with_units(prompt), numbers_with_units(output)
    return [Contradiction(unit, sorted(given[unit]), sorted(said[unit]))
            for unit in sorted(given.keys() & said.keys()) if not given[unit] & said[unit]]


def adjacent_similarity(encoder: SentenceEncoder, texts: list[str]) -> list[float]:
    """Mean cosine of consecutive sentences' embeddings, per text (nan for a text of one sentence)."""
    sentences = [split_sentences(t) for t in texts]
    flat = [s for ss in sentences for s in ss]
    e = encoder.encode(flat) if flat else None
    result, at = [], 0
    for ss in sentences:
        if len(ss) < 2:
            result.append(math.nan)
        else:
            block = e[at:at + len(ss)]
            result.append(float((block[:-1] * block[1:]).sum(-1).mean()))
        at += len(ss)
    return result
