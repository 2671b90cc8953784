"""Each logits processor against transformers' processor of the same name, on the same scores."""

from __future__ import annotations

import pytest
import torch

from luoxia.text import sampling

generation = pytest.importorskip("transformers.generation.logits_process")


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (3, 12), generator=g)
    scores = torch.randn(3, 50, generator=g) * 3
    return tokens, scores


@pytest.mark.parametrize("ours, theirs", [
    (sampling.temperature(0.7), generation.TemperatureLogitsWarper(0.7)),
    (sampling.top_k(5), generation.TopKLogitsWarper(5)),
    (sampling.top_p(0.8), generation.TopPLogitsWarper(0.8)),
    (sampling.top_p(0.05), generation.TopPLogitsWarper(0.05)),
    (sampling.min_p(0.2), generation.MinPLogitsWarper(0.2)),
    (sampling.repetition_penalty(1.5), generation.RepetitionPenaltyLogitsProcessor(1.5)),
    (sampling.repetition_penalty(0.8), generation.RepetitionPenaltyLogitsProcessor(0.8)),
    (sampling.no_repeat_ngram(2), generation.NoRepeatNGramLogitsProcessor(2)),
    (sampling.no_repeat_ngram(3), generation.NoRepeatNGramLogitsProcessor(3)),
])
def test_processor_matches_transformers(batch, ours, theirs):
    tokens, scores = batch
    tokens[0, -3:] = tokens[0, 2:5]  # plant a repeated n-gram
    torch.testing.assert_close(ours(tokens, scores.clone()), theirs(tokens, scores.clone()))


def test_min_new_tokens_matches_transformers(batch):
    tokens, scores = batch
    theirs = generation.MinNewTokensLengthLogitsProcessor(prompt_length_to_skip=8, min_new_tokens=6,
                                                          eos_token_id=[3, 4])
    ours = sampling.min_new_tokens(6, [3, 4], prompt_len=8)
    torch.testing.assert_close(ours(tokens, scores.clone()), theirs(tokens, scores.clone()))


def test_greedy_picks_argmax_and_sampling_respects_filters(batch):
    _, scores = batch
    assert torch.equal(sampling.pick_next(scores, False, None), scores.argmax(-1))
    filtered = sampling.top_k(1)(None, scores)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sampling.pick_next(filtered, True, g), scores.argmax(-1))


def test_frequency_presence_penalty_counts_generated_tokens_only():
    tokens = torch.tensor([[5, 5, 1, 1, 1, 2]])  # prompt [5, 5], then 1 three times and 2 once
    scores = torch.zeros(1, 8)
    out = sampling.frequency_presence_penalty(0.5, 0.25, prompt_len=2)(tokens, scores)
    expected = torch.zeros(1, 8)
    expected[0, 1] = -(0.5 * 3 + 0.25)
    expected[0, 2] = -(0.5 * 1 + 0.25)
    torch.testing.assert_close(out, expected)  # token 5 is only in the prompt: not penalised
    assert sampling.frequency_presence_penalty(1.0, 1.0, prompt_len=6)(tokens, scores) is scores


@pytest.mark.parametrize("vocab", [49152, 50257, 4096, 1000])
def test_argmax_rows_matches_torch_argmax(vocab):
    """Ties keep the first index, NaN counts as the largest, and the maximum may sit in the short last block."""
    generator = torch.Generator().manual_seed(vocab)
    scores = torch.randn(7, 2, vocab, generator=generator)[:, -1]  # rows strided, as logits[:, -1] are
    scores[1, vocab // 3] = scores[1, vocab // 2] = 9.0  # a tie across blocks
    scores[2, 5] = scores[2, 6] = 9.0  # a tie inside a block
    scores[3, -1] = 9.0  # the very last column
    scores[4, [vocab // 2, 10]] = float("nan")
    scores[5] = float("-inf")
    scores[6, :] = 1.0  # every entry equal
    assert torch.equal(sampling.argmax_rows(scores), scores.argmax(dim=-1))
    assert torch.equal(sampling.argmax_rows(scores.contiguous()), scores.argmax(dim=-1))
    assert torch.equal(sampling.pick_next(scores, False, None), scores.argmax(dim=-1))
