"""The decode attention kernel against PyTorch's attention, and compiled steps that call it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from luoxia.text import decode_attention


@pytest.fixture(scope="module")
def kernel():
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler: compiled steps keep PyTorch's attention")
    assert decode_attention.KERNEL.load(), decode_attention.KERNEL.failure()
    return torch.ops.luoxia.decode_attention


def reference(q, k, v, mask):
    """PyTorch's attention in float32 (a bfloat16 cache widened), as (B, T, H·D)."""
    B, H, T, D = q.shape
    y = F.scaled_dot_product_attention(q, k.float(), v.float(), attn_mask=mask, enable_gqa=k.shape[1] != H)
    return y.transpose(1, 2).reshape(B, T, H * D)


@pytest.mark.parametrize(("B", "H", "K", "T", "S", "D"), [
    (16, 9, 3, 1, 96, 64),   # SmolLM2's batch step
    (1, 9, 3, 9, 40, 64),    # a speculative check: causal among the new tokens
    (3, 4, 4, 2, 17, 32),    # one query head per key head, a narrower head, a short odd cache
    (2, 8, 2, 5, 300, 128),  # four query heads per key head, more rows than a register group
])
@pytest.mark.parametrize("cache_dtype", [torch.float32, torch.bfloat16])
def test_matches_torch_attention(kernel, B, H, K, T, S, D, cache_dtype):
    torch.manual_seed(0)
    q = torch.randn(B, H, T, D)
    # Keys and values as the step reads them: the first S columns of a longer cache (not contiguous).
    k, v = (torch.randn(B, K, S + 7, D, dtype=cache_dtype)[:, :, :S] for _ in range(2))
    mask = torch.ones(B, 1, T, S, dtype=torch.bool).tril(S - T)  # causal after S - T cached positions
    mask[0, :, :, : S // 3] = False  # row 0 left-padded
    out = kernel(q, k, v, mask)
    assert out.shape == (B, T, H * D)
    torch.testing.assert_close(out, reference(q, k, v, mask), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(kernel(q, k, v, None), reference(q, k, v, None), atol=2e-6, rtol=1e-5)


def test_row_with_nothing_to_attend_is_zero(kernel):
    q, k, v = torch.randn(2, 3, 1, 16), torch.randn(2, 3, 5, 16), torch.randn(2, 3, 5, 16)
    mask = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    mask[1] = False
    out = kernel(q, k, v, mask)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    torch.testing.assert_close(out[0], reference(q, k, v, mask)[0])


def test_bad_input_is_refused(kernel):
    q, k = torch.randn(1, 3, 1, 16), torch.randn(1, 3, 5, 16)
    with pytest.raises(RuntimeError, match="q must be float32"):
        kernel(q.bfloat16(), k.bfloat16(), k.bfloat16(), None)
    with pytest.raises(RuntimeError, match="both be float32 or both bfloat16"):
        kernel(q, k, k.half(), None)
    with pytest.raises(RuntimeError, match="multiple of"):
        kernel(torch.randn(1, 4, 1, 16), torch.randn(1, 3, 5, 16), torch.randn(1, 3, 5, 16), None)
    with pytest.raises(RuntimeError, match="head width"):
        kernel(torch.randn(1, 3, 1, 12), torch.randn(1, 3, 5, 12), torch.randn(1, 3, 5, 12), None)


def test_built_once_then_loaded(kernel):
    path = decode_attention.KERNEL.library_path()
    assert path.exists() and not list(path.parent.glob(f".{path.name}.*"))  # no half-written build left
    assert decode_attention.KERNEL.load()  # a second call only reports


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 0.02)])
def test_an_exported_step_calls_the_kernel_and_gives_the_eager_logits(kernel, dtype, tolerance):
    from luoxia.text.aot_step import FlatStep, example_inputs
    from luoxia.text.kv_cache import KVCache
    from luoxia.text.model import Transformer
    from luoxia.text.model_config import TransformerConfig

    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=96, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                                          ffn_dim=128, max_seq_len=64))  # heads 16 wide, 2 a key head
    model.init_weights()  # created uninitialised (loaders fill it)
    model = model.eval().to(dtype)
    tokens, positions, start, mask, *kv = example_inputs(model, rows=3, tokens=2, length=12, start=5)
    tokens = torch.randint(0, 96, tokens.shape)
    positions = positions + torch.arange(5, 7)
    for cache in kv:
        cache.normal_()
    mask[0, :, :, :2] = False  # a left-padded row
    with torch.no_grad():
        program = torch.export.export(FlatStep(model), (tokens, positions, start, mask, *[c.clone() for c in kv]))
        assert "luoxia.decode_attention" in str(program.graph)
        packaged = program.module()(tokens, positions, start, mask, *[c.clone() for c in kv])
        caches = [KVCache.of(k, v) for k, v in zip(kv[0::2], kv[1::2])]
        eager = model(tokens, caches, start, positions, mask)
    assert torch.isfinite(eager).all() and eager.std() > 0
    # float32: the rounding of the sums' order; bfloat16: that, rounded to bfloat16 where the model rounds
    assert (packaged - eager).abs().max() <= tolerance * eager.abs().max()


def run_load(home, **env) -> subprocess.CompletedProcess:
    """`decode_attention.KERNEL.load()` in a fresh process with its own luoxia home."""
    code = ("from luoxia.text import decode_attention as d; ok = d.KERNEL.load(); "
            "print(ok, d.KERNEL.library_path().exists(), d.KERNEL.failure())")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "LUOXIA_HOME": str(home), **env}, timeout=300)


def test_without_a_compiler_compiled_steps_keep_torch_attention(tmp_path):
    run = run_load(tmp_path, CXX="no-such-compiler")
    assert run.returncode == 0 and run.stdout.split()[:2] == ["False", "False"]
    assert "no C++ compiler (no-such-compiler) on PATH" in run.stdout
    assert run.stderr.count("\n") == 1 and "compiled steps use PyTorch's attention" in run.stderr


def test_a_damaged_build_is_made_again(kernel, tmp_path):
    damaged = tmp_path / "kernels" / decode_attention.KERNEL.library_path().name
    damaged.parent.mkdir()
    damaged.write_bytes(b"not a shared library")
    run = run_load(tmp_path)
    assert run.stdout.split()[:2] == ["True", "True"], run.stderr
    assert damaged.read_bytes()[:4] == b"\x7fELF" and not list(damaged.parent.glob(".*"))
