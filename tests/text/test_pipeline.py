"""The user-facing pipeline on a tiny model: streaming, stop strings, seeds, provenance, bad input."""

from __future__ import annotations

import json

import pytest

from luoxia.core.artifact import TEXT_NOTICE
from luoxia.core.errors import InputEncodingError, InvalidParameterError, PromptTooLongError
from luoxia.text.pipeline import TextModel
from luoxia.text.stopping import find_stop, safe_length


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir) -> TextModel:
    return TextModel.load(str(tiny_llama_dir))


def test_stream_pieces_join_to_the_result(tiny):
    stream = tiny.stream("The quick brown fox", max_new_tokens=30, min_new_tokens=30)
    pieces = list(stream)
    assert "".join(pieces) == stream.result.text
    assert stream.result.text == tiny.tokenizer.decode(stream.result.token_ids)
    assert len(stream.result.token_ids) == 30 and stream.result.finish_reason == "length"


def test_closing_a_stream_keeps_the_partial_result(tiny):
    stream = tiny.stream("The quick brown fox", max_new_tokens=50, min_new_tokens=50)
    it = iter(stream)
    first = [next(it) for _ in range(3)]
    stream.close()
    assert stream.result is not None and stream.result.text.startswith("".join(first))
    assert len(stream.result.token_ids) < 50


def test_stop_string_cuts_the_text_and_is_never_streamed(tiny):
    full = tiny.generate("She sells", max_new_tokens=40, min_new_tokens=40).text
    stop = full[10:13]
    assert stop and stop in full
    stream = tiny.stream("She sells", max_new_tokens=40, min_new_tokens=40, stop=[stop])
    shown = "".join(stream)
    assert stream.result.finish_reason == "stop"
    assert shown == stream.result.text == full[: full.index(stop)]


def test_stop_string_helpers():
    assert find_stop("abc###def", ["###", "def"]) == 3
    assert find_stop("abc", ["x"]) == -1
    assert safe_length("hello wor", ["world"]) == 6
    assert safe_length("hello", ["world"]) == 5
    assert safe_length("ab", ["abc", "b"]) == 0


def test_seed_makes_sampling_reproducible(tiny):
    a = tiny.generate("The quick", max_new_tokens=20, do_sample=True, temperature=1.5, seed=7)
    b = tiny.generate("The quick", max_new_tokens=20, do_sample=True, temperature=1.5, seed=7)
    c = tiny.generate("The quick", max_new_tokens=20, do_sample=True, temperature=1.5, seed=8)
    assert a.token_ids == b.token_ids != c.token_ids


def test_unseeded_sampling_records_its_seed(tiny):
    a = tiny.generate("The quick", max_new_tokens=12, do_sample=True, temperature=1.5)
    assert a.provenance.seed is not None
    again = tiny.generate("The quick", max_new_tokens=12, do_sample=True, temperature=1.5, seed=a.provenance.seed)
    assert again.token_ids == a.token_ids


def test_temperature_zero_is_greedy(tiny):
    greedy = tiny.generate("The quick", max_new_tokens=12)
    assert tiny.generate("The quick", max_new_tokens=12, do_sample=True, temperature=0).token_ids == greedy.token_ids


def test_provenance_has_model_params_counts_and_timings(tiny):
    r = tiny.generate("The quick brown fox", max_new_tokens=8, min_new_tokens=8, top_p=0.5)
    p = r.provenance
    assert p.model_sha256 and len(p.model_sha256) == 64
    assert p.params["max_new_tokens"] == 8 and p.params["top_p"] == 0.5
    assert p.stats["prompt_tokens"] == len(tiny.tokenizer.encode("The quick brown fox"))
    assert p.stats["new_tokens"] == 8
    assert p.stats["time_to_first_token_s"] > 0 and p.stats["decode_tokens_per_s"] > 0
    assert p.prompt == "The quick brown fox"
    json.dumps(r.to_dict())


def test_artifact_save_writes_notice_and_provenance(tiny, tmp_path):
    r = tiny.generate("The quick brown fox", max_new_tokens=8)
    path = r.artifact.save(tmp_path / "out.txt")
    body = path.read_text()
    assert body.startswith(r.text) and TEXT_NOTICE in body
    sidecar = json.loads((tmp_path / "out.txt.aigc.json").read_text())
    assert sidecar["model_sha256"] == r.provenance.model_sha256 and len(sidecar["content_sha256"]) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "out.txt.aigc.json"]  # no temp files left


def test_chat_with_system_prompt_uses_the_template(tiny):
    prompt = tiny.chat_prompt("Hi", system="Be brief.")
    assert prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    r = tiny.generate("Hi", chat=True, system="Be brief.", max_new_tokens=5)
    assert r.provenance.prompt == prompt


