"""Words, Chinese characters and sentences; the format checks; number contradictions."""

from __future__ import annotations

import pytest

from luoxia.core.errors import InvalidParameterError
from luoxia.eval.checks import CheckResult, make_check, register_check
from luoxia.eval.coherence import number_contradictions
from luoxia.eval.textsplit import chars, is_chinese, split_sentences, words


def test_words_and_characters():
    assert words("Don't panic, Arthur!") == ["don't", "panic", "arthur"]
    assert words("我爱Python 3") == ["我", "爱", "python", "3"]
    assert chars("床前 明月") == ["床", "前", "明", "月"]
    assert is_chinese("床前明月光") and not is_chinese("moonlight 光")


def test_sentences_split_on_chinese_and_english_punctuation():
    assert split_sentences("他说：“走吧。”我们就走了！真的吗？") == ["他说：“走吧。”", "我们就走了！", "真的吗？"]
    assert split_sentences("Mr. Smith left at 3.5 p.m. today. Fine!\nNew line") == [
        "Mr.", "Smith left at 3.5 p.m.", "today.", "Fine!", "New line"]  # abbreviations split: a known limit
    assert split_sentences("  ") == []


def test_poem_check():
    jueju = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
    assert make_check("poem")(jueju).passed and make_check("poem:5")(jueju).passed
    assert not make_check("poem:7")(jueju).passed
    broken = make_check("poem:5")("床前明月光，疑是地上霜了。")
    assert not broken.passed and "[5, 6]" in broken.detail


def test_json_and_word_checks():
    assert make_check("json")('{"a": [1, 2]}').passed
    assert make_check("json")('```json\n{"a": 1}\n```').passed
    assert not make_check("json")("{'a': 1}").passed
    assert make_check("max-words:3")("one two three").passed
    assert not make_check("max-words:3")("one two three four").passed
    assert make_check("min-words:4")("一二三四").passed  # a Chinese character counts as a word
    assert not make_check("max-chars:3")("abcd").passed


def test_bad_check_specs_name_the_fix():
    with pytest.raises(InvalidParameterError, match="unknown check 'rhyme'.*poem"):
        make_check("rhyme")
    with pytest.raises(InvalidParameterError, match="max-words:N"):
        make_check("max-words:many")


def test_checks_are_pluggable():
    register_check("starts-with", lambda spec, arg: lambda text: CheckResult(spec, text.startswith(arg), ""), "x")
    assert make_check("starts-with:Dear")("Dear Sir").passed


def test_number_contradictions():
    found = number_contradictions("The company has 120 employees and 3 offices.",
                                  "With its 150 employees in 3 offices, it grew.")
    assert [(c.unit, c.prompt, c.output) for c in found] == [("employee", ["120"], ["150"])]
    assert number_contradictions("Revenue was 1,000 dollars.", "It made 1000 dollars.") == []
    assert number_contradictions("公司有120名员工。", "这家公司的150名员工都很努力。")[0].output == ["150"]
    assert number_contradictions("It costs 5 dollars.", "The weather is fine.") == []
