"""Speculative decoding with a draft model: its drafts, its cache across kept and dropped drafts, the
acceptance rule with the draft's own distribution, and the text it gives (the model's own)."""

from __future__ import annotations

import collections

import pytest
import torch

from luoxia.core.errors import InvalidParameterError
from luoxia.text.draft_model import DraftModel, ModelDrafter
from luoxia.text.generate import GenerationConfig, decode_steps
from luoxia.text.pipeline import TextModel
from luoxia.text.speculative import SpeculationStats, check_draft_token, speculative_steps


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir) -> TextModel:
    return TextModel.load(str(tiny_llama_dir))


@pytest.fixture(scope="module")
def nearby(tiny_llama_dir) -> TextModel:
    """The tiny model with a little noise on its weights: a draft that agrees with it often, not always."""
    model = TextModel.load(str(tiny_llama_dir))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * parameter.std() * 0.03)
    return model


def greedy(model: TextModel, prompt: list[int], new: int) -> list[int]:
    config = GenerationConfig(max_new_tokens=new, ignore_eos=True)
    return [int(t[0]) for t in decode_steps(model.model, [prompt], config, [], 0)]


def test_drafts_are_the_draft_models_greedy_continuation_after_kept_and_dropped_drafts(tiny):
    """The drafter's cache holds the text and its last draft; whatever part of a draft the text keeps, the
    next draft is what the draft model would say reading the whole text afresh."""
    prompt = tiny.tokenizer.encode("The quick brown fox jumps over")
    drafter = ModelDrafter(tiny.model, None, prompt, 64, [], False, None, set())
    text = list(prompt)
    steps = [lambda d: d + greedy(tiny, text + d, 1),  # kept whole, then the model's own token
             lambda d: d[:2] + [7], lambda d: [9], lambda d: d[:1] + [3],  # kept in part, then another token
             lambda d: d[:2]]  # the model's own token was the draft's own (sampling can do that)
    for take in steps:
        drafts, q = drafter.draft(4)
        assert drafts == greedy(tiny, text, 4) and q is None
        for token in take(drafts):
            drafter.accept(token)
            text.append(token)
    assert drafter.draft(3)[0] == greedy(tiny, text, 3)
    assert drafter.draft(0) == ([], None)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_greedy_text_with_a_draft_model_is_the_models_greedy_text(tiny, nearby, k):
    prompt = tiny.tokenizer.encode("She sells sea shells by the sea shore.")
    config = GenerationConfig(max_new_tokens=40, ignore_eos=True)
    stats = SpeculationStats()
    drafted = list(speculative_steps(tiny.model, prompt, config, [], stats=stats,
                                     draft_model=DraftModel(nearby.model, "nearby", tokens=k)))
    assert drafted == greedy(tiny, prompt, 40)
    assert stats.drafter == "nearby" and stats.drafted > 0
    assert 0 < stats.accepted < stats.drafted  # the noisy copy agrees often, not always


def test_a_copy_of_the_model_drafts_everything_it_is_asked_for(tiny):
    prompt = tiny.tokenizer.encode("She sells sea shells")
    stats = SpeculationStats()
    config = GenerationConfig(max_new_tokens=33, ignore_eos=True)
    out = list(speculative_steps(tiny.model, prompt, config, [], stats=stats,
                                 draft_model=DraftModel(tiny.model, "itself", tokens=4)))
    assert out == greedy(tiny, prompt, 33)
    # After the prompt's token, each forward keeps its 4 drafted tokens and adds 1 of its own; the last
    # has room for 1 draft: 6 x 5 + 2 = 32.
    assert stats.forwards == 7 and stats.accepted == stats.drafted == 6 * 4 + 1


def test_a_token_drawn_from_q_and_checked_is_distributed_as_p():
    """Kept with min(1, p/q), else drawn from max(0, p − q): whatever q drafts, the token has probability p."""
    scores = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    p = scores.softmax(-1)
    generator = torch.Generator().manual_seed(0)
    draws = 20000
    for q in (torch.tensor([0.1, 0.1, 0.6, 0.1, 0.1]), torch.full((5,), 0.2), p):
        drafts = torch.multinomial(q, draws, replacement=True, generator=generator).tolist()
        counts = collections.Counter(check_draft_token(scores.clone(), d, True, generator, q)[0] for d in drafts)
        observed = torch.tensor([counts[t] / draws for t in range(5)])
        assert torch.allclose(observed, p, atol=0.012), (q, observed, p)
    kept = sum(check_draft_token(scores.clone(), d, True, generator, p)[1] for d in drafts)
    assert kept == draws  # a draft drawn from p itself is always kept


def test_sampled_drafts_carry_their_distribution_and_a_seed_repeats_the_text(tiny, nearby):
    tiny.use_draft(nearby, tokens=4)
    try:
        params = dict(max_new_tokens=24, do_sample=True, temperature=0.8, seed=5, ignore_eos=True)
        first, again = tiny.generate("She sells sea shells", **params), tiny.generate("She sells sea shells", **params)
        assert first.text == again.text and len(first.token_ids) == 24
        speculation = first.provenance.stats["speculation"]
        assert speculation["drafter"] == f"{nearby.name} none" and speculation["drafted"] >= speculation["accepted"] > 0
        lookup = tiny.generate("She sells sea shells", **params, prompt_lookup_num_tokens=4)
        assert lookup.provenance.stats["speculation"]["drafter"] == "lookup"  # asked for: lookup drafts instead
        assert tiny.generate(["a", "b"], max_new_tokens=3)[0].provenance.stats.get("speculation") is None  # batches
    finally:
        tiny.use_draft(None)
    assert "speculation" not in tiny.generate("She sells", max_new_tokens=3).provenance.stats


def test_a_draft_model_with_another_vocabulary_is_refused(tiny, smollm2):
    with pytest.raises(InvalidParameterError, match="another tokenizer.*same family"):
        smollm2.use_draft(tiny)
    with pytest.raises(InvalidParameterError, match=r"draft tokens must be in \[1, 64\]"):
        DraftModel(tiny.model, "tiny", tokens=0)


def test_int4_drafts_for_the_float32_embedded_model_and_the_text_stays_float32s(smollm2):
    """The use the module describes: the embedded model in float32 (transformers' tokens) with its own int4
    quantization drafting. Most drafts are kept; the text is float32's greedy text."""
    prompt = smollm2.chat_prompt("Explain how photosynthesis works.")
    plain = smollm2.generate(prompt, max_new_tokens=32, ignore_eos=True)
    smollm2.use_draft("smollm2", tokens=4, quant="int4", aot=False)
    try:
        drafted = smollm2.generate(prompt, max_new_tokens=32, ignore_eos=True)
    finally:
        smollm2.use_draft(None)
    assert drafted.token_ids == plain.token_ids
    speculation = drafted.provenance.stats["speculation"]
    assert speculation["drafter"] == "smollm2 int4" and speculation["acceptance_rate"] > 0.8, speculation
    assert speculation["forwards"] < 16
