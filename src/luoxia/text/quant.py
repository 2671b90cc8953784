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
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from luoxia.core.errors import InvalidParameterError

Quant = Literal["none", "int8", "int4"]
QUANTS = ("none", "int8", "int4")
GROUP = 32
# GGUF tensor types already at (or below) these precisions lose nothing more in our formats.
FOUR_BIT_SOURCES = {"Q4_0", "Q4_1", "Q4_K", "Q3_K", "Q2_K", "IQ4_NL", "IQ4_XS"}
EIGHT_BIT_SOURCES = {"Q8_0", "Q5_0", "Q5_1", "Q5_K", "Q6_K"}


class Int8Linear(nn.Module):
    """y = x · (q · scale)ᵀ + b with q int8 per output row. `from_float` quantizes a weight; the
    constructor makes empty buffers for `load_state_dict` (a model loaded from the quantized cache)."""

    def __init__(self, out_features: int, in_features: int, bias: bool):
        super().__init__()
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scales", torch.empty(out_features, dtype=torch.bfloat16))
        self.register_buffer("bias", torch.empty(out_features, dtype=torch.bfloat16) if bias else None)

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> Int8Linear:
        layer = cls(*weight.shape, bias is not None)
        w = weight.float()
        scales = w.abs().amax(dim=1).clamp(min=1e-8) / 127
        layer.weight = (w / scales[:, None]).round_().clamp_(-128, 127).to(torch.int8)
        layer.scales = scales.to(torch.bfloat16)
        layer.bias = None if bias is None else bias.to(torch.bfloat16)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, x.shape[-1]), self.weight, self.scales)
        y = y.view(*x.shape[:-1], -1)
        return y if self.bias is None else y + self.bias


class Int4Linear(nn.Module):
    """y = x · Wᵀ + b with W stored as 4-bit codes in groups of 32 (Q4_1 grid), packed for the CPU kernel.
    `from_float` quantizes a weight; the constructor makes empty buffers for `load_state_dict`."""

    def __init__(self, out_features: int, in_features: int, bias: bool):
        super().__init__()
        self.out_features = out_features
        self.register_buffer("weight", torch.empty(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("scales_and_zeros", torch.empty(in_features // GROUP, out_features, 2,
                                                             dtype=torch.bfloat16))
        self.register_buffer("bias", torch.empty(out_features, dtype=torch.bfloat16) if bias else None)

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> Int4Linear:
        out_features, in_features = weight.shape
        layer = cls(out_features, in_features, bias is not None)
        groups = weight.float().reshape(out_features, in_features // GROUP, GROUP)
        lo, hi = groups.amin(dim=-1), groups.amax(dim=-1)
        scale = ((hi - lo) / 15).clamp(min=1e-8)
        codes = ((groups - lo[..., None]) / scale[..., None]).round_().clamp_(0, 15).to(torch.int32)
        # The kernel computes (q − 8)·scale + zero, so zero = min + 8·scale. Layout (in/GROUP, out, 2).
        scales_and_zeros = torch.stack((scale, lo + 8 * scale), dim=-1).transpose(0, 1).contiguous()
        layer.weight = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.reshape(out_features, in_features), 1)
        layer.scales_and_zeros = scales_and_zeros.to(torch.bfloat16)
        layer.bias = None if bias is None else bias.to(torch.bfloat16)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x.reshape(-1, x.shape[-1]), self.weight, GROUP, self.scales_and_zeros
        )
        y = y.view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def choose_quant(requested: str | None, source_dtype: str, device: torch.device) -> Quant:
    """"auto" (or None): keep the source's own precision on the CPU — int4 for a 4-bit GGUF, int8 for an
    8-bit one, none (float) otherwise and on GPUs."""
    if requested not in (None, "auto", *QUANTS):
        raise InvalidParameterError(f"unknown quantization {requested!r}; choose auto, {', '.join(QUANTS)}")
    if requested in (None, "auto"):
        if device.type != "cpu":
            return "none"
        return "int4" if source_dtype in FOUR_BIT_SOURCES else "int8" if source_dtype in EIGHT_BIT_SOURCES else "none"
    if requested != "none" and device.type != "cpu":
        raise InvalidParameterError(f"--quant {requested} runs on the CPU only; on {device.type} use --quant none")
    return requested  # type: ignore[return-value]


def quantize(model: nn.Module, mode: Quant, empty: bool = False) -> nn.Module:
    """Replace the transformer's linear layers in place: int4 where rows split into groups of 32 (else
    int8); the output projection int8. Everything else becomes bfloat16. `empty` only lays out the
    quantized model (no weights read; `load_state_dict` fills it), e.g. for a model on the meta device."""
    if mode == "none":
        return model

    def replace(layer: nn.Linear, kind: type[Int4Linear | Int8Linear]) -> nn.Module:
        if empty:
            return kind(layer.out_features, layer.in_features, layer.bias is not None)
        return kind.from_float(layer.weight, layer.bias)

    output = replace(model.output, Int8Linear)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child is not model.output:
                use_int4 = mode == "int4" and child.in_features % GROUP == 0
                setattr(module, child_name, replace(child, Int4Linear if use_int4 else Int8Linear))
    model.output = None
    model.to(torch.bfloat16)
    model.output = output
    return model
