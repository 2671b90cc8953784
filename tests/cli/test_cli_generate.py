"""`luoxia generate`: flags to parameters, fast failures, streaming, JSON, saving with labels.

Most tests use a tiny random HF model made by the fixtures; the `slow` ones use the embedded SmolLM2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from luoxia.cli.generate import decoding_params
from luoxia.cli.main import build_parser
from luoxia.core.artifact import TEXT_NOTICE
from luoxia.core.threads import THREAD_VARIABLES
from luoxia.text.generate import GenerationConfig
from luoxia.text.pipeline import TextModel, TextStream


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if a model gets loaded: bad input must be caught before that."""

    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(TextModel, "load", load)


def params(*argv: str) -> dict:
    return decoding_params(build_parser().parse_args(["generate", "x", *argv]))


# --- flags → GenerationConfig --------------------------------------------------------------------


def test_unset_flags_are_not_passed():
    assert params() == {}


def test_flags_map_onto_the_config_fields():
    got = params("--max-new-tokens", "5", "--max-length", "9", "--repetition-penalty", "1.2",
                 "--no-repeat-ngram-size", "3", "--num-beams", "2", "--length-penalty", "0.5",
                 "--early-stopping", "never", "--stop", "\n", "--stop", "User:", "--seed", "7", "--ignore-eos")
    assert got == {"max_new_tokens": 5, "max_length": 9, "repetition_penalty": 1.2, "no_repeat_ngram_size": 3,
                   "num_beams": 2, "length_penalty": 0.5, "early_stopping": "never", "stop": ("\n", "User:"),
                   "seed": 7, "ignore_eos": True}
    GenerationConfig(**got).validate()


def test_every_config_field_has_a_flag():
    every = params("--max-new-tokens", "5", "--min-new-tokens", "1", "--max-length", "9", "--sample",
                   "--temperature", "0.5", "--top-k", "3", "--top-p", "0.9", "--min-p", "0.1",
                   "--repetition-penalty", "1.1", "--frequency-penalty", "0.5", "--presence-penalty", "0.5",
                   "--no-repeat-ngram-size", "2", "--num-beams", "1",
                   "--length-penalty", "1", "--early-stopping", "true", "--stop", ".", "--seed", "1", "--ignore-eos",
                   "--watermark", "key", "--prompt-lookup", "4",
                   "--prediction", __file__)
    assert set(every) == {f.name for f in dataclasses.fields(GenerationConfig)}
    GenerationConfig(**every).validate()


@pytest.mark.parametrize("flag, value", [("--temperature", "0.7"), ("--top-k", "5"), ("--top-p", "0.9"),
                                         ("--min-p", "0.1")])
def test_sampling_parameters_switch_sampling_on(flag, value):
    assert params(flag, value)["do_sample"] is True
    assert params(flag, value, "--greedy")["do_sample"] is False


def test_sample_and_greedy():
    assert params("--sample") == {"do_sample": True}
    assert params("--greedy") == {"do_sample": False}
    assert not GenerationConfig(**params("--temperature", "0")).sampling  # temperature 0 means greedy


@pytest.mark.parametrize("early, value", [("true", True), ("false", False), ("never", "never")])
def test_early_stopping(early, value):
    assert params("--early-stopping", early)["early_stopping"] == value


# --- user errors: one line, exit 2, before the model loads ---------------------------------------


@pytest.mark.parametrize("flags, words", [
    (["--top-p", "0"], ["top_p", "(0, 1]"]),
    (["--top-p", "1.5"], ["top_p", "1.5"]),
    (["--temperature", "-1"], ["temperature", ">= 0"]),
    (["--num-beams", "0"], ["num_beams", ">= 1"]),
    (["--max-new-tokens", "0"], ["max_new_tokens", ">= 1"]),
    (["--min-new-tokens", "-1"], ["min_new_tokens", ">= 0"]),
    (["--min-p", "2"], ["min_p"]),
    (["--num-beams", "2", "--sample"], ["beam search with sampling"]),
    (["--dtype", "float8"], ["dtype", "float8"]),
    (["--device", "tpu9"], ["device", "tpu9"]),
    (["--system", "be brief", "--raw"], ["--system", "--raw"]),
    (["--draft-tokens", "3"], ["--draft-tokens", "--draft-model"]),
    (["--draft-model", "smollm2", "--draft-tokens", "0"], ["draft tokens", "[1, 64]", "0"]),
    (["--threads", "0"], ["--threads", ">= 1", "0"]),
])
def test_bad_parameters_fail_fast(luoxia, no_loading, flags, words):
    luoxia("generate", "Hello", *flags).assert_user_error(*words)


