"""`torch.ops.luoxia.int8_matmul`: the int8 products of w8a8 layers (`quant.DynamicInt8Linear`) on the CPU's
AMX tile unit, a small C++ kernel (int8_matmul.cpp) used in place of `torch._int_mm` where the CPU has AMX.

A batch of 16 rows decodes through int8 products (`quant.takes_the_copy`), and PyTorch's `_int_mm` goes
through oneDNN's older GEMM interface, which uses AVX-512 VNNI even on a CPU with AMX: on this project's 2-core
CPU a 16-row step's 121 products took about 12 ms that way, compute-bound. AMX does 16×16×64 multiply-adds an
instruction, so the same products are bound by reading the 134 MB of int8 weights instead: 5.9 against 12.1 ms
(the embedded SmolLM2-135M's shapes, 16 rows; 0.70 against 1.76 ms for the 49152×576 output projection alone;
4.7 against 10.9 ms at one row, 11.3 against 19.9 at 64: `benchmarks/int8_matmul.py`). Through the int4
packages the default decoded 16 prompts and one at 1295.0 and 178.0 tokens/s (7.28×) against 926.8 and
155.2 (5.97×) without the kernel, the same hour (`benchmarks/text_decode.py --variants int4+aot
--skip-cold`); in the full run after, 1130.0 and 182.9 (6.18×).

The sums are integers, so the result is exactly `_int_mm`'s: eager forwards may take it too, and the
reference comparisons are unchanged. The kernel is built once per machine like the decode attention kernel
(`core.cpp_kernel`), only on CPUs with AMX int8, and checked against PyTorch's integer product when loaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from luoxia.core.cpp_kernel import CppKernel, capability_flags
from luoxia.core.device import cpu_flags


def amx_missing() -> str | None:
    """Why this machine cannot run AMX int8 tiles, or None: the CPU's flags, and Linux's permission for them."""
    if not {"amx_tile", "amx_int8"} <= cpu_flags():
        return "this CPU has no AMX int8 unit (or no /proc/cpuinfo that says so)"
    request = getattr(torch._C._cpu, "_init_amx", None)  # asks Linux for the tile state (arch_prctl)
    if request is None or not request():
        return "Linux did not grant the AMX tile state"
    return None


def _register_fake() -> None:
    @torch.library.register_fake("luoxia::int8_matmul")
    def _(q: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return q.new_empty(q.shape[0], w.shape[0], dtype=torch.int32)


def _check() -> None:
    """The kernel's sums against PyTorch's integer product on a few shapes (remainder rows, groups of blocks)."""
    generator = torch.Generator().manual_seed(0)
    for rows, width, columns in [(1, 64, 16), (21, 128, 112)]:
        q = torch.randint(-127, 128, (rows, width), dtype=torch.int8, generator=generator)
        w = torch.randint(-127, 128, (columns, width), dtype=torch.int8, generator=generator)
        expected = q.int() @ w.int().t()
        if not torch.equal(torch.ops.luoxia.int8_matmul(q, w), expected):
            raise RuntimeError(f"its sums differ from PyTorch's at {rows}x{width}x{columns}")


KERNEL = CppKernel(Path(__file__).with_name("int8_matmul.cpp"), "AMX int8 kernel", "int8 products use torch._int_mm",
                   _register_fake, flags=lambda: [*capability_flags(), "-mamx-tile", "-mamx-int8"],
                   unusable=amx_missing, check=_check)


def supports(width: int, columns: int) -> bool:
    """Whether the kernel takes q (·, `width`) · wᵀ with w (`columns`, `width`): whole tiles of both."""
    return width % 64 == 0 and width > 0 and columns % 16 == 0


def int8_product(q: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """q (M, K) · weightᵀ (weight (N, K), both int8) in int32: through the kernel where it is loaded and takes
    these shapes, else `torch._int_mm`; the same integers either way."""
    if KERNEL.loaded and q.device.type == "cpu" and supports(weight.shape[1], weight.shape[0]):
        return torch.ops.luoxia.int8_matmul(q, weight)
    return torch._int_mm(q, weight.t())
