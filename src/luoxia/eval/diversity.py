"""Diversity and creativity: distinct-n, self-BLEU-4, Zipf coefficient, repetition, novelty.

Metrics over a *set* of generations take lists of token sequences (words from `textsplit.words`,
characters for Chinese, or a model's token ids) or, for self-BLEU, the texts themselves.

- distinct-n (Li et al. 2016): unique n-grams / all n-grams, pooled over the set.
- self-BLEU-4 (Zhu et al. 2018): each generation scored by sacrebleu's sentence BLEU against all
  the *other* generations as references, averaged; reported on a 0–1 scale (sacrebleu's 0–100 / 100),
  as in Holtzman et al.'s Table 1. Higher means less diverse.
- Zipf coefficient (Holtzman et al. 2020): minus the slope of log frequency against log rank of the
  set's tokens (the 5,000 most frequent), by least squares. Human text is near 1; larger means a
  steeper, less varied vocabulary.
- repetition (Holtzman et al. 2020): a generation that ends in a phrase of ≥ 2 tokens repeated
  ≥ 3 times in a row.
- novelty: the share of a set's n-grams that never occur in a training corpus.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from luoxia.core.errors import InvalidParameterError
from luoxia.eval.textsplit import ngrams


def distinct_n(token_lists: Iterable[Sequence], n: int) -> float:
    """Unique n-grams over all n-grams of the set (0 when there is none).

    >>> distinct_n([["a", "b", "a", "b"]], 2)   # ab, ba, ab: two of three are distinct
    0.6666666666666666
    """
    counts = Counter(g for tokens in token_lists for g in ngrams(tokens, n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def self_bleu(texts: Sequence[str], max_order: int = 4) -> float:
    """Mean sentence BLEU (0–1) of each text against all the others as references.

    Same numbers as `sacrebleu.sentence_bleu(texts[i], texts[:i] + texts[i+1:])` (default 13a
    tokenizer, exponential smoothing, effective order), averaged and divided by 100; computed in
    linear rather than quadratic time by keeping, for every n-gram, its two largest counts in the set
    (the largest among "the others" is the top one, or the second when the text itself holds the top).
    """
    from sacrebleu.metrics.bleu import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    if len(texts) < 2:
        raise InvalidParameterError(f"self-BLEU needs at least 2 texts, got {len(texts)}; give more generations")
    bleu = BLEU(max_ngram_order=max_order, effective_order=True)
    stats = [extract_all_word_ngrams(bleu._preprocess_segment(t), 1, max_order) for t in texts]
    top: dict[tuple, list] = {}  # n-gram -> [largest count, its text, second largest count]
    for i, (counts, _) in enumerate(stats):
        for g, c in counts.items():
            best = top.setdefault(g, [0, -1, 0])
            if c > best[0]:
                best[:] = [c, i, best[0]]
            elif c > best[2]:
                best[2] = c
    lengths = [length for _, length in stats]
    scores = []
    for i, (counts, hyp_len) in enumerate(stats):
        correct, total = [0] * max_order, [0] * max_order
        for g, c in counts.items():
            best = top[g]
            other = best[2] if best[1] == i else best[0]
            total[len(g) - 1] += c
            correct[len(g) - 1] += min(c, other)
        ref_len = bleu._get_closest_ref_len(hyp_len, lengths[:i] + lengths[i + 1:])
        scores.append(bleu._compute_score_from_stats([hyp_len, ref_len, *correct, *total]).score)
    return float(np.mean(scores)) / 100


def zipf_coefficient(token_lists: Iterable[Sequence], top: int = 5000) -> float:
    """Minus the least-squares slope of log count against log rank, over the `top` most frequent tokens."""
    counts = sorted(Counter(t for tokens in token_lists for t in tokens).values(), reverse=True)[:top]
    if len(counts) < 2:
        raise InvalidParameterError("the Zipf coefficient needs at least 2 distinct tokens; give longer texts")
    ranks = np.arange(1, len(counts) + 1)
    slope, _ = np.polyfit(np.log(ranks), np.log(counts), 1)
    return float(-slope)


@dataclasses.dataclass
class Repetition:
    phrase: tuple  # the repeated phrase (tokens)
    times: int  # consecutive occurrences at the end


def ending_repetition(tokens: Sequence, min_length: int = 2, min_times: int = 3,
                      max_length: int = 90) -> Repetition | None:
    """The phrase (≥ `min_length` tokens) that ends `tokens` repeated ≥ `min_times` times, if any.

    Of the phrase lengths that qualify, the one repeated most often is returned (the shortest on a tie).

    >>> ending_repetition("i don't know . i don't know . i don't know .".split())
    Repetition(phrase=('i', "don't", 'know', '.'), times=3)
    """
    tokens = list(tokens)
    found = None
    for n in range(min_length, min(max_length, len(tokens) // min_times) + 1):
        phrase, times = tokens[-n:], 1
        while tokens[len(tokens) - n * (times + 1):len(tokens) - n * times] == phrase:
            times += 1
        if times >= min_times and (found is None or times > found.times):
            found = Repetition(tuple(phrase), times)
    return found


def repetition_rate(token_lists: Iterable[Sequence], min_length: int = 2, min_times: int = 3) -> float:
    """Share of generations that end in a repetition (`ending_repetition`); multiply by 100 for %."""
    flags = [ending_repetition(t, min_length, min_times) is not None for t in token_lists]
    return sum(flags) / len(flags) if flags else 0.0


def novelty(token_lists: Iterable[Sequence], corpus_token_lists: Iterable[Sequence], n: int = 4) -> float:
    """Share of the set's n-grams (counted with repeats) that do not occur anywhere in the corpus."""
    seen = {g for tokens in corpus_token_lists for g in ngrams(tokens, n)}
    grams = [g for tokens in token_lists for g in ngrams(tokens, n)]
    return sum(g not in seen for g in grams) / len(grams) if grams else 0.0
