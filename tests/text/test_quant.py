"""Quantization: int4 exact on the Q4_1 grid, w8a8 close to float and row-independent, the right layer
choices, quality on the real model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from luoxia.core.errors import InvalidParameterError
from luoxia.text import int8_matmul, quant
from luoxia.text.quant import DynamicInt8Linear, Int4Linear, Int8Linear, choose_quant, input_maxima, quantize

HELD_OUT = Path("/usr/share/common-licenses/GPL-3")  # long English prose that ships with Debian


def q4_1_weights(out_features: int, in_features: int, seed: int = 0) -> torch.Tensor:
    """Weights as a Q4_1 GGUF holds them: per group of 32, scale·q + min with q in 0..15 (both ends used)."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 16, (out_features, in_features // 32, 32), generator=g).float()
    codes[..., 0], codes[..., 1] = 0, 15
    scale = (torch.rand(out_features, in_features // 32, 1, generator=g) * 0.01 + 0.001).bfloat16().float()
    low = (torch.randn(out_features, in_features // 32, 1, generator=g) * 0.02).bfloat16().float()
    return (codes * scale + low).reshape(out_features, in_features)


def test_int4_reproduces_q4_1_weights_up_to_bfloat16_rounding():
    w = q4_1_weights(96, 128)
    layer = Int4Linear.from_float(w, None)
    identity = torch.eye(128, dtype=torch.bfloat16)
    recovered = layer(identity).float().t()  # row i of x·Wᵀ for x = e_i is column i of W
    # bfloat16 rounds the zero point and the output: allow one bfloat16 step of the group's magnitude, far
    # below the 4-bit step (range/15) that re-rounding onto any other grid would cost.
    group_max = w.reshape(96, 4, 32).abs().amax(-1, keepdim=True).expand(-1, -1, 32).reshape(96, 128)
    assert ((recovered - w).abs() <= group_max * 2**-7).all()


def test_int8_and_int4_are_close_to_float(tmp_path):
    g = torch.Generator().manual_seed(1)
    w, b, x = torch.randn(64, 96, generator=g), torch.randn(64, generator=g), torch.randn(3, 5, 96, generator=g)
    ref = torch.nn.functional.linear(x, w, b)
    for layer, tolerance in ((Int8Linear.from_float(w, b), 0.02), (Int4Linear.from_float(w, b), 0.12)):
        y = layer(x.bfloat16()).float()
        assert y.shape == ref.shape
        assert (y - ref).norm() / ref.norm() < tolerance, type(layer).__name__


def test_int4_prompts_take_an_int8_copy_of_the_same_weights():
    """Calls of PREFILL_TOKENS tokens a row or more (prompts) multiply by the int4 weights as w8a8 (2.6x
    faster there); shorter ones (decode steps, draft checks) by the int4 kernel itself."""
    g = torch.Generator().manual_seed(3)
    w, b = q4_1_weights(64, 128, seed=3), torch.randn(64, generator=g)
    x = torch.randn(2, quant.PREFILL_TOKENS, 128, generator=g)
    x[..., 7] *= 50  # an outlier channel, which the calibration's maxima smooth
    layer = Int4Linear.from_float(w, b, input_max=x.abs().reshape(-1, 128).amax(0))
    kernel = torch.ops.aten._weight_int4pack_mm_for_cpu(x.bfloat16().reshape(-1, 128), layer.weight, 32,
                                                        layer.scales_and_zeros).view(2, -1, 64) + layer.bias
    prompt = layer(x.bfloat16())
    assert torch.equal(prompt, (layer.prefill(x.bfloat16()).to(torch.bfloat16) + layer.bias))
    assert ((prompt.float() - kernel.float()).norm() / kernel.float().norm()).item() < 0.02
    short = x[:, :quant.PREFILL_TOKENS - 1].bfloat16()
    assert torch.equal(layer(short), kernel[:, :quant.PREFILL_TOKENS - 1])  # the int4 kernel, bit for bit


def test_int4_batches_take_the_copy_too():
    """A call of BATCH_ROWS rows or more (a batch's decode step) multiplies by the copy too; fewer rows, by
    the int4 kernel."""
    g = torch.Generator().manual_seed(4)
    layer = Int4Linear.from_float(q4_1_weights(64, 128, seed=4), torch.randn(64, generator=g))
    x = torch.randn(quant.BATCH_ROWS, 1, 128, generator=g).bfloat16()
    kernel = torch.ops.aten._weight_int4pack_mm_for_cpu(x.reshape(-1, 128), layer.weight, 32,
                                                        layer.scales_and_zeros).view(-1, 1, 64) + layer.bias
    assert torch.equal(layer(x), layer.prefill(x).to(torch.bfloat16) + layer.bias)
    assert torch.equal(layer(x[:-1]), kernel[:-1])


def test_which_int4_calls_take_the_copy(monkeypatch):
    rows, prompt = quant.BATCH_ROWS, quant.PREFILL_TOKENS
    assert [quant.takes_the_copy(r, t) for r, t in [(1, 1), (rows - 1, 16), (rows, 1), (1, prompt)]] == \
        [False, False, True, True]
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # compiled or exported: by rows alone
    assert [quant.takes_the_copy(r, t) for r, t in [(rows - 1, 16), (rows, 1), (1, prompt)]] == [False, True, False]


def test_w8a8_is_close_to_float_and_smoothing_tames_outlier_channels():
    g = torch.Generator().manual_seed(2)
    w, b = torch.randn(64, 96, generator=g) * 0.05, torch.randn(64, generator=g)
    x = torch.randn(4, 7, 96, generator=g)
    x[..., 5] *= 300  # one huge channel, as transformers' MLP inputs have: it sets every token's int8 step
    ref = torch.nn.functional.linear(x, w, b)

    def error(layer):
        return ((layer(x) - ref).norm() / ref.norm()).item()

    plain = DynamicInt8Linear.from_float(w, b)
    smoothed = DynamicInt8Linear.from_float(w, b, input_max=x.abs().reshape(-1, 96).amax(0))
    assert error(smoothed) < 0.02
    assert error(smoothed) < error(plain) / 3


def test_w8a8_rows_do_not_depend_on_their_batch():
    # Activations are quantized per row, so a prompt's output is the same alone or in any batch.
    g = torch.Generator().manual_seed(3)
    layer = DynamicInt8Linear.from_float(torch.randn(48, 64, generator=g), None)
    x = torch.randn(16, 64, generator=g)
    x[3] *= 1000
    alone = torch.cat([layer(row[None]) for row in x])
    assert torch.equal(layer(x), alone)


def test_w8a8_quantize_calibrates_every_linear_layer(tiny_llama_dir):
    # (Its quantized-weights cache is tested with the int4 one in test_gguf.py.)
    from luoxia.text.pipeline import TextModel

    base = TextModel.load(str(tiny_llama_dir), quant="none")
    maxima = input_maxima(base.model, list(range(20)))
    assert set(maxima) == {n for n, m in base.model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert maxima["layers.0.attention.wqkv"].shape == (base.model.config.dim,)

    first = TextModel.load(str(tiny_llama_dir), quant="w8a8")
    wqkv = first.model.layers[0].attention.wqkv
    assert isinstance(wqkv, DynamicInt8Linear) and isinstance(first.model.output, DynamicInt8Linear)
    assert not torch.equal(wqkv.input_scale, torch.ones_like(wqkv.input_scale))  # calibrated, not plain
    assert first.model.tok_embeddings.weight.dtype == torch.float32
    result = first.generate("the cat sat on", max_new_tokens=8, ignore_eos=True)
    assert len(result.token_ids) == 8


def test_quantize_picks_layers(tiny_llama_dir):
    from luoxia.text.pipeline import TextModel

    model = TextModel.load(str(tiny_llama_dir), quant="none").model
    quantize(model, "int4")
    # int4: the output projection is w8a8 (faster than weight-only int8 there), unsmoothed
    assert isinstance(model.output, DynamicInt8Linear) and model.output.weight.dtype == torch.int8
    assert torch.equal(model.output.input_scale, torch.ones_like(model.output.input_scale))
    assert isinstance(model.layers[0].attention.wqkv, Int4Linear)  # in_features 64: groups of 32 fit
    prefill = model.layers[0].attention.wqkv.prefill  # kept float32 when the rest becomes bfloat16
    assert prefill.scales.dtype == prefill.input_scale.dtype == torch.float32
    assert torch.equal(prefill.input_scale, torch.ones_like(prefill.input_scale))  # no calibration: unsmoothed
    assert model.tok_embeddings.weight.dtype == torch.bfloat16
    logits = model(torch.arange(10)[None])
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    model = TextModel.load(str(tiny_llama_dir), quant="none").model
    quantize(model, "int8")
    assert isinstance(model.output, Int8Linear) and isinstance(model.layers[0].attention.wqkv, Int8Linear)


def test_choose_quant_keeps_the_source_precision(monkeypatch):
    monkeypatch.setattr(quant, "int8_beats_int4", lambda: False)  # an AVX-512 CPU, or no AVX2 kernel built
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert choose_quant("auto", "Q4_1", cpu) == "int4"
    assert choose_quant(None, "Q4_K", cpu) == "int4"
    assert choose_quant("auto", "Q8_0", cpu) == "int8"
    assert choose_quant("auto", "F32", cpu) == "none"
    assert choose_quant("auto", "Q4_1", gpu) == "none"
    assert choose_quant("int8", "F32", cpu) == "int8"
    assert choose_quant("auto", "Q4_1", cpu, compile=True) == "w8a8"  # compiled, the fastest that keeps quality
    assert choose_quant("auto", "F32", cpu, compile=True) == "none"
    assert choose_quant("int4", "Q4_1", cpu, compile=True) == "int4"
    assert choose_quant("auto", "Q4_1", gpu, compile=True) == "none"
    with pytest.raises(InvalidParameterError, match="CPU only"):
        choose_quant("int4", "Q4_1", gpu)
    with pytest.raises(InvalidParameterError, match="unknown quantization"):
        choose_quant("int3", "Q4_1", cpu)


def test_a_4bit_source_runs_as_w8a8_where_int8_products_are_faster(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")  # a laptop
    for kernel in (int8_matmul.AVX_VNNI_KERNEL, int8_matmul.AVX2_KERNEL):
        monkeypatch.setattr(kernel, "load", lambda: True)
        monkeypatch.setattr(int8_matmul, "this_cpus_kernel", lambda kernel=kernel: kernel)
        assert choose_quant("auto", "Q4_1", cpu) == "w8a8"
        assert choose_quant("auto", "Q8_0", cpu) == "int8" and choose_quant("int4", "Q4_1", cpu) == "int4"
        monkeypatch.setattr(kernel, "load", lambda: False)  # no C++ compiler: oneDNN's slow products
        assert choose_quant("auto", "Q4_1", cpu) == "int4"
    monkeypatch.setattr(int8_matmul, "this_cpus_kernel", lambda: None)  # no x86 vector kernel applies
    assert choose_quant("auto", "Q4_1", cpu) == "int4"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")  # the int4 kernel's fast path
    for kernel in int8_matmul.KERNELS:
        monkeypatch.setattr(int8_matmul, "this_cpus_kernel", lambda kernel=kernel: kernel)
        assert choose_quant("auto", "Q4_1", cpu) == "int4"


def perplexity(model, ids: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(ids).float()
    return math.exp(torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]).item())


@pytest.mark.slow
@pytest.mark.skipif(not HELD_OUT.is_file(), reason="needs Debian's common-licenses text")
def test_quantized_perplexity_within_3_percent_of_float32(smollm2, monkeypatch):
    """One 1,024-token forward: int4 as a prompt reads it (its int8 copy, smoothed on the calibration text)
    and, with the prompt path off, as decode steps read it (the int4 kernel)."""
    from luoxia import load_text_model

    ids = torch.tensor([smollm2.tokenizer.encode(HELD_OUT.read_text())[:1024]])
    reference = perplexity(smollm2.model, ids)
    for mode in ("int8", "int4", "w8a8"):
        quantized = load_text_model("smollm2", quant=mode)
        assert quantized.load_info["quant"] == mode
        assert perplexity(quantized.model, ids) < reference * 1.03, mode
        if mode == "int4":
            assert not torch.equal(quantized.model.layers[0].feed_forward.w_out.prefill.input_scale,
                                   torch.ones(smollm2.model.config.ffn_dim))  # calibrated
            with monkeypatch.context() as patch:
                patch.setattr(quant, "PREFILL_TOKENS", 10**9)
                assert perplexity(quantized.model, ids) < reference * 1.03, "int4 kernel"


def test_dtype_conflicts_with_quant(tiny_llama_dir):
    from luoxia.text.pipeline import TextModel

    with pytest.raises(InvalidParameterError, match="bfloat16"):
        TextModel.load(str(tiny_llama_dir), quant="int8", dtype="float32")
    with pytest.raises(InvalidParameterError, match="w8a8 computes in float32"):
        TextModel.load(str(tiny_llama_dir), quant="w8a8", dtype="bfloat16")
