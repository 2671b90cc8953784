"""Session fixtures: an isolated $LUOXIA_HOME, tiny models in real formats, the embedded model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from tiny_models import make_hf_model, make_tokenizer

torch.set_num_threads(max(1, os.cpu_count() or 1))


@pytest.fixture
def one_torch_thread():
    """One intra-op thread, restored afterwards: tiny models run faster on one, and on a shared 2-core
    machine two OpenMP threads wait on each other (10x slower). Image and video tests use it for all."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def luoxia_home(tmp_path_factory) -> Path:
    """All tests share one temporary $LUOXIA_HOME, so the embedded model is converted once."""
    home = tmp_path_factory.mktemp("luoxia_home")
    os.environ["LUOXIA_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def _tiny(tmp_path_factory, tokenizer_dir: Path, arch: str, **overrides) -> Path:
    from tokenizers import Tokenizer

    directory = tmp_path_factory.mktemp(f"tiny_{arch}")
    vocab = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).get_vocab_size()
    make_hf_model(directory, arch, vocab, **overrides)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, directory / name)
    return directory


@pytest.fixture(scope="session", params=["llama", "gpt2", "qwen2"])
def tiny_hf_dir(request, tmp_path_factory, tokenizer_dir) -> Path:
    return _tiny(tmp_path_factory, tokenizer_dir, request.param)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tokenizer_dir) -> Path:
    return _tiny(tmp_path_factory, tokenizer_dir, "llama")


@pytest.fixture(scope="session")
def tiny_gqa3_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A tiny Llama grouped as SmolLM2 is: 3 key/value heads (shared by 2 query heads each)."""
    return _tiny(tmp_path_factory, tokenizer_dir, "llama", hidden_size=48, num_attention_heads=6,
                 num_key_value_heads=3)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from luoxia.core.registry import resolve

    return resolve("smollm2")


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    """Our engine on the embedded model, unquantized float32 (the transformers-parity path)."""
    from luoxia import load_text_model

    return load_text_model("smollm2", quant="none")


@pytest.fixture(scope="session")
def hf_smollm2(smollm2_path):
    """transformers on the same GGUF (dequantized to float32): (model, tokenizer)."""
    transformers = pytest.importorskip("transformers")
    kwargs = dict(gguf_file=smollm2_path.name)
    tok = transformers.AutoTokenizer.from_pretrained(smollm2_path.parent, **kwargs)
    model = transformers.AutoModelForCausalLM.from_pretrained(smollm2_path.parent, dtype=torch.float32, **kwargs)
    return model.eval(), tok
