"""Diversity metrics on hand-made inputs with known answers, and against sacrebleu itself."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sacrebleu

from luoxia.core.errors import InvalidParameterError
from luoxia.eval.diversity import distinct_n, ending_repetition, novelty, repetition_rate, self_bleu, zipf_coefficient
from luoxia.eval.textsplit import words


def test_distinct_n_counted_by_hand():
    texts = [words("the cat sat on the mat"), words("the cat ran")]
    # unigrams: the cat sat on the mat the cat ran -> 9, distinct {the cat sat on mat ran} = 6
    assert distinct_n(texts, 1) == pytest.approx(6 / 9)
    # bigrams: the-cat cat-sat sat-on on-the the-mat | the-cat cat-ran -> 7, distinct 6
    assert distinct_n(texts, 2) == pytest.approx(6 / 7)
    # trigrams: 4 + 1 = 5, all distinct
    assert distinct_n(texts, 3) == 1.0
    assert distinct_n([["a"]], 2) == 0.0


def test_distinct_n_on_chinese_characters():
    # 床前明月光 / 明月几时有: 10 characters, 明 and 月 twice -> 8 distinct; bigrams 4 + 4, 明月 twice -> 7
    texts = [words("床前明月光"), words("明月几时有")]
    assert distinct_n(texts, 1) == pytest.approx(8 / 10)
    assert distinct_n(texts, 2) == pytest.approx(7 / 8)


def test_self_bleu_of_identical_texts_is_one():
    assert self_bleu(["the quick brown fox jumps over the lazy dog"] * 4) == pytest.approx(1.0)


def test_self_bleu_equals_direct_sacrebleu():
    rng = random.Random(0)
    vocab = ["the", "a", "of", "cat", "dog", "sat", "on", "mat", "ran", "far", "away", "quick", "brown",
             "fox", "jumps", "lazy", ",", "."]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(2, 40))) for _ in range(30)]
    direct = np.mean([sacrebleu.sentence_bleu(t, texts[:i] + texts[i + 1:]).score for i, t in enumerate(texts)])
    assert self_bleu(texts) == pytest.approx(direct / 100, abs=1e-12)  # we report sacrebleu's 0-100 / 100


def test_self_bleu_of_unrelated_texts_is_near_zero():
    assert self_bleu(["alpha beta gamma delta epsilon", "one two three four five", "red green blue cyan pink"]) < 0.01
    with pytest.raises(InvalidParameterError):
        self_bleu(["only one"])


def test_repetition_flags_a_phrase_repeated_at_the_end():
    looped = words("I went home. I don't know. I don't know. I don't know.")
    rep = ending_repetition(looped)
    assert rep is not None and rep.phrase == ("i", "don't", "know") and rep.times == 3
    assert ending_repetition(words("I don't know. I don't know.")) is None  # twice is not enough
    assert ending_repetition(words("I don't know. I don't know. I don't know. Then I left.")) is None  # not at the end
    assert ending_repetition(["a"] * 6) is not None  # one token six times is the 2-gram "a a" three times
    assert ending_repetition(["a"] * 5) is None
    assert repetition_rate([looped, words("a fine day")]) == 0.5


def test_zipf_coefficient_recovers_the_exponent_of_a_zipfian_sample():
    rng = np.random.default_rng(0)
    for s in (0.8, 1.0, 1.2):
        ranks = np.arange(1, 1001)
        probs = ranks ** -s / np.sum(ranks ** -s)
        sample = rng.choice(ranks, size=300_000, p=probs)
        assert zipf_coefficient([sample.tolist()]) == pytest.approx(s, abs=0.05)


def test_novelty_is_the_share_of_unseen_ngrams():
    corpus = [words("the cat sat on the mat")]
    assert novelty([words("the cat sat on the mat")], corpus, n=2) == 0.0
    # bigrams: the-cat (seen) cat-ran (new) ran-away (new) -> 2/3
    assert novelty([words("the cat ran away")], corpus, n=2) == pytest.approx(2 / 3)
