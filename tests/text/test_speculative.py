"""Prompt-lookup speculative decoding: the drafts, the acceptance rule, and the text it gives."""

from __future__ import annotations

import collections

import pytest
import torch

from luoxia.core.errors import InvalidParameterError
from luoxia.text.generate import GenerationConfig, decode_steps, padding_mask
from luoxia.text.pipeline import TextModel
from luoxia.text.speculative import NgramIndex, SpeculationStats, check_draft_token, speculative_steps


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir) -> TextModel:
    return TextModel.load(str(tiny_llama_dir))


def test_draft_follows_the_latest_earlier_occurrence_of_the_longest_ngram():
    index = NgramIndex([1, 2, 3, 9, 2, 3, 7, 8, 5, 2, 3])
    assert index.draft(2) == [7, 8]  # (2, 3) last occurred before at 4-5, followed by 7, 8
    index = NgramIndex([5, 2, 3, 4, 6, 2, 3, 1, 5, 2, 3])
    assert index.draft(3) == [4, 6, 2]  # the trigram (5, 2, 3) beats the later bigram (2, 3) -> 1
    assert index.draft(0) == []


def test_no_draft_without_an_earlier_bigram():
    assert NgramIndex([1, 2, 3, 4, 1]).draft(4) == []  # only the single token 1 repeats
    assert NgramIndex([7, 7]).draft(4) == []
    index = NgramIndex([1, 2, 3, 4, 1])
    index.append(2)
    assert index.draft(4) == [3, 4, 1, 2]  # a draft may run up to the sequence's end


def test_draft_stops_at_the_end_of_the_sequence():
    assert NgramIndex([4, 5, 4, 5]).draft(8) == [4, 5]


def test_a_checked_draft_token_is_distributed_as_the_model_says():
    """Kept with probability p(d), else drawn from p without d: every token still has probability p."""
    scores = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    p = scores.softmax(-1)
    generator = torch.Generator().manual_seed(0)
    draws = 20000
    for draft in (0, 3):
        counts = collections.Counter(check_draft_token(scores.clone(), draft, True, generator)[0] for _ in range(draws))
        observed = torch.tensor([counts[t] / draws for t in range(5)])
        assert torch.allclose(observed, p, atol=0.012), (draft, observed, p)


def test_greedy_check_keeps_only_the_argmax():
    scores = torch.tensor([0.0, 3.0, 1.0])
    assert check_draft_token(scores, 1, False, None) == (1, True)
    assert check_draft_token(scores, 2, False, None) == (1, False)


@torch.inference_mode()
def test_one_forward_over_a_draft_gives_the_one_token_logits(tiny):
    """What the check relies on: the newest token and a draft read at once, causally, from the cache,
    give each position the logits that one-token steps would."""
    model = tiny.model
    prompt = torch.tensor([tiny.tokenizer.encode("The quick brown fox jumps over")])
    n, feed = prompt.shape[1], torch.tensor([[17, 40, 41, 42, 43]])
    caches = model.new_caches(1, 32)
    model(prompt, caches, 0)
    causal = padding_mask(torch.ones((1, n + 5), dtype=torch.bool), n, n + 5)
    together = model(feed, caches, n, None, causal)[0]
    caches = model.new_caches(1, 32)
    model(prompt, caches, 0)
    one_by_one = torch.cat([model(feed[:, i:i + 1], caches, n + i)[0] for i in range(5)])
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def looping(tiny_llama_dir) -> TextModel:
    """The tiny model with its attention and MLP outputs zeroed: a bigram model, whose greedy text soon
    cycles, so drafts get made and kept (a random model's text never repeats). The bookkeeping is what
    this checks; attention across kept and dropped drafts is checked on SmolLM2 below."""
    model = TextModel.load(str(tiny_llama_dir))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.attention.wo.weight.zero_()
            layer.feed_forward.w_out.weight.zero_()
    return model


def test_greedy_text_is_the_same_with_drafts(looping):
    prompt = looping.tokenizer.encode("She sells sea shells by the sea shore.")
    eos = looping.tokenizer.eos_ids
    for n in (3, 8):
        config = GenerationConfig(max_new_tokens=60, ignore_eos=True, prompt_lookup_num_tokens=n)
        stats = SpeculationStats()
        drafted = list(speculative_steps(looping.model, prompt, config, eos, stats=stats))
        plain = [int(t[0]) for t in decode_steps(looping.model, [prompt], config, eos, 0)]
        assert drafted == plain
        assert stats.accepted > 10
        assert stats.forwards < 59 - 10  # each kept draft token saved a model call


def test_pipeline_reports_speculation_and_seeded_sampling_repeats(tiny):
    prompt = "The quick brown fox jumps over the lazy dog. The quick brown fox"
    params = dict(max_new_tokens=30, do_sample=True, temperature=0.7, seed=3, prompt_lookup_num_tokens=4)
    first, again = tiny.generate(prompt, **params), tiny.generate(prompt, **params)
    assert first.text == again.text and len(first.token_ids) == 30 or first.finish_reason == "eos"
    speculation = first.provenance.stats["speculation"]
    assert speculation["forwards"] >= 1 and speculation["drafted"] >= speculation["accepted"] >= 0
    assert "speculation" not in tiny.generate(prompt, max_new_tokens=5).provenance.stats


