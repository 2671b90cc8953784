"""Weight-only quantization for fast decoding on the CPU: int4 in groups of 32, or int8 per row.

At batch 1 a decoder reads every weight once per token, so its speed is set by memory bandwidth:
float32 SmolLM2-135M reads 540 MB a token, int4 about 70 MB. The matrices are kept as integers
plus scales and multiplied by PyTorch's packed CPU kernels (`_weight_int4pack_mm_for_cpu`,
`_weight_int8pack_mm`); activations run in bfloat16, the kernels' fast path.

int4 uses llama.cpp's Q4_1 grid: in each group of 32 weights w ≈ scale·q + min, q ∈ [0, 15],
with scale = (max − min)/15. A Q4_1 GGUF was quantized on exactly this grid, so re-quantizing its
dequantized weights gives back the file's own 4-bit values (up to the bfloat16 rounding of the
scales). The output projection (tied to the token embedding, which a Q4_1 GGUF stores as Q8_0) is
int8 per row: int4 there costs 2.4-5.7% perplexity, int8 under 0.1% (measured on two Debian
license texts), and in float32 it would read 113 MB a token, twice what all the int4 layers read.
In the int4 mode it is w8a8 (below, without smoothing): `torch._int_mm` runs the 49152x576 product in
0.65 ms against the weight-only int8 kernel's 1.14 ms, eager int4 decoding is about 5% faster (74.2,
75.4, 75.7 against 76.6, 79.2, 80.0 tokens/s in three alternating pairs), compiled int4 about 14%, and
perplexity rises 0.2-0.6% (SmolLM2-135M on the benchmarks' two held-out texts).

w8a8 quantizes the activations too, per token (row) on the fly, and multiplies int8 by int8 with
`torch._int_mm`. For a batch of 16 rows the weight-only kernels take about 5x as long as for one row,
the int8 product about 3x (on this project's AVX-512 VNNI CPU; on a CPU with AMX, `text.int8_matmul` takes
about the one-row time), so batches take it (int4's too, below). A
few activation channels of a transformer are huge (3,000x the typical one at the input of some of
SmolLM2's MLP down projections) and would swamp a token's int8 scale; SmoothQuant (Xiao et al., 2023)
divides each input channel by s = max|x|^0.6 / max|w|^0.4, measured once on a calibration text, and
multiplies the weight's column by s, so the product is unchanged and both sides quantize well.
Without it perplexity rises 2-5%.

Prompts in the int4 mode go through that w8a8 product too. `_weight_int4pack_mm_for_cpu` unpacks the
weights again for every few rows, so its cost grows with the tokens of a call: the embedded model
prefilled 551 tokens/s with it, 1,459 with int8 products (128-token prompt, this project's CPU). So
each int4 layer keeps a w8a8 copy of its own weights as the 4-bit codes give them (`prefill`, smoothed on
the calibration text: +106 MB for SmolLM2-135M), used by calls of `PREFILL_TOKENS` tokens a row or more;
decode steps and draft checks keep the int4 kernel. Perplexity over a 1,024-token forward through the
copy is 1.0142 / 0.9948 of float32's (through the kernel 1.0023 / 1.0116; GPL-3 and Apache-2.0 texts).
The same holds for rows: a batch of `BATCH_ROWS` rows or more (a server's, or `generate` with a list of
prompts) decodes through the copy too. One step of the embedded model compiled ahead of time took
11.7 ms at 4 rows through the kernel, 18.4 ms at 5 and 36.5 ms at 16; through the copy 11.4, 12.6 and
21.4 ms (`text.aot_step` builds a second package for such batches, and `torch.compile` a second graph).
"""

from __future__ import annotations

import sysconfig
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from luoxia.core.errors import InvalidParameterError
from luoxia.text import int8_matmul
from luoxia.text.int8_matmul import int8_product

