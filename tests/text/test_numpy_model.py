"""The NumPy transformer (text.numpy_model) against the torch one, on the same weights."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from luoxia.text.formats.cache import map_weights
from luoxia.text.numpy_model import NumpyTransformer
from luoxia.text.pipeline import TextModel


def numpy_twin(model: TextModel, max_len: int) -> NumpyTransformer:
    weights = {name: t.detach().numpy() for name, t in model.model.state_dict().items()}
    return NumpyTransformer(model.model.config, weights, max_len)


def test_logits_match_torch_prefill_then_token_by_token(tiny_hf_dir):
    """Llama, GPT-2 and Qwen2: a prompt at once, then one token at a time."""
    assert_twin_matches(TextModel.load(str(tiny_hf_dir), quant="none"))


def test_logits_match_torch_with_grouped_query_attention(tiny_gqa3_dir):
    assert_twin_matches(TextModel.load(str(tiny_gqa3_dir), quant="none"))


def assert_twin_matches(model: TextModel) -> None:
    tokens = torch.randint(0, model.model.config.vocab_size, (1, 14), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model.model(tokens)[0].numpy()  # (T, vocab): the logits after every position
    twin = numpy_twin(model, 16)
    got = [twin.forward(tokens[0, :9].tolist())] + [twin.forward([t]) for t in tokens[0, 9:].tolist()]
    np.testing.assert_allclose(np.stack(got), expected[8:], atol=1e-4, rtol=1e-4)
    assert twin.length == 14


def test_greedy_tokens_equal_the_torch_models(tiny_gqa3_dir):
    model = TextModel.load(str(tiny_gqa3_dir), quant="none")
    prompt = model.encode_prompt("the quick brown fox")
    expected = model.generate("the quick brown fox", max_new_tokens=12, ignore_eos=True).token_ids
    twin = numpy_twin(model, len(prompt) + 12)
    got, logits = [], twin.forward(prompt)
    for _ in range(12):
        got.append(int(logits.argmax()))
        logits = twin.forward([got[-1]])
    assert got == expected


def test_a_full_cache_is_an_error(tiny_llama_dir):
    twin = numpy_twin(TextModel.load(str(tiny_llama_dir), quant="none"), 4)
    twin.forward([1, 2, 3])
    with pytest.raises(ValueError, match="do not fit a cache of 4"):
        twin.forward([4, 5])


def test_map_weights_reads_what_safetensors_wrote(tmp_path):
    from safetensors.numpy import save_file

    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.float32([[0.5]])}
    save_file(arrays, tmp_path / "w.safetensors")
    mapped = map_weights(tmp_path / "w.safetensors")
    assert mapped.keys() == arrays.keys()
    for name, array in arrays.items():
        np.testing.assert_array_equal(mapped[name], array)
    save_file({"h": np.zeros(2, dtype=np.float16)}, tmp_path / "h.safetensors")
    with pytest.raises(ValueError, match="F16, not F32"):
        map_weights(tmp_path / "h.safetensors")


def test_no_torch_on_the_way_to_the_first_token():
    """What `luoxia generate` runs before its first token must not import torch (1-1.5 s of import)."""
    code = ("import sys, luoxia.cli.main, luoxia.text.head_start, luoxia.cli.generate; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