def test_drafts_stop_at_max_new_tokens_and_eos(looping):
    prompt = looping.tokenizer.encode("She sells sea shells by the sea shore.")
    eos = looping.tokenizer.eos_ids
    for limit in (1, 2, 5, 17, 40):
        config = GenerationConfig(max_new_tokens=limit, ignore_eos=True, prompt_lookup_num_tokens=8)
        assert len(list(speculative_steps(looping.model, prompt, config, eos))) == limit
    cycling = prompt + [int(t[0]) for t in decode_steps(looping.model, [prompt], GenerationConfig(max_new_tokens=30),
                                                        [], 0)]  # the prompt now ends inside the cycle
    plain = [int(t[0]) for t in decode_steps(looping.model, [cycling], GenerationConfig(max_new_tokens=8), [], 0)]
    stats = SpeculationStats()
    config = GenerationConfig(max_new_tokens=20, prompt_lookup_num_tokens=8)
    out = list(speculative_steps(looping.model, cycling, config, [plain[2]], stats=stats))
    assert out == plain[:3]  # the third token ended the text inside a kept draft: nothing after it comes out
    assert stats.forwards == 1 and stats.accepted >= 2


def test_a_draft_after_a_miss_is_at_most_one_longer_than_what_was_kept(looping):
    """A check's cost grows with its length, so the draft limit adapts (text.speculative): after a draft the model
    did not keep whole, the next has at most one token more than it kept; the text stays the greedy text."""
    prompt = looping.tokenizer.encode("She sells sea shells by the sea shore.")
    plain = [int(t[0]) for t in decode_steps(looping.model, [prompt], GenerationConfig(max_new_tokens=40), [], 0)]
    wrong = list(plain)
    for i in (5, 6, 18, 19):  # a prediction with wrong tokens in it: drafts the model will not keep whole
        wrong[i] = (wrong[i] + 1) % looping.model.config.vocab_size
    calls = []

    def spy(tokens, caches, start, positions, mask):
        calls.append((tokens.shape[1], start))
        return looping.model(tokens, caches, start, positions, mask)

    config = GenerationConfig(max_new_tokens=40, ignore_eos=True, prompt_lookup_num_tokens=8)
    assert list(speculative_steps(looping.model, prompt, config, [], one_token_forward=spy, prediction=wrong)) == plain
    misses = 0
    for (count, start), (next_count, next_start) in zip(calls, calls[1:]):
        kept = next_start - start - 1  # the sequence grew by the kept draft tokens and the model's own one
        if kept < count - 1:
            misses += 1
            assert next_count - 1 <= kept + 1
    assert misses and max(count for count, _ in calls) == 9  # whole drafts were kept too, up to the limit


@pytest.mark.parametrize("params, message", [
    (dict(prompt_lookup_num_tokens=-1), "prompt_lookup_num_tokens must be in"),
    (dict(prompt_lookup_num_tokens=65), "prompt_lookup_num_tokens must be in"),
    (dict(prompt_lookup_num_tokens=4, num_beams=2), "not beam search"),
])
def test_impossible_lookup_settings_are_rejected(tiny, params, message):
    with pytest.raises(InvalidParameterError, match=message):
        tiny.generate("hello", **params)


def test_copying_the_prompt_is_drafted_and_accepted_on_the_embedded_model(smollm2):
    """SmolLM2 asked to copy a sentence: nearly every draft is kept, and greedy text is unchanged."""
    text = "The council agreed to add 40 parking spaces on Elm Road before the new bicycle lanes open in March."
    params = dict(chat=True, max_new_tokens=40)
    plain = smollm2.generate(f"Copy this sentence exactly:\n{text}", **params)
    drafted = smollm2.generate(f"Copy this sentence exactly:\n{text}", prompt_lookup_num_tokens=8, **params)
    assert drafted.text == plain.text
    speculation = drafted.provenance.stats["speculation"]
    assert speculation["acceptance_rate"] > 0.5  # drafts overshoot at the sentence's end
    assert speculation["forwards"] < len(drafted.token_ids) / 2


def test_a_prediction_of_the_answer_is_drafted_and_kept(smollm2):
    """Predicted outputs: given the answer it will write (an edit's unchanged text), the model checks it
    in a few forwards and writes the same answer."""
    prompt = "Name three colours, one per line."
    plain = smollm2.generate(prompt, chat=True, max_new_tokens=30)
    predicted = smollm2.generate(prompt, chat=True, max_new_tokens=30, prediction=plain.text)
    assert predicted.text == plain.text
    speculation = predicted.provenance.stats["speculation"]
    assert speculation["accepted"] >= len(plain.token_ids) - 3  # all but the first, the last and EOS
    assert speculation["forwards"] <= 3
