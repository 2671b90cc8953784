"""GGUF loading: every tensor type against transformers' own GGUF loader, the cache, damaged files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from luoxia.core.errors import CorruptFileError, ModelNotFoundError, UnsupportedModelError
from luoxia.text.formats import cache
from luoxia.text.formats.gguf import load_gguf
from luoxia.text.pipeline import TextModel
from luoxia.text.quant import LAYOUT_VERSION
from tiny_models import make_hf_model, write_gguf

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # transformers needs it to read GGUF

QTYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"]


@pytest.fixture(scope="module")
def llama256_dir(tmp_path_factory, tokenizer_dir):
    """A tiny Llama whose matrices have 256-wide rows, the K-quants' block size."""
    from tokenizers import Tokenizer

    directory = tmp_path_factory.mktemp("llama256")
    vocab = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).get_vocab_size()
    make_hf_model(directory, "llama", vocab, hidden_size=256, intermediate_size=512)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, directory / name)
    return directory


@pytest.mark.parametrize("qtype", QTYPES)
def test_every_tensor_type_matches_transformers(tmp_path, llama256_dir, qtype):
    path = write_gguf(tmp_path / f"tiny-{qtype}.gguf", llama256_dir, qtype)
    ours = TextModel.load(str(path), use_cache=False, quant="none")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32)
    tokens = torch.randint(0, ours.model.config.vocab_size, (1, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = theirs.eval()(tokens).logits
        got = ours.model(tokens)
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, atol=1e-4 * max(1.0, scale), rtol=1e-4)


def test_f32_gguf_equals_the_hf_model_it_came_from(tmp_path, llama256_dir):
    """Round trip through llama.cpp's q/k permutation: same logits as the original folder."""
    path = write_gguf(tmp_path / "tiny.gguf", llama256_dir, "F32")
    from_gguf = TextModel.load(str(path), use_cache=False, quant="none").model
    from_hf = TextModel.load(str(llama256_dir), quant="none").model
    tokens = torch.arange(20)[None]
    with torch.no_grad():
        torch.testing.assert_close(from_gguf(tokens), from_hf(tokens), atol=1e-5, rtol=1e-5)


def test_conversion_is_cached_and_reused(tmp_path, llama256_dir, monkeypatch):
    monkeypatch.setenv("LUOXIA_HOME", str(tmp_path / "home"))
    path = write_gguf(tmp_path / "tiny.gguf", llama256_dir, "Q8_0")
    cold = TextModel.load(str(path))
    assert cold.load_info["from_cache"] is False
    entries = list((tmp_path / "home" / "weights").iterdir())
    assert [e.name for e in entries] == [cold.sha256]
    warm = TextModel.load(str(path))
    assert warm.load_info["from_cache"] is True
    for (name, a), (_, b) in zip(cold.model.state_dict().items(), warm.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert warm.tokenizer.encode("落霞 fox <|im_end|>") == cold.tokenizer.encode("落霞 fox <|im_end|>")
    assert warm.tokenizer.chat_template == cold.tokenizer.chat_template
    # A damaged cache entry is rebuilt, not fatal.
    (entries[0] / "model.safetensors").write_bytes(b"garbage")
    assert cache.load_cached(cold.sha256) is None
    assert TextModel.load(str(path), quant="none").load_info["from_cache"] is False


@pytest.mark.parametrize("mode", ["int4", "w8a8"])
def test_quantized_model_is_cached_and_reused(tmp_path, llama256_dir, monkeypatch, mode):
    monkeypatch.setenv("LUOXIA_HOME", str(tmp_path / "home"))
    path = write_gguf(tmp_path / "tiny.gguf", llama256_dir, "Q4_1")
    sha256 = TextModel.load(str(path), quant="none").sha256  # makes the cache folder
    older = cache.quantized_path(sha256, mode).with_name(f"model.{mode}.v1.torch-{torch.__version__}.safetensors")
    older.write_bytes(b"an older layout")
    newer = older.with_name(f"model.{mode}.v{LAYOUT_VERSION + 1}.torch-{torch.__version__}.safetensors")
    newer.write_bytes(b"a newer luoxia's layout")  # another environment sharing LUOXIA_HOME
    cold = TextModel.load(str(path), quant=mode)
    packed = cache.quantized_path(cold.sha256, mode)
    assert packed.is_file() and not older.exists()  # the file of the older layout went when the new one came
    assert newer.exists()
    warm = TextModel.load(str(path), quant=mode)  # built on the meta device, filled from the file
    # 64-byte aligned, as the packed kernels' batched paths need (the file's offsets crashed them)
    assert all(t.data_ptr() % 64 == 0 for t in warm.model.state_dict().values())
    tokens = torch.tensor([[1, 5, 9, 14, 3]] * 16)  # a batch: the kernels' blocked path
    prompts = torch.arange(80).reshape(2, 40) % 200  # 40 tokens a row: int4's prompt path (its w8a8 copy)
    with torch.no_grad():
        assert torch.equal(cold.model(tokens), warm.model(tokens))
        assert torch.equal(cold.model(prompts), warm.model(prompts))
    for (name, a), (_, b) in zip(cold.model.state_dict().items(), warm.model.state_dict().items()):
        assert torch.equal(a, b), name
    packed.write_bytes(b"garbage")  # damaged: quantized again, and rewritten
    again = TextModel.load(str(path), quant=mode)
    with torch.no_grad():
        assert torch.equal(again.model(tokens), cold.model(tokens))
    assert cache.load_quantized(cold.sha256, mode) is not None
    # A file of another layout (here a buffer short) is quantized again and rewritten, not a crash.
    stale = cache.load_quantized(cold.sha256, mode)
    stale.pop("output.scales")
    cache.store_quantized(cold.sha256, mode, stale)
    again = TextModel.load(str(path), quant=mode)
    with torch.no_grad():
        assert torch.equal(again.model(tokens), cold.model(tokens))
    assert "output.scales" in cache.load_quantized(cold.sha256, mode)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found"):
        load_gguf(tmp_path / "nope.gguf")


def test_random_bytes_are_not_a_gguf(tmp_path):
    path = tmp_path / "random.gguf"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptFileError, match="not a GGUF file"):
        load_gguf(path)


@pytest.mark.parametrize("keep", [0.02, 0.5, 0.99])
def test_truncated_gguf_is_a_clear_error(tmp_path, llama256_dir, keep):
    path = write_gguf(tmp_path / "tiny.gguf", llama256_dir, "Q4_1")
    cut = tmp_path / "cut.gguf"
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptFileError, match="truncated|damaged"):
        load_gguf(cut)


