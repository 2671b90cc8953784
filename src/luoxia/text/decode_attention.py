"""`torch.ops.luoxia.decode_attention`: attention of a few new tokens over the key/value cache (float32 or
bfloat16), a small C++ kernel (decode_attention.cpp) that compiled decode steps call on the CPU.

PyTorch's CPU attention works through one query head at a time (in an exported step, after copying each key
head out for every query head that shares it), and is slow in bfloat16 without AMX, so the cache of a bfloat16
model used to be float32. The kernel reads each key head's keys and values once for all the query rows that
share it, with those rows' sums in registers (ATen's `Vectorized<float>`, as in Inductor's own kernels), and
widens bfloat16 as it reads: a bfloat16 cache costs half the reading. For the embedded SmolLM2 (9 query heads
on 3 key heads), 16 rows over 30 layers' caches at 96 positions took 130 µs a layer from a float32 cache and 73
from a bfloat16 one, against PyTorch's 193 from float32; one row 10.7 and 9.3 against 19.7 µs; a nine-token
draft check of one row longer, 40 against 33 µs (`benchmarks/decode_attention.py`, 2-core AVX-512 CPU).
Through the int4 batch package, 16 rows decoding 128 tokens after a 32-token prompt went from about 635 to 683
tokens/s with a float32 cache and 725 with a bfloat16 one (three alternating runs each).

It is built once per machine, source and torch (about 7 s with g++, the compiler AOTInductor needs anyway)
into the luoxia home and loaded with `torch.ops.load_library`. Eager forwards keep PyTorch's attention (in
float32, `Transformer.cache_dtype`), whose rounding the reference comparisons are made with; where the kernel
cannot be built, compiled steps do too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from luoxia.core.cpp_kernel import CppKernel


def _register_fake() -> None:
    @torch.library.register_fake("luoxia::decode_attention")
    def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, H, T, D = q.shape
        return q.new_empty(B, T, H * D)


# `KERNEL.load()` registers the op; `KERNEL.loaded` is read by `model.Attention` while a step is traced.
KERNEL = CppKernel(Path(__file__).with_name("decode_attention.cpp"), "decode attention kernel",
                   "compiled steps use PyTorch's attention", _register_fake)


def supports(head_dim: int) -> bool:
    """Whether the kernel takes heads this wide: whole vectors (16 floats with AVX-512), up to 128."""
    return head_dim % 16 == 0 and 0 < head_dim <= 128