def test_max_length_counts_the_prompt(tiny):
    n = len(tiny.tokenizer.encode("The quick brown fox"))
    r = tiny.generate("The quick brown fox", max_length=n + 6, min_new_tokens=6)
    assert len(r.token_ids) == 6


@pytest.mark.parametrize("params, message", [
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(temperature=-1.0), "temperature"),
    (dict(num_beams=0), "num_beams"),
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(top_k=-3), "top_k"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(num_beams=3, do_sample=True, temperature=0.7), "beam search with sampling"),
])
def test_impossible_parameters_are_rejected_before_any_work(tiny, params, message):
    with pytest.raises(InvalidParameterError, match=message):
        tiny.generate("hi", **params)


def test_prompt_longer_than_context_errors_or_truncates(tiny):
    long_prompt = "the lazy dog jumps " * 200  # far more than the 256-token window
    with pytest.raises(PromptTooLongError, match="context window is 256.*truncate"):
        tiny.generate(long_prompt, max_new_tokens=4)
    r = tiny.generate(long_prompt, max_new_tokens=4, min_new_tokens=4, truncate=True)
    assert r.provenance.stats["prompt_tokens"] == 256 - 4 and len(r.token_ids) == 4


def test_new_tokens_are_clamped_to_the_window(tiny):
    prompt = "the lazy dog jumps " * 40
    n = len(tiny.tokenizer.encode(prompt))
    r = tiny.generate(prompt, max_new_tokens=1000, ignore_eos=True)
    assert n + len(r.token_ids) == 256 and r.finish_reason == "length"


def test_non_utf8_prompt_is_a_clear_error(tiny):
    with pytest.raises(InputEncodingError, match="UTF-8"):
        tiny.generate(b"caf\xe9 au lait")
    assert tiny.generate("café".encode(), max_new_tokens=2).text is not None


def test_empty_prompt_is_a_clear_error(tiny):
    with pytest.raises(InvalidParameterError, match="empty"):
        tiny.generate("")


def test_batch_of_prompts_returns_one_result_each(tiny):
    prompts = ["The quick brown fox", "落霞", "def main():\n    print("]
    results = tiny.generate(prompts, max_new_tokens=10, min_new_tokens=10)
    assert [r.provenance.prompt for r in results] == prompts
    assert all(len(r.token_ids) == 10 and r.provenance.stats["batch_size"] == 3 for r in results)
    beams = tiny.generate(prompts[:2], max_new_tokens=6, num_beams=3)
    assert [b.token_ids for b in beams] == [tiny.generate(p, max_new_tokens=6, num_beams=3).token_ids
                                            for p in prompts[:2]]


def test_eos_ends_generation(tiny, monkeypatch):
    free = tiny.generate("The quick", max_new_tokens=10, min_new_tokens=10).token_ids
    stop_token = free[3]
    monkeypatch.setattr(tiny.tokenizer, "eos_ids", [stop_token])
    r = tiny.generate("The quick", max_new_tokens=10)
    end = free.index(stop_token) + 1
    assert r.token_ids == free[:end] and r.finish_reason == "eos"
    assert r.text == tiny.tokenizer.decode(free[:end - 1])


def test_stream_rows_gives_each_row_its_own_length_and_stop(tiny):
    """A batch streamed row by row equals each prompt generated alone, lengths and stops per row."""
    alone = tiny.generate("She sells", max_new_tokens=12, min_new_tokens=12)
    stop = alone.text[4:6]
    asks = [("The quick brown fox", {"max_new_tokens": 5}), ("She sells", {"max_new_tokens": 12, "stop": (stop,)}),
            ("Numbers like", {"max_new_tokens": 9})]
    rows = [tiny.prepare(p, min_new_tokens=12, **kw) for p, kw in asks]
    pieces: dict[int, str] = {}
    results = {}
    for i, event in tiny.stream_rows(rows):
        if isinstance(event, str):
            assert i not in results, "a piece arrived after its row's result"
            pieces[i] = pieces.get(i, "") + event
        else:
            results[i] = event
    for i, (prompt, kw) in enumerate(asks):
        solo = tiny.generate(prompt, min_new_tokens=12, **kw)
        assert results[i].text == solo.text == pieces.get(i, "")
        assert results[i].finish_reason == solo.finish_reason
        assert results[i].provenance.stats["batch_size"] == 3
    assert results[1].finish_reason == "stop" and len(results[0].token_ids) == 5


def test_stream_rows_stops_a_cancelled_row_without_a_result(tiny):
    rows = [tiny.prepare(p, max_new_tokens=20, min_new_tokens=20) for p in ("The quick", "She sells")]
    seen = []
    for i, event in tiny.stream_rows(rows, cancelled=lambda i: i == 0 and len(seen) > 2):
        seen.append((i, event))
    assert [i for i, e in seen if not isinstance(e, str)] == [1]