Quant = Literal["none", "int8", "int4", "w8a8"]
# Bumped when a mode's modules or buffers change, so that quantized weights cached by an older layout
# are made again rather than loaded (`formats.cache.quantized_path`). 2: int4's output projection is w8a8;
# 3: int4 layers carry a w8a8 copy for prompts (`Int4Linear.prefill`).
LAYOUT_VERSION = 3
QUANTS = ("none", "int8", "int4", "w8a8")
GROUP = 32
# Calls with at least this many tokens a row (prompts) take int4 layers' w8a8 copy: the int4 kernel works
# row by row (a 128-token prompt at 551 tokens/s), the int8 product does not (1,459). Decode steps and draft
# checks of fewer than BATCH_ROWS rows, and every compiled or exported graph (at most 16 tokens), keep the kernel.
PREFILL_TOKENS = 32
# Calls of at least this many rows (a batch's decode steps) take the copy too: at 4 rows the two tie, from
# 5 the kernel's time jumps (module notes).
BATCH_ROWS = 4
# SmoothQuant's migration strength: 0 keeps the outliers in x, 1 moves them all to w. 0.6 was the best of
# 0.4/0.5/0.6 for SmolLM2-135M on two validation texts (MPL-2.0, LGPL-2.1), all three within 2%.
SMOOTHING_ALPHA = 0.6
# GGUF tensor types already at (or below) these precisions lose nothing more in our formats.
FOUR_BIT_SOURCES = {"Q4_0", "Q4_1", "Q4_K", "Q3_K", "Q2_K", "IQ4_NL", "IQ4_XS"}
EIGHT_BIT_SOURCES = {"Q8_0", "Q5_0", "Q5_1", "Q5_K", "Q6_K"}


