"""`luoxia chat`: the REPL driven through stdin, its commands, history, and Ctrl-C."""

from __future__ import annotations

import io
import sys
import threading

import pytest

from luoxia.core.artifact import TEXT_NOTICE
from luoxia.core.background import Loader
from luoxia.text.pipeline import TextModel


@pytest.fixture
def prompts(monkeypatch) -> list[str]:
    """The rendered conversations the REPL sends to the model, in order."""
    seen: list[str] = []
    real = TextModel._stream

    def spy(self, prompt, templated, truncate, params):
        assert templated
        seen.append(prompt)
        return real(self, prompt, templated, truncate, params)

    monkeypatch.setattr(TextModel, "_stream", spy)
    return seen


def chat(luoxia, model, stdin: str, *flags: str):
    return luoxia("chat", "--model", model, "--max-new-tokens", "3", "--ignore-eos", *flags, stdin=stdin)


def test_history_reset_and_system(luoxia, tiny_chat_model, prompts):
    run = chat(luoxia, tiny_chat_model, "hello world\nthe cat\n/reset\n/system be brief\nthe dog\n/exit\nignored\n")
    assert run.code == 0, run.err
    assert TEXT_NOTICE in run.err_lines[:2]
    assert "conversation cleared" in run.err
    assert len(prompts) == 3
    first, second, third = prompts
    answer = run.out.splitlines()[0]
    assert second.startswith(first + answer + "<|im_end|>\n<|im_start|>user\nthe cat")  # history kept
    assert third == "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nthe dog<|im_end|>\n" \
                    "<|im_start|>assistant\n"  # history cleared, system prompt set
    assert len(run.out.splitlines()) == 3  # one line per answer, nothing else on stdout


def test_eof_quits_and_commands_are_explained(luoxia, tiny_chat_model, prompts):
    run = chat(luoxia, tiny_chat_model, "/help\n/bogus\n\n/system\n")
    assert run.code == 0, run.err
    assert "/reset" in run.err and "unknown command /bogus" in run.err and "the model's own" in run.err
    assert prompts == [] and run.out == ""


def test_ctrl_c_stops_the_answer_and_keeps_it(luoxia, tiny_chat_model, monkeypatch):
    seen: list[str] = []
    real = TextModel._stream

    def interrupted_once(self, prompt, templated, truncate, params):
        seen.append(prompt)
        stream = real(self, prompt, templated, truncate, params)
        if len(seen) == 1:
            inner = stream._pieces

            def pieces():
                try:
                    yield next(inner)
                    raise KeyboardInterrupt
                finally:
                    inner.close()

            stream._pieces = pieces()
        return stream

    monkeypatch.setattr(TextModel, "_stream", interrupted_once)
    run = luoxia("chat", "--model", tiny_chat_model, "--max-new-tokens", "5", "--ignore-eos",
                 stdin="hello world\nthe cat\n")
    assert run.code == 0, run.err
    partial = run.out.splitlines()[0]
    assert partial
    assert "finish: interrupted" in run.err
    assert seen[1].startswith(seen[0] + partial + "<|im_end|>\n")  # the partial answer stays in the history


def test_ctrl_c_at_the_prompt_quits(luoxia, tiny_chat_model, monkeypatch):
    class Interrupting(io.StringIO):
        def readline(self, *args):
            raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stdin", Interrupting())
    run = luoxia("chat", "--model", tiny_chat_model)
    assert run.code == 0
    assert "Traceback" not in run.err


class Terminal(io.StringIO):
    """Standard input typed at a terminal: `luoxia chat` shows its prompt line and loads the model behind it."""

    def isatty(self) -> bool:
        return True


