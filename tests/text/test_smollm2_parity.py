"""The embedded SmolLM2-135M-Instruct (Q4_1 GGUF): our engine against transformers on the same file."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow

PROMPTS = [
    "The quick brown fox jumps over the lazy dog",
    "Once upon a time, in a small village,",
    "The capital of France is",
    "def quicksort(arr):",
    "Water boils at",
    "In machine learning, overfitting means",
    "My favourite recipe for pancakes:",
    "The three primary colours are",
    "Dear hiring manager,",
    "Photosynthesis is the process by which",
]


def hf_ids(hf_smollm2, text: str) -> list[int]:
    _, tok = hf_smollm2
    return tok(text)["input_ids"]


def test_logits_match_transformers(smollm2, hf_smollm2):
    model, _ = hf_smollm2
    ids = torch.tensor([hf_ids(hf_smollm2, PROMPTS[0] + ". " + PROMPTS[1])])
    with torch.no_grad():
        expected = model(ids).logits
        got = smollm2.model(ids)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_greedy_64_tokens_identical_on_10_prompts(smollm2, hf_smollm2):
    model, _ = hf_smollm2
    for prompt in PROMPTS:
        ids = hf_ids(hf_smollm2, prompt)
        assert smollm2.tokenizer.encode(prompt) == ids
        expected = model.generate(torch.tensor([ids]), max_new_tokens=64, min_new_tokens=64, do_sample=False)
        got = smollm2.generate(prompt, max_new_tokens=64, min_new_tokens=64)
        assert got.token_ids == expected[0, len(ids):].tolist(), prompt


def test_beam_search_5_beams_identical(smollm2, hf_smollm2):
    model, _ = hf_smollm2
    for prompt in PROMPTS[1:3]:
        ids = hf_ids(hf_smollm2, prompt)
        expected = model.generate(torch.tensor([ids]), max_new_tokens=24, num_beams=5, do_sample=False)
        got = smollm2.generate(prompt, max_new_tokens=24, num_beams=5)
        assert got.token_ids == expected[0, len(ids):len(ids) + len(got.token_ids)].tolist(), prompt
        assert len(got.token_ids) == expected.shape[1] - len(ids)


def test_reference_article_example(smollm2, hf_smollm2):
    """The reference article's call: generate(max_length=50, num_beams=5, top_p=0.95) — beam search,
    top_p unused without sampling, exactly as in transformers."""
    model, tok = hf_smollm2
    text = "The quick brown fox jumps over the lazy dog"
    ids = tok.encode(text, return_tensors="pt")
    expected = model.generate(ids, max_length=50, num_beams=5, top_p=0.95)
    got = smollm2.generate(text, max_length=50, num_beams=5, top_p=0.95)
    assert got.token_ids == expected[0, ids.shape[1]:].tolist()
    assert text + got.text == tok.decode(expected[0], skip_special_tokens=True)


def test_chat_answer_matches_transformers(smollm2, hf_smollm2):
    model, tok = hf_smollm2
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    expected = model.generate(ids["input_ids"], max_new_tokens=40, do_sample=False)
    got = smollm2.chat(messages, max_new_tokens=40)
    assert got.text == tok.decode(expected[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in got.text and got.finish_reason == "eos"
