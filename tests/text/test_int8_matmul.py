"""The AMX int8 kernel against `torch._int_mm`, w8a8 layers and exported steps that call it."""

from __future__ import annotations

import shutil

import pytest
import torch

from luoxia.text import int8_matmul
from luoxia.text.int8_matmul import int8_product


@pytest.fixture(scope="module")
def kernel():
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler: int8 products use torch._int_mm")
    if (missing := int8_matmul.amx_missing()) is not None:
        pytest.skip(f"{missing}: int8 products use torch._int_mm")
    assert int8_matmul.KERNEL.load(), int8_matmul.KERNEL.failure()
    return torch.ops.luoxia.int8_matmul


def integers(*shape: int) -> torch.Tensor:
    return torch.randint(-128, 128, shape, dtype=torch.int8)


@pytest.mark.parametrize(("M", "K", "N"), [
    (16, 576, 960),     # SmolLM2's batch step: fused query/key/value
    (16, 576, 49152),   # its output projection
    (5, 1536, 576),     # fewer rows than a tile, the MLP's down projection
    (37, 128, 208),     # three chunks of rows (the last partial), 13 blocks of columns (groups of 4 and 1)
    (1, 64, 16),        # one tile each way
])
def test_matches_int_mm_exactly(kernel, M, K, N):
    torch.manual_seed(0)
    q, w = integers(M, K), integers(N, K)
    assert torch.equal(kernel(q, w), torch._int_mm(q, w.t()) if M > 16 else q.int() @ w.int().t())


def test_extremes_and_views(kernel):
    q = torch.full((3, 64), -128, dtype=torch.int8)
    w = torch.full((16, 64), -128, dtype=torch.int8)
    assert (kernel(q, w) == 64 * 128 * 128).all()  # the largest sums of 64 products are exact
    torch.manual_seed(1)
    wide = integers(64, 8)
    q = wide.t()  # not contiguous: (8, 64)
    w = integers(32, 64)
    assert torch.equal(kernel(q, w), q.int() @ w.int().t())
    assert kernel(integers(0, 64), w).shape == (0, 32)


def test_bad_input_is_refused(kernel):
    with pytest.raises(RuntimeError, match="must be int8"):
        kernel(torch.zeros(2, 64), integers(16, 64))
    with pytest.raises(RuntimeError, match="same width"):
        kernel(integers(2, 64), integers(16, 128))
    with pytest.raises(RuntimeError, match="multiple of 64, not 96"):
        kernel(integers(2, 96), integers(16, 96))
    with pytest.raises(RuntimeError, match="multiple of 16, not 24"):
        kernel(integers(2, 64), integers(24, 64))


def test_int8_product_takes_the_kernel_only_where_it_fits(kernel, monkeypatch):
    calls = []
    real = torch.ops.luoxia.int8_matmul

    class Spy:
        def int8_matmul(self, q, w):
            calls.append(q.shape)
            return real(q, w)

    monkeypatch.setattr(torch.ops, "luoxia", Spy())
    torch.manual_seed(2)
    q, w = integers(4, 128), integers(48, 128)
    assert torch.equal(int8_product(q, w), torch._int_mm(q, w.t())) and calls == [(4, 128)]
    q, w = integers(4, 96), integers(48, 96)  # not whole tiles: torch._int_mm
    assert torch.equal(int8_product(q, w), torch._int_mm(q, w.t())) and len(calls) == 1


def test_a_w8a8_layer_gives_the_same_numbers_through_either_product(kernel, monkeypatch):
    from luoxia.text.quant import DynamicInt8Linear

    torch.manual_seed(3)
    layer = DynamicInt8Linear.from_float(torch.randn(96, 128), torch.randn(96), input_max=torch.rand(128) * 4)
    x = torch.randn(2, 7, 128)
    through_kernel = layer(x)
    monkeypatch.setattr(int8_matmul.KERNEL, "loaded", False)
    assert torch.equal(through_kernel, layer(x))


def test_an_exported_w8a8_step_calls_the_kernel(kernel):
    from luoxia.text.aot_step import FlatStep, example_inputs
    from luoxia.text.kv_cache import KVCache
    from luoxia.text.model import Transformer
    from luoxia.text.model_config import TransformerConfig
    from luoxia.text.quant import quantize

    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=96, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                                          ffn_dim=128, max_seq_len=64))
    model.init_weights()  # created uninitialised (loaders fill it)
    model = quantize(model.eval(), "w8a8")
    tokens, positions, start, mask, *kv = example_inputs(model, rows=5, tokens=1, length=12, start=4)
    tokens = torch.randint(0, 96, tokens.shape)
    positions = positions + 4
    for cache in kv:
        cache.normal_()
    with torch.no_grad():
        program = torch.export.export(FlatStep(model), (tokens, positions, start, mask, *[c.clone() for c in kv]))
        assert str(program.graph).count("luoxia.int8_matmul") == 2 * 4 + 1  # fused qkv, wo, gate/up, down; head
        exported = program.module()(tokens, positions, start, mask, *[c.clone() for c in kv])
        eager = model(tokens, [KVCache.of(k, v) for k, v in zip(kv[0::2], kv[1::2])], start, positions, mask)
    assert torch.isfinite(eager).all() and eager.std() > 0
    assert torch.allclose(exported, eager, rtol=1e-5, atol=1e-5)