def test_prompt_file_not_utf8(luoxia, no_loading, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café crème".encode("latin-1"))
    luoxia("generate", "--prompt-file", path).assert_user_error("UTF-8")


def test_stdin_not_utf8(luoxia, no_loading):
    luoxia("generate", "-", stdin=b"\xff\xfe bad bytes").assert_user_error("UTF-8")


def test_prompt_file_missing(luoxia, no_loading, tmp_path):
    luoxia("generate", "--prompt-file", tmp_path / "nope.txt").assert_user_error("--prompt-file", "nope.txt")


def test_prediction_file_missing_or_not_utf8(luoxia, no_loading, tmp_path):
    luoxia("generate", "hi", "--prediction", tmp_path / "nope.txt").assert_user_error("--prediction", "nope.txt")
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    luoxia("generate", "hi", "--prediction", path).assert_user_error("--prediction", "UTF-8")


def test_prompt_twice_or_never(luoxia, no_loading, tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("hi")
    luoxia("generate", "hi", "--prompt-file", path).assert_user_error("not both")
    luoxia("generate").assert_user_error("no prompt")


def test_output_is_a_folder(luoxia, no_loading, tmp_path):
    luoxia("generate", "hi", "-o", tmp_path).assert_user_error("-o", "folder")


def test_missing_model(luoxia):
    luoxia("generate", "Hello", "--model", "/nonexistent.gguf").assert_user_error("/nonexistent.gguf", "no model")


def test_random_bytes_gguf(luoxia, tmp_path):
    path = tmp_path / "x.gguf"
    path.write_bytes(os.urandom(4096))
    luoxia("generate", "Hello", "--model", path).assert_user_error(str(path), "not a GGUF file")


def test_truncated_gguf(luoxia, tmp_path, smollm2_path):
    path = tmp_path / "truncated.gguf"
    with open(smollm2_path, "rb") as f:
        path.write_bytes(f.read(1 << 20))
    luoxia("generate", "Hello", "--model", path).assert_user_error(str(path), "damaged GGUF")


# --- the tiny model: modes, context window, JSON ------------------------------------------------


def long_prompt(words: int = 500) -> str:
    return " ".join(["the quick brown fox jumps over the lazy dog"] * (words // 9 + 1))


def test_prompt_longer_than_the_context_window(luoxia, tiny_raw_model):
    run = luoxia("generate", long_prompt(), "--model", tiny_raw_model, "--max-new-tokens", "4")
    run.assert_user_error("context window", "64", "--truncate")


def test_truncate_makes_a_long_prompt_fit(luoxia, tiny_raw_model):
    run = luoxia("generate", long_prompt(), "--model", tiny_raw_model, "--max-new-tokens", "4", "--truncate",
                 "--json")
    assert run.code == 0, run.err
    stats = json.loads(run.out)["provenance"]["stats"]
    assert stats["prompt_tokens"] == 64 - 4
    assert stats["new_tokens"] <= 4


def test_raw_is_the_default_without_a_chat_template(luoxia, tiny_raw_model):
    run = luoxia("generate", "the cat", "--model", tiny_raw_model, "--max-new-tokens", "3", "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["provenance"]["prompt"] == "the cat"


def test_chat_needs_a_chat_template(luoxia, tiny_raw_model):
    luoxia("generate", "hi", "--model", tiny_raw_model, "--chat").assert_user_error("no chat template")
    luoxia("generate", "hi", "--model", tiny_raw_model, "--system", "x").assert_user_error("no chat template")


def test_chat_is_the_default_with_a_chat_template(luoxia, tiny_chat_model):
    run = luoxia("generate", "hello world", "--model", tiny_chat_model, "--system", "be brief",
                 "--max-new-tokens", "3", "--json")
    assert run.code == 0, run.err
    prompt = json.loads(run.out)["provenance"]["prompt"]
    assert prompt == ("<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhello world<|im_end|>\n"
                      "<|im_start|>assistant\n")
    run = luoxia("generate", "hello world", "--model", tiny_chat_model, "--raw", "--max-new-tokens", "3", "--json")
    assert json.loads(run.out)["provenance"]["prompt"] == "hello world"


def test_stream_is_clean_stdout(luoxia, tiny_raw_model):
    run = luoxia("generate", "the cat", "--model", tiny_raw_model, "--max-new-tokens", "6", "--ignore-eos",
                 "--sample", "--seed", "3")
    assert run.code == 0, run.err
    assert run.out.strip() and TEXT_NOTICE not in run.out
    assert run.err_lines[0] == TEXT_NOTICE
    assert "6 tokens" in run.err_lines[1] and "tok/s" in run.err_lines[1]
    again = luoxia("generate", "the cat", "--model", tiny_raw_model, "--max-new-tokens", "6", "--ignore-eos",
                   "--sample", "--seed", "3")
    assert again.out == run.out  # a seed reproduces the sample


def test_threads_reach_torch_and_the_libraries_it_starts(luoxia, tiny_raw_model, monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.setenv(name, "2")  # put back after the test, as the process had them
    before = torch.get_num_threads()
    try:
        run = luoxia("generate", "the cat", "--model", tiny_raw_model, "--max-new-tokens", "2", "--threads", "1")
        assert run.code == 0, run.err
        assert torch.get_num_threads() == 1 and all(os.environ[name] == "1" for name in THREAD_VARIABLES)
    finally:
        torch.set_num_threads(before)


def test_a_draft_model_drafts_and_the_text_is_the_models_own(luoxia, tiny_raw_model):
    argv = ("generate", "the cat", "--model", tiny_raw_model, "--max-new-tokens", "8", "--ignore-eos")
    plain = luoxia(*argv)
    drafted = luoxia(*argv, "--draft-model", tiny_raw_model, "--draft-tokens", "3")
    assert drafted.code == 0, drafted.err
    assert drafted.out == plain.out
    assert "draft tiny" in drafted.err_lines[1] and "drafted kept" in drafted.err_lines[1], drafted.err_lines[1]


def test_compile_happens_before_the_answer_so_its_speed_is_the_answers(luoxia, tiny_raw_model):
    run = luoxia("generate", "the cat", "--model", tiny_raw_model, "--max-new-tokens", "6", "--ignore-eos",
                 "--compile")
    assert run.code == 0, run.err
    assert run.err_lines[0].startswith("compiling the decode step ... ") and run.err_lines[0].endswith(" s")
    assert run.err_lines[1] == TEXT_NOTICE
    assert "6 tokens" in run.err_lines[2] and "compiled" in run.err_lines[2]


def test_aot_builds_the_step_once_then_loads_it_by_default(luoxia, tiny_raw_model, tmp_path, monkeypatch):
    monkeypatch.setenv("LUOXIA_HOME", str(tmp_path))  # its own home: other tests' runs stay eager
    argv = ("generate", "the cat", "--model", tiny_raw_model, "--max-new-tokens", "6", "--ignore-eos")
    eager = luoxia(*argv)
    assert eager.code == 0 and not eager.err_lines[-1].endswith(" aot]")  # nothing built yet: eager
    first = luoxia(*argv, "--aot")
    assert first.code == 0, first.err
    assert first.err_lines[0].startswith("building the ahead-of-time decode step")
    assert first.err_lines[1].startswith("built it in ")
    assert "6 tokens" in first.err_lines[-1] and first.err_lines[-1].endswith(" aot]")
    again = luoxia(*argv, "--aot")
    assert again.code == 0 and again.out == first.out
    assert again.err_lines[0] == TEXT_NOTICE and again.err_lines[-1].endswith(" aot]")
    default = luoxia(*argv)  # built once, then used without asking
    assert default.code == 0 and default.out == first.out and default.err_lines[-1].endswith(" aot]")
    off = luoxia(*argv, "--no-aot")
    assert off.code == 0 and not off.err_lines[-1].endswith(" aot]")
    luoxia(*argv, "--aot", "--compile").assert_user_error("--compile", "--aot")
    assert luoxia(*argv, "--compile").err_lines[-1].endswith(" compiled]")  # a built step does not stop --compile


def test_prompt_from_stdin(luoxia, tiny_raw_model):
    run = luoxia("generate", "-", "--model", tiny_raw_model, "--max-new-tokens", "2", "--json", stdin="the dog")
    assert run.code == 0, run.err
    assert json.loads(run.out)["provenance"]["prompt"] == "the dog"


def test_ctrl_c_stops_generation(luoxia, tiny_raw_model, monkeypatch):
    closed = []

    def pieces():
        try:
            yield "the"
            raise KeyboardInterrupt
        finally:
            closed.append(True)

    monkeypatch.setattr(TextModel, "stream", lambda self, prompt, **kwargs: TextStream(pieces()))
    run = luoxia("generate", "the cat", "--model", tiny_raw_model)
    assert run.code == 130
    assert run.out == "the\n"
    assert run.err.strip() == TEXT_NOTICE
    assert closed and "Traceback" not in run.err


def test_head_start_gives_the_same_answer_sooner(luoxia, tiny_gqa3_dir, tmp_path, monkeypatch):
    """A cached GGUF model, greedy: the first tokens come from NumPy before torch loads (text.head_start).
    Float32 weights, so with or without it the tokens are the same."""
    from tiny_models import write_gguf

    monkeypatch.setenv("LUOXIA_HOME", str(tmp_path / "home"))  # an empty cache
    path = write_gguf(tmp_path / "tiny.gguf", tiny_gqa3_dir, "F32")
    flags = ("generate", "the quick brown fox", "--model", path, "--raw", "--max-new-tokens", "12", "--ignore-eos")
    first = luoxia(*flags)  # converts the model: no cache yet, so no head start
    assert first.code == 0, first.err
    assert "head start" not in first.err
    started, plain = luoxia(*flags), luoxia(*flags, "--no-head-start")
    assert started.code == plain.code == 0, started.err + plain.err
    assert "head start: 8 from NumPy, then " in started.err and "head start" not in plain.err
    assert started.out == plain.out == first.out and started.out.strip()


# --- the embedded model --------------------------------------------------------------------------


@pytest.mark.slow
def test_generate_embedded_greedy(luoxia):
    run = luoxia("generate", "The capital of France is", "--max-new-tokens", "8")
    assert run.code == 0, run.err
    assert run.out.strip()
    assert TEXT_NOTICE in run.err and "tok/s" in run.err
    again = luoxia("generate", "The capital of France is", "--max-new-tokens", "8")  # the cache is filled now
    assert again.code == 0 and "head start: 8 from NumPy" in again.err, again.err


@pytest.mark.slow
def test_generate_embedded_json(luoxia, smollm2_path):
    run = luoxia("generate", "Name a colour.", "--max-new-tokens", "8", "--json")
    assert run.code == 0, run.err
    result = json.loads(run.out)
    provenance = result["provenance"]
    assert provenance["model"] == "smollm2"
    assert provenance["model_sha256"] == hashlib.sha256(smollm2_path.read_bytes()).hexdigest()
    assert provenance["params"]["max_new_tokens"] == 8 and provenance["params"]["do_sample"] is False
    assert 1 <= provenance["stats"]["new_tokens"] <= 8
    assert result["text"] and result["notice"] == TEXT_NOTICE


@pytest.mark.slow
def test_generate_embedded_saves_labelled_file(luoxia, tmp_path):
    out = tmp_path / "out.txt"
    run = luoxia("generate", "Write one word.", "--max-new-tokens", "8", "-o", out)
    assert run.code == 0, run.err
    body = out.read_bytes()
    assert body.decode().startswith(run.out.rstrip("\n")) and TEXT_NOTICE in body.decode()
    sidecar = json.loads((tmp_path / "out.txt.aigc.json").read_text())
    assert sidecar["content_sha256"] == hashlib.sha256(body).hexdigest()
    assert sidecar["model"] == "smollm2" and sidecar["params"]["max_new_tokens"] == 8
    assert f"saved {out} and {out}.aigc.json" in run.err


@pytest.mark.slow
def test_console_script_end_to_end():
    """The installed `luoxia` script, prompt on stdin; then a bad flag from the same script."""
    script = Path(sys.executable).parent / "luoxia"
    done = subprocess.run([script, "generate", "-", "--max-new-tokens", "8"], input="Say hi.",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert TEXT_NOTICE in done.stderr
    done = subprocess.run([script, "generate", "hi", "--top-p", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("luoxia: error: top_p") and len(done.stderr.splitlines()) == 1