def int8_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: q (int8, |q| ≤ 127) and the float32 scales with w ≈ q · scale."""
    scales = w.abs().amax(dim=1).clamp(min=1e-8) / 127
    return (w / scales[:, None]).round_().clamp_(-127, 127).to(torch.int8), scales


class Int8Linear(nn.Module):
    """y = x · (q · scale)ᵀ + b with q int8 per output row. `from_float` quantizes a weight; the
    constructor makes empty buffers for `load_state_dict` (a model loaded from the quantized cache)."""

    def __init__(self, out_features: int, in_features: int, bias: bool):
        super().__init__()
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scales", torch.empty(out_features, dtype=torch.bfloat16))
        self.register_buffer("bias", torch.empty(out_features, dtype=torch.bfloat16) if bias else None)

    @classmethod
    @torch.no_grad()
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> Int8Linear:
        layer = cls(*weight.shape, bias is not None)
        layer.weight, scales = int8_rows(weight.float())
        layer.scales = scales.to(torch.bfloat16)
        layer.bias = None if bias is None else bias.to(torch.bfloat16)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, x.shape[-1]), self.weight, self.scales)
        y = y.view(*x.shape[:-1], -1)
        return y if self.bias is None else y + self.bias


class Int4Linear(nn.Module):
    """y = x · Wᵀ + b with W stored as 4-bit codes in groups of 32 (Q4_1 grid), packed for the CPU kernel,
    and, for prompts and batches, `prefill`: the same W (as the codes give it) as w8a8, smoothed (module notes).
    `from_float` quantizes a weight; the constructor makes empty buffers for `load_state_dict`."""

    def __init__(self, out_features: int, in_features: int, bias: bool):
        super().__init__()
        self.out_features = out_features
        self.register_buffer("weight", torch.empty(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("scales_and_zeros", torch.empty(in_features // GROUP, out_features, 2,
                                                             dtype=torch.bfloat16))
        self.register_buffer("bias", torch.empty(out_features, dtype=torch.bfloat16) if bias else None)
        self.prefill = DynamicInt8Linear(out_features, in_features, bias=False)

    @classmethod
    @torch.no_grad()
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None,
                   input_max: torch.Tensor | None = None) -> Int4Linear:
        """Quantize `weight`; `input_max` (see `input_maxima`) smooths the prefill copy."""
        out_features, in_features = weight.shape
        layer = cls(out_features, in_features, bias is not None)
        groups = weight.float().reshape(out_features, in_features // GROUP, GROUP)
        lo, hi = groups.amin(dim=-1), groups.amax(dim=-1)
        scale = ((hi - lo) / 15).clamp(min=1e-8)
        codes = ((groups - lo[..., None]) / scale[..., None]).round_().clamp_(0, 15).to(torch.int32)
        # The kernel computes (q − 8)·scale + zero, so zero = min + 8·scale. Layout (in/GROUP, out, 2).
        scales_and_zeros = torch.stack((scale, lo + 8 * scale), dim=-1).to(torch.bfloat16)
        layer.weight = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.reshape(out_features, in_features), 1)
        layer.scales_and_zeros = scales_and_zeros.transpose(0, 1).contiguous()
        layer.bias = None if bias is None else bias.to(torch.bfloat16)
        as_coded = (codes - 8) * scales_and_zeros[..., :1].float() + scales_and_zeros[..., 1:].float()
        layer.prefill = DynamicInt8Linear.from_float(as_coded.reshape(out_features, in_features), None, input_max)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and takes_the_copy(x.shape[0], x.shape[1]):
            y = self.prefill(x).to(x.dtype)  # a prompt or a batch: the int8 product (module notes)
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(
                x.reshape(-1, x.shape[-1]), self.weight, GROUP, self.scales_and_zeros
            ).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def takes_the_copy(rows: int, tokens: int) -> bool:
    """Whether an int4 layer's call of `rows` × `tokens` goes through its w8a8 copy (module notes). A compiled
    or exported graph decides by rows alone: its calls take at most 16 tokens, and a branch on them would
    add a guard (`torch.compile`) or a second package (`text.aot_step`, which builds one for fewer than
    BATCH_ROWS rows and one for more; `torch.compile` makes one graph each)."""
    if torch.compiler.is_compiling():  # export too
        return rows >= BATCH_ROWS
    return rows >= BATCH_ROWS or tokens >= PREFILL_TOKENS


class DynamicInt8Linear(nn.Module):
    """W8A8: y = (x quantized to int8 per row) · (q int8 per output row)ᵀ, rescaled, + b. `input_scale`
    (1/s per input channel, SmoothQuant) is applied to x first; `weight` holds q for w·s."""

    def __init__(self, out_features: int, in_features: int, bias: bool):
        super().__init__()
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scales", torch.empty(out_features))
        self.register_buffer("input_scale", torch.empty(in_features))
        self.register_buffer("bias", torch.empty(out_features) if bias else None)

    @classmethod
    @torch.no_grad()
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None,
                   input_max: torch.Tensor | None = None) -> DynamicInt8Linear:
        """Quantize `weight`; with `input_max` (max |x| per input channel, see `input_maxima`) smooth first."""
        layer = cls(*weight.shape, bias is not None)
        w = weight.float()
        smooth = torch.ones(w.shape[1])
        if input_max is not None:
            smooth = (input_max.float().clamp(min=1e-5) ** SMOOTHING_ALPHA
                      / w.abs().amax(dim=0).clamp(min=1e-5) ** (1 - SMOOTHING_ALPHA))
        layer.weight, layer.scales = int8_rows(w * smooth)
        layer.input_scale = 1 / smooth
        layer.bias = None if bias is None else bias.float()
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).float() * self.input_scale
        step = rows.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8) / 127
        q = (rows / step).round_().to(torch.int8)  # within ±127 by construction of step
        y = int8_product(q, self.weight) * (step * self.scales)
        y = y.view(*x.shape[:-1], -1)
        return y if self.bias is None else y + self.bias


def calibration_ids(tokenizer, max_tokens: int = 1024) -> list[int]:
    """Token ids of the calibration text for w8a8's smoothing: the Python license (LICENSE.txt ships
    with every CPython, so it is always there; English prose, and not the held-out texts of the
    benchmarks' perplexity check)."""
    text = (Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt").read_text(encoding="utf-8", errors="replace")
    return tokenizer.encode(text, add_special_tokens=False)[:max_tokens]


@torch.no_grad()
def input_maxima(model: nn.Module, token_ids: list[int]) -> dict[str, torch.Tensor]:
    """max |x| per input channel of every `nn.Linear` in `model`, over one forward pass on `token_ids`."""
    maxima: dict[str, torch.Tensor] = {}

    def record(name: str):
        def hook(module, inputs, output):
            x = inputs[0].detach().float().reshape(-1, inputs[0].shape[-1]).abs().amax(dim=0)
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    try:
        model(torch.tensor([token_ids], device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return maxima


def int8_beats_int4() -> bool:
    """Whether w8a8 decodes one prompt faster than int4 on this CPU: where PyTorch runs AVX2 code (no AVX-512: most
    laptops) and int8 products take luoxia's AVX2 kernel. On the project's Xeon kept to AVX2 and AVX-VNNI, through
    the packaged step, 109.3 against 82.6 tokens/s; kept to plain AVX2, 111.3 against 87.7; perplexity 1.024
    against 1.023 of float32's (`text.int8_matmul` notes)."""
    if torch.backends.cpu.get_cpu_capability() != "AVX2":
        return False
    kernel = int8_matmul.this_cpus_kernel()  # built here (once per machine): without it the int8 products are slow
    return kernel in (int8_matmul.AVX_VNNI_KERNEL, int8_matmul.AVX2_KERNEL) and kernel.load()


def choose_quant(requested: str | None, source_dtype: str, device: torch.device, compile: bool = False) -> Quant:
    """"auto" (or None): keep the source's own precision on the CPU — int4 for a 4-bit GGUF, int8 for an
    8-bit one, none (float) otherwise and on GPUs. Compiled, a quantized source runs as w8a8 instead:
    compiled, it decodes one prompt 5-13% faster than int4, prefills 1.6x and batches 2x faster
    (benchmarks/text_decode.py), within 1.4% of float32's perplexity. So does a 4-bit source on a CPU where
    int8 products are the faster (`int8_beats_int4`)."""
    if requested not in (None, "auto", *QUANTS):
        raise InvalidParameterError(f"unknown quantization {requested!r}; choose auto, {', '.join(QUANTS)}")
    if requested in (None, "auto"):
        if device.type != "cpu":
            return "none"
        if compile and source_dtype in FOUR_BIT_SOURCES | EIGHT_BIT_SOURCES:
            return "w8a8"
        if source_dtype in FOUR_BIT_SOURCES and int8_beats_int4():
            return "w8a8"
        return "int4" if source_dtype in FOUR_BIT_SOURCES else "int8" if source_dtype in EIGHT_BIT_SOURCES else "none"
    if requested != "none" and device.type != "cpu":
        raise InvalidParameterError(f"--quant {requested} runs on the CPU only; on {device.type} use --quant none")
    return requested  # type: ignore[return-value]


@torch.no_grad()
def quantize(model: nn.Module, mode: Quant, empty: bool = False, calibration: list[int] | None = None) -> nn.Module:
    """Replace the transformer's linear layers in place: int4 where rows split into groups of 32 (else
    int8; int4 layers' copies for prompts and batches smoothed on `calibration` token ids when given); the output
    projection int8. Everything else becomes bfloat16. `empty` only lays out the quantized model (no
    weights read; `load_state_dict` fills it), e.g. for a model on the meta device. w8a8 turns every
    linear layer into `DynamicInt8Linear`, smoothed on `calibration` when given, and keeps the rest in
    float32."""
    if mode == "none":
        return model
    if mode == "w8a8":
        return _quantize_w8a8(model, empty, calibration)

    maxima = _calibrated_maxima(model, calibration) if mode == "int4" and not empty else {}

    def replace(layer: nn.Linear, name: str) -> nn.Module:
        kind = Int4Linear if mode == "int4" and layer.in_features % GROUP == 0 else Int8Linear
        if empty:
            return kind(layer.out_features, layer.in_features, layer.bias is not None)
        if kind is Int4Linear:
            return Int4Linear.from_float(layer.weight, layer.bias, maxima.get(name))
        return Int8Linear.from_float(layer.weight, layer.bias)

    if mode == "int4":  # the output projection as w8a8: faster than weight-only int8 (module notes)
        head = model.output
        output = (DynamicInt8Linear(head.out_features, head.in_features, head.bias is not None) if empty
                  else DynamicInt8Linear.from_float(head.weight, head.bias))
    else:
        output = replace(model.output, "output")
    for module_name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child is not model.output:
                name = f"{module_name}.{child_name}" if module_name else child_name
                setattr(module, child_name, replace(child, name))
    model.output = output
    # Everything becomes bfloat16 but the w8a8 layers (the int4 mode's output projection and its layers'
    # copies), which keep float32 as in the w8a8 mode.
    w8a8 = [(parent, name, child) for parent in list(model.modules()) for name, child in parent.named_children()
            if isinstance(child, DynamicInt8Linear)]
    for parent, name, _ in w8a8:
        setattr(parent, name, None)
    model.to(torch.bfloat16)
    for parent, name, child in w8a8:
        setattr(parent, name, child)
    return model


def _calibrated_maxima(model: nn.Module, calibration: list[int] | None) -> dict[str, torch.Tensor]:
    """`input_maxima` over (the first context window of) `calibration`; none without it."""
    if not calibration:
        return {}
    return input_maxima(model, calibration[: getattr(model.config, "max_seq_len", len(calibration))])


def _quantize_w8a8(model: nn.Module, empty: bool, calibration: list[int] | None) -> nn.Module:
    maxima = {} if empty else _calibrated_maxima(model, calibration)
    for module_name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            # in_features 1 is left alone: nothing to gain (and torch 2.13's CPU _int_mm is wrong for K = 1).
            if isinstance(child, nn.Linear) and child.in_features > 1:
                name = f"{module_name}.{child_name}" if module_name else child_name
                layer = (DynamicInt8Linear(child.out_features, child.in_features, child.bias is not None) if empty
                         else DynamicInt8Linear.from_float(child.weight, child.bias, maxima.get(name)))
                setattr(module, child_name, layer)
    return model.float()
