"""Our engine against transformers on tiny random Llama, GPT-2 and Qwen2 models saved as HF folders."""

from __future__ import annotations

import copy

import pytest
import torch

from luoxia.text import sampling
from luoxia.text.pipeline import TextModel

transformers = pytest.importorskip("transformers")

PROMPTS = [
    "The quick brown fox",
    "def main():",
    "落霞与孤鹜齐飞",
    "She sells sea shells",
    "Numbers like 2024",
    "床前明月光",
    "print('hello",
    "the lazy dog jumps",
    "秋水共长天一色",
    "and the shells she sells",
]


@pytest.fixture(scope="module")
def pair(tiny_hf_dir):
    ours = TextModel.load(str(tiny_hf_dir))
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32).eval()
    return ours, theirs


def ids_of(ours: TextModel, text: str) -> list[int]:
    return ours.tokenizer.encode(text)


def test_forward_logits_match(pair):
    ours, theirs = pair
    tokens = torch.randint(0, ours.model.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = theirs(tokens).logits
        got = ours.model(tokens)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_cached_decoding_matches_full_forward(pair):
    ours, _ = pair
    model = ours.model
    tokens = torch.randint(0, model.config.vocab_size, (1, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(tokens)
        caches = model.new_caches(1, 24)
        steps = [model(tokens[:, :16], caches, 0)]
        steps += [model(tokens[:, i:i + 1], caches, i) for i in range(16, 24)]
        torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
        # Several tokens after cached ones, without a mask: causal too (each sees keys up to its own position).
        chunks = [model(tokens[:, :10], caches, 0), model(tokens[:, 10:13], caches, 10),
                  model(tokens[:, 13:], caches, 13)]
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-5, rtol=1e-5)


def test_bfloat16_model_caches_in_bfloat16_on_the_cpu(pair):
    """A bfloat16 model's cache is bfloat16 (`Transformer.cache_dtype`; attention widens it to float32), and
    cached decoding still gives the full forward's logits."""
    model = copy.deepcopy(pair[0].model).to(torch.bfloat16)
    assert model.cache_dtype == torch.bfloat16
    tokens = torch.randint(0, model.config.vocab_size, (1, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(tokens).float()
        caches = model.new_caches(1, 20)
        steps = [model(tokens[:, :12], caches, 0)] + [model(tokens[:, i:i + 1], caches, i) for i in range(12, 20)]
    assert caches[0].k.dtype == torch.bfloat16 and steps[-1].dtype == torch.bfloat16
    scale = float(full.abs().max())
    torch.testing.assert_close(torch.cat(steps, dim=1).float(), full, atol=0.02 * scale, rtol=0)


def test_greedy_continuations_identical(pair):
    ours, theirs = pair
    for prompt in PROMPTS:
        ids = ids_of(ours, prompt)
        expected = theirs.generate(torch.tensor([ids]), max_new_tokens=64, min_new_tokens=64, do_sample=False)
        got = ours.generate(prompt, max_new_tokens=64, min_new_tokens=64)
        assert got.token_ids == expected[0, len(ids):].tolist(), prompt


def test_beam_search_best_sequence_identical(pair):
    ours, theirs = pair
    for prompt in PROMPTS[:4]:
        ids = ids_of(ours, prompt)
        expected = theirs.generate(torch.tensor([ids]), max_new_tokens=20, num_beams=5, do_sample=False)
        got = ours.generate(prompt, max_new_tokens=20, num_beams=5)
        new = expected[0, len(ids):].tolist()
        while new and new[-1] == theirs.generation_config.pad_token_id and len(new) > len(got.token_ids):
            new.pop()  # transformers pads finished beams to the batch length
        assert got.token_ids == new, prompt


@pytest.mark.parametrize("options", [
    dict(length_penalty=0.0, early_stopping=True),
    dict(length_penalty=2.0, early_stopping="never"),
    dict(length_penalty=-1.0, early_stopping=False, no_repeat_ngram_size=2),
    dict(repetition_penalty=1.3),
])
def test_beam_search_options_identical(pair, options):
    ours, theirs = pair
    prompt = PROMPTS[0]
    ids = ids_of(ours, prompt)
    expected = theirs.generate(torch.tensor([ids]), max_new_tokens=16, num_beams=4, do_sample=False, **options)
    got = ours.generate(prompt, max_new_tokens=16, num_beams=4, **options)
    assert got.token_ids == expected[0, len(ids):len(ids) + len(got.token_ids)].tolist()


@pytest.mark.parametrize("options", [
    dict(temperature=0.8),
    dict(top_k=20, temperature=1.2),
    dict(top_p=0.9),
    dict(min_p=0.1, temperature=1.5),
    dict(repetition_penalty=1.2, top_k=50, top_p=0.95),
])
def test_sampling_distributions_match_transformers(pair, options, monkeypatch):
    """Along a sequence transformers sampled, our decoding loop's next-token distribution at every step is
    transformers' (processors, their order, the prompt length they count from, the cache). The draw itself
    is `sampling.draw` (tests/text/test_draw.py), not transformers' random stream, so seeds differ."""
    ours, theirs = pair
    prompt = PROMPTS[1]
    ids = ids_of(ours, prompt)
    torch.manual_seed(1234)
    hf_options = {"top_k": 0, **options}  # transformers' default top_k is 50
    out = theirs.generate(torch.tensor([ids]), max_new_tokens=30, min_new_tokens=30, do_sample=True,
                          output_scores=True, return_dict_in_generate=True, **hf_options)
    their_tokens = out.sequences[0, len(ids):].tolist()
    our_scores = []

    def take_theirs(scores: torch.Tensor, do_sample: bool, generator) -> torch.Tensor:
        assert do_sample and generator is not None
        our_scores.append(scores[0].clone())
        return torch.tensor([their_tokens[len(our_scores) - 1]])

    monkeypatch.setattr(sampling, "pick_next", take_theirs)
    got = ours.generate(prompt, max_new_tokens=30, min_new_tokens=30, do_sample=True, seed=1234, **options)
    assert got.token_ids == their_tokens and len(our_scores) == len(out.scores) == 30
    for step, (mine, expected) in enumerate(zip(our_scores, out.scores)):
        assert torch.equal(mine.isinf(), expected[0].isinf()), f"step {step}: other tokens filtered out"
        torch.testing.assert_close(mine.softmax(-1), expected[0].softmax(-1), atol=1e-5, rtol=1e-4)


def test_batched_generation_with_left_padding_matches_single(pair):
    ours, theirs = pair
    prompts = PROMPTS[:5]
    batched = ours.generate(prompts, max_new_tokens=24, ignore_eos=True)
    for prompt, result in zip(prompts, batched):
        single = ours.generate(prompt, max_new_tokens=24, ignore_eos=True)
        assert result.token_ids == single.token_ids, prompt
