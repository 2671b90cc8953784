"""Fixtures for the CLI tests: an in-process `luoxia` and a tiny HF model.

tests/conftest.py gives the session one temporary $LUOXIA_HOME (in the environment, so
subprocesses see it too), so the embedded model is converted at most once per session.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# A ChatML template, as SmolLM2 and Qwen use.
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]  # ids 0..4; LlamaConfig's eos id is 2
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a cat sat on the mat and looked at the dog",
    "hello world , how are you today ?",
    "once upon a time there was a small model that wrote words",
]
CONTEXT = 64  # max_position_embeddings of the tiny model


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def assert_user_error(self, *words: str) -> None:
        """Exit 2, exactly one line on stderr naming the problem, no traceback."""
        assert self.code == 2, self
        assert len(self.err_lines) == 1, self.err
        line = self.err_lines[0]
        assert line.startswith("luoxia: error: "), line
        for word in words:
            assert word in line, (word, line)
        assert "Traceback" not in self.err + self.out


@pytest.fixture
def luoxia(capsys, monkeypatch) -> Callable[..., Run]:
    """Run `luoxia ARGV...` in this process; `stdin` (str or bytes) replaces standard input."""
    from luoxia.cli.main import main

    def run(*argv: str, stdin: str | bytes | None = None) -> Run:
        if stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory) -> Path:
    """A random 2-layer Llama (context 64) with a word-level tokenizer and a ChatML template, as an HF folder."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    directory = tmp_path_factory.mktemp("tiny_llama")
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=SPECIALS, show_progress=False))
    tok.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "add_bos_token": False, "chat_template": CHATML}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))

    torch.manual_seed(0)
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=CONTEXT,
        bos_token_id=1, eos_token_id=2,
    ))
    llama.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_raw_model(tiny_chat_model: Path, tmp_path_factory) -> Path:
    """The same model without a chat template."""
    directory = tmp_path_factory.mktemp("tiny_llama_raw")
    for f in tiny_chat_model.iterdir():
        shutil.copy(f, directory / f.name)
    config = json.loads((directory / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory
