"""The int8 kernels (AMX, AVX-512 VNNI, AVX-VNNI, AVX2) against `torch._int_mm`, w8a8 layers and exported steps
that call them. Each test runs once per kernel this CPU has; on an AMX CPU all four are tested."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from luoxia.text import int8_matmul
from luoxia.text.int8_matmul import int8_product

KERNELS = {int8_matmul.OPS[kernel]: kernel for kernel in int8_matmul.KERNELS}
AVX2_OPS = ("int8_matmul_avxvnni", "int8_matmul_avx2")  # one source: K a multiple of 32, N of 4


@pytest.fixture(scope="module", params=list(KERNELS))
def op_name(request) -> str:
    kernel = KERNELS[request.param]
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler: int8 products use torch._int_mm")
    if (reason := kernel.unusable()) is not None:
        pytest.skip(f"{reason}: no {kernel.what}")
    assert kernel.load(), kernel.failure()
    return request.param


@pytest.fixture
def kernel(op_name):
    return getattr(torch.ops.luoxia, op_name)


@pytest.fixture
def only(op_name, monkeypatch):
    """int8_product with this kernel loaded and the other not."""
    for name, kernel in KERNELS.items():
        monkeypatch.setattr(kernel, "loaded", name == op_name)
    return op_name


def integers(*shape: int) -> torch.Tensor:
    return torch.randint(-128, 128, shape, dtype=torch.int8)


@pytest.mark.parametrize(("M", "K", "N"), [
    (16, 576, 960),     # SmolLM2's batch step: fused query/key/value
    (16, 576, 49152),   # its output projection
    (5, 1536, 576),     # fewer rows than a tile, the MLP's down projection
    (3, 1536, 576),     # an odd count of rows (the AVX2 kernels take rows in pairs)
    (4, 576, 3072),     # the int4 mode's batch threshold (BATCH_ROWS)
    (37, 128, 208),     # three chunks of rows (the last partial), 13 blocks of columns (groups of 4 and 1)
    (1, 64, 16),        # one tile each way
    (32, 576, 3072),    # the most rows the VNNI kernel multiplies itself
    (33, 576, 3072),    # one more: it hands them to torch._int_mm
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


def test_without_vnni_the_avx2_kernel_keeps_every_product_exact():
    """oneDNN's AVX2 int8 GEMM (VPMADDUBSW) saturates, so the plain AVX2 build never hands rows to `_int_mm`, and
    `int8_product` takes the shapes no kernel takes in float32."""
    if shutil.which("g++") is None or int8_matmul.avx2_missing() is not None:
        pytest.skip("no C++ compiler or no AVX2")
    assert int8_matmul.AVX2_KERNEL.load(), int8_matmul.AVX2_KERNEL.failure()  # built here, found by the child
    code = """
import torch
from luoxia.text import int8_matmul
assert int8_matmul.AVX2_KERNEL.load(), int8_matmul.AVX2_KERNEL.failure()
torch.manual_seed(0)
q, w = torch.randint(-128, 128, (40, 128), dtype=torch.int8), torch.randint(-128, 128, (64, 128), dtype=torch.int8)
exact = q.int() @ w.int().t()
ours = torch.ops.luoxia.int8_matmul_avx2(q, w)
odd = q[:, :80], w[:, :80]  # a width no kernel takes
product = int8_matmul.int8_product(*odd)
print(int(torch.equal(torch._int_mm(q, w.t()), exact)), int(torch.equal(ours, exact)),
      int(int8_matmul.int_mm_is_exact()), int(torch.equal(product, odd[0].int() @ odd[1].int().t())))
"""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}  # read when torch loads: a process of its own
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    int_mm_exact, kernel_exact, found_inexact, product_exact = run.stdout.split()
    assert kernel_exact == "1" and product_exact == "1"
    assert int_mm_exact == "0" and found_inexact == "0"  # the saturation guarded against (until oneDNN fixes it)


def test_rows_a_kernel_hands_to_an_inexact_int_mm_run_in_float32():
    """The VNNI kernels hand products of more than 32 rows to `_int_mm`; with oneDNN capped below VNNI its sums
    saturate, so `int8_product` takes those in float32 (fewer rows stay the kernel's)."""
    kernels = [k for k in int8_matmul.HANDS_OFF_ABOVE if k.unusable() is None]
    if shutil.which("g++") is None or not kernels:
        pytest.skip("no C++ compiler or no VNNI")
    for kernel in kernels:
        assert kernel.load(), kernel.failure()  # built here, found by the child
    code = """
import torch
from luoxia.text import int8_matmul
torch.manual_seed(0)
w = torch.randint(-128, 128, (64, 128), dtype=torch.int8)
for kernel in int8_matmul.HANDS_OFF_ABOVE:
    if kernel.unusable() is None:
        assert kernel.load(), kernel.failure()
        for other in int8_matmul.KERNELS:
            other.loaded = other is kernel
        for rows in (40, 16):
            q = torch.randint(-128, 128, (rows, 128), dtype=torch.int8)
            print(int(torch.equal(int8_matmul.int8_product(q, w), q.int() @ w.int().t())), end=" ")
print(int(int8_matmul.int_mm_is_exact()))
"""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    *exact, int_mm_exact = run.stdout.split()
    assert int_mm_exact == "0" and exact == ["1"] * 2 * len(kernels)


@pytest.mark.parametrize(("M", "K", "N"), [(3, 1, 16), (5, 1000, 24), (2, 3000, 8), (0, 64, 8)])
def test_float_int8_product_is_exact(M, K, N):
    torch.manual_seed(3)
    q, w = integers(M, K), integers(N, K)
    assert torch.equal(int8_matmul.float_int8_product(q, w), q.int() @ w.int().t())
    q, w = torch.full((M, K), -128, dtype=torch.int8), torch.full((N, K), -128, dtype=torch.int8)
    assert (int8_matmul.float_int8_product(q, w) == K * 128 * 128).all()  # past 2**24 when K > 1024


@pytest.mark.parametrize("exact", [True, False])
def test_int8_product_avoids_an_inexact_int_mm(monkeypatch, exact):
    """No kernel loaded: `_int_mm` where it is exact, float32 where not (a CPU without VNNI) and for K = 1."""
    for kernel in int8_matmul.KERNELS:
        monkeypatch.setattr(kernel, "loaded", False)
    monkeypatch.setattr(int8_matmul, "int_mm_is_exact", lambda: exact)
    calls = []
    real = torch._int_mm
    monkeypatch.setattr(torch, "_int_mm", lambda a, b: calls.append(a.shape) or real(a, b))
    torch.manual_seed(4)
    for K in (64, 1):
        q, w = integers(4, K), integers(16, K)
        assert torch.equal(int8_product(q, w), q.int() @ w.int().t())
    assert calls == ([(4, 64)] if exact else [])


def test_bad_input_is_refused(kernel, op_name):
    with pytest.raises(RuntimeError, match="must be int8"):
        kernel(torch.zeros(2, 64), integers(16, 64))
    with pytest.raises(RuntimeError, match="same width"):
        kernel(integers(2, 64), integers(16, 128))
    (width, width_unit), (columns, columns_unit) = ((80, 32), (22, 4)) if op_name in AVX2_OPS else ((96, 64), (24, 16))
    with pytest.raises(RuntimeError, match=f"multiple of {width_unit}, not {width}"):
        kernel(integers(2, width), integers(16, width))
    with pytest.raises(RuntimeError, match=f"multiple of {columns_unit}, not {columns}"):
        kernel(integers(2, 64), integers(columns, 64))


def test_int8_product_takes_the_kernel_only_where_it_fits(only, monkeypatch):
    calls = []
    real = getattr(torch.ops.luoxia, only)

    class Spy:
        def __getattr__(self, name):
            assert name == only, f"{name} called while only {only} is loaded"
            return lambda q, w: calls.append(q.shape) or real(q, w)

    monkeypatch.setattr(torch.ops, "luoxia", Spy())
    torch.manual_seed(2)
    q, w = integers(4, 128), integers(48, 128)
    assert torch.equal(int8_product(q, w), torch._int_mm(q, w.t())) and calls == [(4, 128)]
    q, w = integers(4, 96), integers(44, 96)  # whole blocks of the AVX2 kernels, not tiles of the others
    assert torch.equal(int8_product(q, w), torch._int_mm(q, w.t())) and len(calls) == (2 if only in AVX2_OPS else 1)
    q, w = integers(4, 80), integers(48, 80)  # no kernel's: torch._int_mm
    assert torch.equal(int8_product(q, w), torch._int_mm(q, w.t())) and len(calls) == (2 if only in AVX2_OPS else 1)


@pytest.mark.parametrize(("cpu_has", "builds", "built"), [
    ((True, True, True, True), True, "AMX int8 kernel"),  # an AMX Xeon: the others are not built
    ((False, True, False, True), True, "AVX-512 VNNI int8 kernel"),  # Zen 4, Ice Lake
    ((False, False, True, True), True, "AVX-VNNI int8 kernel"),  # Alder Lake and later laptops
    ((False, False, False, True), True, "AVX2 int8 kernel"),  # Zen 2/3, older Intel
    ((True, True, True, True), False, "AMX int8 kernel"),  # AMX that failed to build: not replaced by the next
])
def test_the_first_kernel_this_cpu_has_is_the_one_built(monkeypatch, cpu_has, builds, built):
    tried = []
    for kernel, has in zip(int8_matmul.KERNELS, cpu_has, strict=True):
        monkeypatch.setattr(kernel, "unusable", lambda has=has: None if has else "not on this CPU")
        monkeypatch.setattr(kernel, "load", lambda kernel=kernel: tried.append(kernel.what) or builds)
    assert int8_matmul.load() == builds and tried == [built]
    for kernel in int8_matmul.KERNELS:
        monkeypatch.setattr(kernel, "unusable", lambda: "not on this CPU")
    assert not int8_matmul.load()  # no x86 vector unit: torch._int_mm


def test_a_w8a8_layer_gives_the_same_numbers_through_either_product(only, monkeypatch):
    from luoxia.text.quant import DynamicInt8Linear

    torch.manual_seed(3)
    layer = DynamicInt8Linear.from_float(torch.randn(96, 128), torch.randn(96), input_max=torch.rand(128) * 4)
    x = torch.randn(2, 7, 128)
    through_kernel = layer(x)
    for kernel in KERNELS.values():
        monkeypatch.setattr(kernel, "loaded", False)
    assert torch.equal(through_kernel, layer(x))


def test_an_exported_w8a8_step_calls_the_kernel(only):
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
        ops = [str(node.target) for node in program.graph.nodes if node.op == "call_function"]
        assert ops.count(f"luoxia.{only}.default") == 2 * 4 + 1  # fused qkv, wo, gate/up, down; head
        exported = program.module()(tokens, positions, start, mask, *[c.clone() for c in kv])
        eager = model(tokens, [KVCache.of(k, v) for k, v in zip(kv[0::2], kv[1::2])], start, positions, mask)
    assert torch.isfinite(eager).all() and eager.std() > 0
    assert torch.allclose(exported, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("exact", [True, False, None])
def test_a_compiled_int8_product_takes_the_checked_answer(monkeypatch, exact):
    """Compiled, `int8_product` takes the check's answer, or runs the check as it is traced (None: not asked
    yet), in one whole graph (dynamo cannot trace the check's Generator)."""
    for kernel in int8_matmul.KERNELS:
        monkeypatch.setattr(kernel, "loaded", False)
    monkeypatch.setattr(int8_matmul, "_int_mm_exact", exact)
    torch._dynamo.reset()
    product = torch.compile(int8_product, fullgraph=True, backend="eager")
    torch.manual_seed(5)
    q, w = integers(4, 80), integers(16, 80)
    assert torch.equal(product(q, w), q.int() @ w.int().t())
    assert int8_matmul._int_mm_exact is not None


def test_loading_a_model_leaves_the_compiler_unloaded():
    """Importing torch._dynamo takes about a second: a plain load must not (the check above is marked for it
    by attribute, not through dynamo's decorator)."""
    script = ("import sys, torch; import luoxia.text.pipeline, luoxia.text.int8_matmul; "
              "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