def test_at_a_terminal_the_prompt_line_shows_while_the_model_loads(luoxia, tiny_chat_model, monkeypatch):
    real_load, go_on, events = TextModel.load, threading.Event(), []

    def slow_load(*args, **kwargs):
        events.append("load started")
        go_on.wait(10)  # as long as importing torch and reading the weights take
        model = real_load(*args, **kwargs)
        events.append("loaded")
        return model

    class Typing(Terminal):
        def readline(self, *args):
            events.append("prompt line")
            if len(events) == 2:  # the first message is sent; loading takes another moment
                threading.Timer(0.5, go_on.set).start()
            return super().readline(*args)

    monkeypatch.setattr(TextModel, "load", slow_load)
    monkeypatch.setattr(sys, "stdin", Typing("hello world\n"))
    run = luoxia("chat", "--model", tiny_chat_model, "--max-new-tokens", "3", "--ignore-eos")
    assert run.code == 0, run.err
    assert events == ["load started", "prompt line", "loaded", "prompt line"]
    assert run.err_lines[0].startswith(f"chatting with {tiny_chat_model}")
    assert "(loading the model ...)" in run.err_lines
    assert run.out.startswith("> ") and len(run.out.splitlines()[0]) > len("> ")  # the answer follows the prompt


def test_at_a_terminal_ctrl_c_while_the_model_loads_drops_the_message(luoxia, tiny_chat_model, monkeypatch, prompts):
    real_result, waits = Loader.result, []

    def interrupted_once(self):
        waits.append(self)
        if len(waits) == 1:
            raise KeyboardInterrupt  # as Ctrl-C does while the chat waits for the model
        return real_result(self)

    monkeypatch.setattr(Loader, "result", interrupted_once)
    monkeypatch.setattr(sys, "stdin", Terminal("first message\nsecond message\n"))
    run = luoxia("chat", "--model", tiny_chat_model, "--max-new-tokens", "3", "--ignore-eos")
    assert run.code == 0, run.err
    assert "(message dropped: the model is still loading)" in run.err_lines
    assert len(prompts) == 1 and "first message" not in prompts[0] and "second message" in prompts[0]


def test_at_a_terminal_a_load_error_ends_the_chat_with_one_error_line(luoxia, tiny_raw_model, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal("/help\nhi\n"))
    run = luoxia("chat", "--model", tiny_raw_model)
    assert run.code == 2, run
    errors = [line for line in run.err_lines if line.startswith("luoxia: error:")]
    assert len(errors) == 1 and "no chat template" in errors[0]
    assert "/reset" in run.err  # commands work while the model loads
    assert "Traceback" not in run.err


def test_at_a_terminal_a_wrong_model_name_fails_before_the_prompt_line(luoxia, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal("hi\n"))
    luoxia("chat", "--model", "nope.gguf").assert_user_error("no model 'nope.gguf'", "luoxia models")


def test_too_long_a_conversation_is_reported_and_the_chat_goes_on(luoxia, tiny_chat_model, prompts):
    long_line = " ".join(["the quick brown fox jumps over the lazy dog"] * 10)
    run = chat(luoxia, tiny_chat_model, f"{long_line}\nhello world\n")
    assert run.code == 0, run.err
    errors = [line for line in run.err_lines if line.startswith("luoxia: error:")]
    assert len(errors) == 1 and "context window" in errors[0] and "/reset" in errors[0]
    assert long_line not in prompts[-1]  # the message that did not fit left the history
    assert len(run.out.splitlines()) == 1


def test_chat_needs_a_chat_template(luoxia, tiny_raw_model):
    luoxia("chat", "--model", tiny_raw_model, stdin="hi\n").assert_user_error("no chat template")


def test_bad_parameters_fail_before_loading(luoxia, monkeypatch):
    monkeypatch.setattr(TextModel, "load", lambda *a, **k: pytest.fail("loaded"))
    luoxia("chat", "--top-p", "0", stdin="hi\n").assert_user_error("top_p")


@pytest.mark.slow
def test_chat_embedded(luoxia):
    run = luoxia("chat", "--max-new-tokens", "8", stdin="hello\n/reset\n/exit\n")
    assert run.code == 0, run.err
    assert run.out.strip()
    assert TEXT_NOTICE in run.err and "chatting with smollm2" in run.err
