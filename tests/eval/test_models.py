"""Metrics that need models: perplexity against transformers, MiniLM against sentence-transformers."""

from __future__ import annotations

import math

import pytest
import torch

from luoxia.eval.fluency import perplexity, sentence_perplexities, token_nlls

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder():
    from luoxia.eval.embeddings import SentenceEncoder

    return SentenceEncoder.load()


def hf_perplexity(hf_model, context: list[int], target: list[int]) -> float:
    ids = torch.tensor([context + target])
    with torch.no_grad():
        logits = hf_model(ids).logits[0].float()
    nll = torch.nn.functional.cross_entropy(logits[len(context) - 1:-1], ids[0, len(context):])
    return math.exp(float(nll))


def test_perplexity_equals_transformers(smollm2, hf_smollm2):
    hf_model, _ = hf_smollm2
    prompts = ["The quick brown fox", "", "Once upon a time"]
    texts = [" jumps over the lazy dog.", "Paris is the capital of France.", ", there was a small cat"]
    ours = perplexity(smollm2, texts, prompts)
    tok = smollm2.tokenizer
    for prompt, text, value in zip(prompts, texts, ours.per_text):
        target = tok.encode(text, add_special_tokens=False)
        context = tok.encode(prompt) if prompt else target[:1]  # no prompt: the first token is not scored
        if not prompt:
            target = target[1:]
        assert value == pytest.approx(hf_perplexity(hf_model, context, target), rel=1e-4)
    nlls = token_nlls(smollm2, [tok.encode(p) if p else [] for p in prompts],
                      [tok.encode(t, add_special_tokens=False) for t in texts])
    pooled = math.exp(float(torch.cat(nlls).sum()) / sum(len(x) for x in nlls))
    assert ours.overall == pytest.approx(pooled) and ours.tokens == sum(len(x) for x in nlls)


def test_sentence_perplexity_flags_the_sentence_that_does_not_follow(smollm2):
    scored = sentence_perplexities(smollm2, "Paris is the capital of France. It is known for the Eiffel Tower. "
                                            "Bananas sing quietly to the purple moon.", "Tell me about Paris.")
    assert [s for s, _ in scored][2].startswith("Bananas")
    assert scored[2][1] > 5 * max(scored[0][1], scored[1][1])


def test_minilm_equals_a_reference_implementation(encoder):
    texts = ["a cat sat on the mat", "A kitten is sitting on a rug.", "床前明月光，疑是地上霜。", "word " * 400]
    ours = encoder.encode(texts)
    try:
        from sentence_transformers import SentenceTransformer

        from luoxia.eval.embeddings import minilm_path

        reference = SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True).encode(
            texts, convert_to_tensor=True)
    except ImportError:
        pytest.skip("sentence-transformers not installed")
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-5, rtol=1e-4)
    assert torch.allclose(ours.norm(dim=-1), torch.ones(4))


def test_relevance_and_coherence(encoder):
    from luoxia.eval.coherence import adjacent_similarity
    from luoxia.eval.relevance import relevance

    on_topic, off_topic = relevance(encoder, ["How do cats hunt?"] * 2,
                                    ["Cats stalk their prey and pounce.", "The stock market fell sharply today."])
    assert on_topic > 0.4 > off_topic
    steady, jumpy, single = adjacent_similarity(encoder, [
        "Cats are hunters. Cats stalk mice. A cat pounces on its prey.",
        "Cats are hunters. Interest rates rose. The violin has four strings.", "One sentence only."])
    assert steady > jumpy and math.isnan(single)


def test_mauve_of_texts_on_minilm_features(encoder):
    from luoxia.eval.mauve import compute_mauve

    cats = [f"The cat number {i} sleeps on the warm mat all day." for i in range(30)]
    code = [f"def function_{i}(x): return x * {i} + 1" for i in range(30)]
    features = encoder.encode(cats).numpy()
    assert compute_mauve(features, features).mauve == pytest.approx(1.0)
    assert compute_mauve(encoder.encode(code).numpy(), features).mauve < 0.2