def test_unsupported_architecture_names_the_supported_ones(tmp_path):
    import gguf

    path = tmp_path / "mamba.gguf"
    w = gguf.GGUFWriter(str(path), "mamba")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UnsupportedModelError, match="'mamba'.*llama, qwen2, gpt2"):
        load_gguf(path)


@pytest.mark.slow
def test_embedded_model_tensors_match_transformers(smollm2, hf_smollm2):
    """Every weight of the embedded Q4_1/Q8_0 SmolLM2, dequantized by us and by transformers."""
    theirs, _ = hf_smollm2
    ours = smollm2.model
    hf = theirs.state_dict()
    c = ours.config
    for i in (0, c.n_layers - 1):
        q, k, v = (hf[f"model.layers.{i}.self_attn.{p}_proj.weight"] for p in "qkv")
        assert torch.equal(ours.layers[i].attention.wqkv.weight, torch.cat((q, k, v)))
        gate, up = hf[f"model.layers.{i}.mlp.gate_proj.weight"], hf[f"model.layers.{i}.mlp.up_proj.weight"]
        assert torch.equal(ours.layers[i].feed_forward.w_in.weight, torch.cat((gate, up)))
    assert torch.equal(ours.tok_embeddings.weight, hf["model.embed_tokens.weight"])

