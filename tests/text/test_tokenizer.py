"""Tokenizer and chat-template parity with transformers, and streaming that never splits a character."""

from __future__ import annotations

import pytest

from luoxia.text.formats.gguf import open_gguf, read_tokenizer
from luoxia.text.formats.hf import read_tokenizer as read_hf_tokenizer

transformers = pytest.importorskip("transformers")

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "落霞与孤鹜齐飞，秋水共长天一色。",
    "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "emoji: 🙂🚀👩‍👩‍👧 and flags 🇨🇳",
    "runs    of     spaces\tand\ttabs",
    "\n\n\nnewlines\n\n  \n",
    " leading space and trailing space ",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>special<|im_end|> glued",
    "Ünïcödé façade — naïve café “quotes” ‘single’",
    "mixed 中文 English 日本語 한국어 العربية",
    "x = {'a': [1, 2, 3]}; y = x['a'][0] ** 2",
    "version 2.13.0 released on 2026-11-28 at 18:00, costs $3,999.99",
]
DIGIT_FREE = [t for t in TEXTS if not any(c.isdigit() for c in t)]


@pytest.fixture(scope="module")
def gguf_pair(smollm2_path):
    ours = read_tokenizer(open_gguf(smollm2_path))
    theirs = transformers.AutoTokenizer.from_pretrained(smollm2_path.parent, gguf_file=smollm2_path.name)
    return ours, theirs


@pytest.mark.parametrize("text", DIGIT_FREE)
def test_gguf_tokenizer_matches_transformers(gguf_pair, text):
    ours, theirs = gguf_pair
    assert ours.encode(text) == theirs(text)["input_ids"]
    ids = ours.encode(text)
    assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("text", TEXTS)
def test_gguf_tokenizer_splits_digits_like_smollm(gguf_pair, text):
    """SmolLM's vocabulary puts each digit in its own token (llama.cpp's "smollm" pre-tokenizer and
    the model's original tokenizer.json both do); transformers' GGUF reader misses that rule, so
    compare with transformers' tokenizer given the model's digit rule back."""
    from tokenizers import pre_tokenizers

    ours, theirs = gguf_pair
    fixed = theirs.backend_tokenizer
    fixed.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    assert ours.encode(text) == fixed.encode(text, add_special_tokens=False).ids
    assert all(len(theirs.decode([i])) == 1 for i in ours.encode("2026"))


def test_gguf_tokenizer_matches_llama_cpp_when_installed(smollm2_path):
    llama_cpp = pytest.importorskip("llama_cpp")
    ours = read_tokenizer(open_gguf(smollm2_path))
    ref = llama_cpp.Llama(str(smollm2_path), vocab_only=True, verbose=False)
    for text in TEXTS:
        assert ours.encode(text) == ref.tokenize(text.encode(), add_bos=False, special=True), text


@pytest.fixture(scope="module")
def hf_dir_pair(tmp_path_factory, gguf_pair):
    """The embedded tokenizer exported by transformers as an HF folder, read by both."""
    _, theirs = gguf_pair
    directory = tmp_path_factory.mktemp("smol_tok")
    theirs.save_pretrained(directory)
    return read_hf_tokenizer(directory), transformers.AutoTokenizer.from_pretrained(directory)


@pytest.mark.parametrize("text", TEXTS)
def test_hf_folder_tokenizer_matches_transformers(hf_dir_pair, text):
    ours, theirs = hf_dir_pair
    assert ours.encode(text) == theirs(text)["input_ids"]
    ids = ours.encode(text)
    assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=True)
    assert ours.decode(ids, skip_special_tokens=False) == theirs.decode(ids)


def test_tiny_trained_tokenizer_matches_transformers(tokenizer_dir):
    ours = read_hf_tokenizer(tokenizer_dir)
    theirs = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    for text in TEXTS:
        assert ours.encode(text) == theirs(text)["input_ids"], text


CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "写一首诗"}, {"role": "assistant", "content": "床前明月光"},
     {"role": "user", "content": "再来一首 🙂"}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_chat_template_matches_transformers(gguf_pair, hf_dir_pair, messages):
    for ours, theirs in (gguf_pair, hf_dir_pair):
        for add in (True, False):
            expected = theirs.apply_chat_template(messages, tokenize=False, add_generation_prompt=add)
            assert ours.apply_chat_template(messages, add_generation_prompt=add) == expected


TRICKY_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tools') }}{% endif %}"
    "{% if loop.index0 > 5 %}{% break %}{% endif %}"
    "[{{ m['role'] | upper }}] {{ m['content'] | trim }} {{ m | tojson }}\n"
    "{% endfor %}{% if add_generation_prompt %}[ASSISTANT]{% endif %}"
)


def test_template_environment_matches_transformers(tokenizer_dir):
    """Loop controls, tojson without HTML escaping, trim_blocks/lstrip_blocks, raise_exception."""
    import jinja2

    from luoxia.text.chat import render_chat

    theirs = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    messages = [{"role": "user", "content": "  <b>bold</b> & \"quoted\" 中文  "}] * 3
    expected = theirs.apply_chat_template(messages, chat_template=TRICKY_TEMPLATE, tokenize=False,
                                          add_generation_prompt=True)
    assert render_chat(TRICKY_TEMPLATE, messages, True, bos_token=theirs.bos_token) == expected
    with pytest.raises(jinja2.TemplateError, match="no tools"):
        render_chat(TRICKY_TEMPLATE, [{"role": "tool", "content": "x"}])


@pytest.mark.parametrize("text", [TEXTS[2], TEXTS[5], TEXTS[12], "秋水共长天一色 🙂 done"])
def test_streaming_never_emits_broken_characters(gguf_pair, text):
    ours, _ = gguf_pair
    ids = ours.encode(text)
    decoder = ours.stream_decoder()
    pieces = [decoder.step(i) for i in ids]
    assert "".join(pieces) == ours.decode(ids)
    assert all("\ufffd" not in p for p in pieces)
    assert "" in pieces  # some characters span several tokens and were held back until complete
