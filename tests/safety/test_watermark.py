"""The watermark: green lists and z-scores equal transformers' lefthash scheme; generation carries it,
detection finds it, plain text does not; the key never reaches the provenance."""

from __future__ import annotations

import math

import pytest
import torch

from luoxia.core.errors import InvalidParameterError
from luoxia.safety.watermark import WatermarkConfig, detect_ids, green_list, p_value, strip_labels, watermark_processor
from luoxia.text.pipeline import TextModel

transformers = pytest.importorskip("transformers")
from transformers.generation.logits_process import WatermarkLogitsProcessor  # noqa: E402
from transformers.generation.watermarking import WatermarkDetector  # noqa: E402

KEY = "15485863"  # transformers' default hashing_key


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir) -> TextModel:
    return TextModel.load(str(tiny_llama_dir))


@pytest.mark.parametrize("gamma", [0.25, 0.5])
def test_green_lists_equal_transformers(gamma):
    ours = WatermarkConfig(KEY, gamma=gamma)
    theirs = WatermarkLogitsProcessor(vocab_size=400, device="cpu", greenlist_ratio=gamma, hashing_key=int(KEY))
    for prev in (0, 1, 7, 123, 399):
        expected = theirs._get_greenlist_ids(torch.tensor([5, prev]))
        assert torch.equal(green_list(prev, 400, ours), expected)


def test_processor_equals_transformers():
    config = WatermarkConfig(KEY, gamma=0.25, delta=2.0)
    theirs = WatermarkLogitsProcessor(vocab_size=400, device="cpu", greenlist_ratio=0.25, bias=2.0,
                                      hashing_key=int(KEY))
    tokens = torch.tensor([[3, 4, 17], [9, 2, 250]])
    scores = torch.randn(2, 400)
    assert torch.allclose(watermark_processor(config)(tokens, scores), theirs(tokens, scores.clone()))


def test_detection_equals_transformers_detector(tiny):
    config = WatermarkConfig(KEY, gamma=0.25, delta=4.0)
    result = tiny.generate("The quick brown fox", max_new_tokens=60, min_new_tokens=60, do_sample=True, seed=0,
                           watermark=config)
    ids = result.token_ids
    vocab = tiny.model.config.vocab_size
    not_first = 1 if ids[0] != 1 else 2  # the detector drops a leading BOS; our ids have none
    hf_config = transformers.LlamaConfig(vocab_size=vocab, bos_token_id=not_first)
    detector = WatermarkDetector(hf_config, "cpu", {"greenlist_ratio": 0.25, "bias": 4.0, "hashing_key": int(KEY),
                                                    "seeding_scheme": "lefthash", "context_width": 1})
    theirs = detector(torch.tensor([ids]), return_dict=True)
    ours = detect_ids(ids, vocab, config)
    assert ours.scored == theirs.num_tokens_scored[0] and ours.green == theirs.num_green_tokens[0]
    assert math.isclose(ours.z_score, float(theirs.z_score[0]), rel_tol=1e-9)
    assert math.isclose(ours.p_value, float(theirs.p_value[0]), rel_tol=1e-6, abs_tol=1e-12)
    assert ours.z_score > 4  # a strong bias on a random model shows clearly


def test_watermarked_generation_is_detected_and_plain_is_not(tiny):
    config = WatermarkConfig("my secret", gamma=0.25, delta=4.0)
    vocab = tiny.model.config.vocab_size
    params = dict(max_new_tokens=80, min_new_tokens=80, do_sample=True)
    marked = tiny.generate(["The quick", "She sells", "Numbers like"], watermark=config, seed=1, **params)
    plain = tiny.generate(["The quick", "She sells", "Numbers like"], seed=1, **params)
    for m, p in zip(marked, plain):
        assert detect_ids(m.token_ids, vocab, config).z_score > 4
        assert detect_ids(p.token_ids, vocab, config).z_score < 4
        assert detect_ids(m.token_ids, vocab, WatermarkConfig("wrong key", gamma=0.25)).z_score < 4


def test_provenance_records_the_scheme_not_the_key(tiny):
    r = tiny.generate("The quick", max_new_tokens=5, watermark=WatermarkConfig("my secret"))
    recorded = r.provenance.params["watermark"]
    assert recorded["gamma"] == 0.25 and recorded["delta"] == 2.0 and len(recorded["key_id"]) == 8
    assert "my secret" not in str(r.provenance.to_dict())


def test_bad_parameters_are_user_errors(tiny):
    with pytest.raises(InvalidParameterError, match="gamma"):
        tiny.generate("x", max_new_tokens=2, watermark=WatermarkConfig("k", gamma=1.5))
    with pytest.raises(InvalidParameterError, match="too short"):
        detect_ids([5], 400, WatermarkConfig("k"))


def test_p_value_and_label_stripping():
    assert math.isclose(p_value(0.0), 0.5) and p_value(4.0) < 4e-5
    assert strip_labels("hello\n\n[AI生成 · AI-generated · luoxia]\n") == "hello"
    assert strip_labels('---\nAIGC: {}\nprovenance: {}\n---\nbody\n') == "body"
