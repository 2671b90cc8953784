"""The head start (text.head_start): NumPy's first tokens, then the torch model's, as one greedy answer."""

from __future__ import annotations

import pytest

from luoxia.core.errors import ModelNotFoundError
from luoxia.safety.watermark import WatermarkConfig
from luoxia.text import head_start
from luoxia.text.generation_config import GenerationConfig
from luoxia.text.head_start import HeadStart
from luoxia.text.pipeline import TextModel
from tiny_models import write_gguf

pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_gqa3_dir):
    """A float32 GGUF, converted once so that its weights are in the cache (its quant "auto" is float32, so
    NumPy's tokens and torch's agree exactly)."""
    path = write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", tiny_gqa3_dir, "F32")
    TextModel.load(str(path))
    return path


def head_started(path, prompt: str, load=None, **params):
    head = HeadStart.open(str(path))
    row = head.begin(prompt, chat=False, system=None, truncate=False, safety=None, **params)
    stream = head.stream(row, load or (lambda: TextModel.load(str(path))))
    pieces = list(stream)
    assert "".join(pieces) == stream.result.text
    return stream.result


@pytest.mark.parametrize("params", [
    dict(max_new_tokens=20, ignore_eos=True),  # past the head start
    dict(max_new_tokens=3, ignore_eos=True),  # ends within it
    dict(max_new_tokens=20, ignore_eos=True, prompt_lookup_num_tokens=3),  # the model's part drafts
    dict(max_new_tokens=40),  # whatever ends it: EOS or the length
])
def test_the_same_answer_as_the_model_alone(tiny_gguf, params):
    expected = TextModel.load(str(tiny_gguf)).generate("the quick brown fox", **params)
    got = head_started(tiny_gguf, "the quick brown fox", **params)
    assert got.token_ids == expected.token_ids
    assert got.text == expected.text and got.finish_reason == expected.finish_reason
    assert got.provenance.stats["head_start_tokens"] == min(head_start.TOKENS, len(expected.token_ids))
    after = got.provenance.stats.get("tokens_per_s_after_head_start")
    assert (after is not None and after > 0) == (len(expected.token_ids) > head_start.TOKENS)


def test_a_stop_string_in_the_numpy_part_ends_the_row(tiny_gguf):
    free = TextModel.load(str(tiny_gguf)).generate("the quick brown fox", max_new_tokens=6, ignore_eos=True)
    stop = free.text[len(free.text) // 2:][:2]
    assert stop.strip(), free.text
    expected = TextModel.load(str(tiny_gguf)).generate("the quick brown fox", max_new_tokens=6, ignore_eos=True,
                                                        stop=[stop])
    got = head_started(tiny_gguf, "the quick brown fox", max_new_tokens=6, ignore_eos=True, stop=[stop])
    assert got.finish_reason == expected.finish_reason == "stop"
    assert got.text == expected.text and stop not in got.text


def test_a_load_error_reaches_the_caller(tiny_gguf):
    def fail():
        raise ModelNotFoundError("gone")

    with pytest.raises(ModelNotFoundError, match="gone"):
        head_started(tiny_gguf, "the quick brown fox", load=fail, max_new_tokens=12)


@pytest.mark.parametrize("params", [
    dict(do_sample=True), dict(num_beams=2), dict(repetition_penalty=1.2), dict(frequency_penalty=0.5),
    dict(presence_penalty=0.5), dict(no_repeat_ngram_size=2), dict(min_new_tokens=2),
    dict(watermark=WatermarkConfig(key="k")),
])
def test_only_plain_greedy_runs_get_a_head_start(tiny_gguf, params):
    assert not head_start.eligible(GenerationConfig(**params))
    head = HeadStart.open(str(tiny_gguf))
    assert head.begin("the quick brown fox", chat=False, system=None, truncate=False, safety=None, **params) is None
    assert head_start.eligible(GenerationConfig(do_sample=True, temperature=0))  # temperature 0 is greedy


def test_only_cached_gguf_models_open(tiny_gguf, tiny_gqa3_dir, tmp_path, monkeypatch):
    assert HeadStart.open(str(tiny_gguf)).config.n_kv_heads == 3
    assert HeadStart.open(str(tiny_gqa3_dir)) is None  # a Hugging Face folder: loaded first, as before
    assert HeadStart.open(str(tmp_path / "missing.gguf")) is None  # the normal path reports it
    monkeypatch.setenv("LUOXIA_HOME", str(tmp_path / "empty"))
    assert HeadStart.open(str(tiny_gguf)) is None  # not converted yet


def test_resume_takes_greedy_rows_only(tiny_gguf):
    model = TextModel.load(str(tiny_gguf))
    head = HeadStart.open(str(tiny_gguf))
    row = head.begin("the quick brown fox", chat=False, system=None, truncate=False, safety=None)
    row.row.config = GenerationConfig(do_sample=True)
    with pytest.raises(ValueError, match="only a greedy row"):
        model.resume(row)


def test_a_damaged_cache_means_no_head_start(tiny_gguf, tmp_path, monkeypatch):
    """Weights cut short after the header: the command then loads first (and the loader rebuilds the entry)."""
    import struct

    monkeypatch.setenv("LUOXIA_HOME", str(tmp_path / "home"))
    TextModel.load(str(tiny_gguf))
    weights = next((tmp_path / "home" / "weights").iterdir()) / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:8 + struct.unpack("<Q", data[:8])[0] + 16])
    assert HeadStart.open(str(tiny_gguf)) is None


def test_refused_and_too_long_prompts_are_left_to_the_normal_path(tiny_gguf):
    """A refusal makes no head start (the model path answers it); a prompt past the context window fails
    with the model path's own error, before anything loads."""
    from luoxia.core.errors import PromptTooLongError
    from luoxia.safety.filter import ContentFilter
    from luoxia.safety.policy import SafetyConfig

    head = HeadStart.open(str(tiny_gguf))
    blocking = SafetyConfig(content_filter=ContentFilter({"test": ["quick"]}))
    assert head.begin("the quick brown fox", chat=False, system=None, truncate=False, safety=blocking) is None
    long = " ".join(["fox"] * (head.config.max_seq_len + 5))
    with pytest.raises(PromptTooLongError, match="context window"):
        head.begin(long, chat=False, system=None, truncate=False, safety=None)
    assert head.begin(long, chat=False, system=None, truncate=True, safety=None, max_new_tokens=4) is not None
