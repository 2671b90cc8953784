"""`torch.ops.luoxia.int8_matmul`, `int8_matmul_vnni`, `int8_matmul_avxvnni` and `int8_matmul_avx2`: the int8
products of w8a8 layers (`quant.DynamicInt8Linear`) through small C++ kernels used in place of `torch._int_mm`: on
the CPU's AMX tile unit where it has one (int8_matmul.cpp), else with AVX-512 VNNI (int8_matmul_vnni.cpp), else
with AVX-VNNI or plain AVX2 (int8_matmul_avx2.cpp, built once for each), the first this CPU has.

A batch of 16 rows decodes through int8 products (`quant.takes_the_copy`), and PyTorch's `_int_mm` goes
through oneDNN's older GEMM interface, which uses AVX-512 VNNI even on a CPU with AMX: on this project's 2-core
CPU a 16-row step's 121 products took about 12 ms that way, compute-bound. AMX does 16×16×64 multiply-adds an
instruction, so the same products are bound by reading the 134 MB of int8 weights instead: 5.9 against 12.1 ms
(the embedded SmolLM2-135M's shapes, 16 rows; 0.70 against 1.76 ms for the 49152×576 output projection alone;
4.7 against 10.9 ms at one row, 11.3 against 19.9 at 64: `benchmarks/int8_matmul.py`). Through the int4
packages the default decoded 16 prompts and one at 1295.0 and 178.0 tokens/s (7.28×) against 926.8 and
155.2 (5.97×) without the kernel, the same hour (`benchmarks/text_decode.py --variants int4+aot
--skip-cold`); in the full run after, 1130.0 and 182.9 (6.18×).

Without AMX, the VNNI kernel repacks each block of 16 weight rows as it goes (no second copy of the weights) and
keeps 16 activation rows in registers; asking the cache for the weights two blocks ahead is most of what it
gains. On the same CPU's VNNI units (its AMX kept out): 8.6 against 13.9 ms at 16 rows, 6.8 against 13.5 at one,
1.2x at 32 rows and no gain beyond, so it hands products of more than 32 rows (prompts) to `_int_mm`. With oneDNN
and luoxia kept off AMX that way (`ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`, AMX removed from the CPU flags luoxia
reads), the default decoded 16 prompts at 1009.5, 979.1 and 969.8 tokens/s against 731.1, 685.8 and 677.7 without
the kernel (three alternating pairs of `--variants int4+aot --skip-cold` runs), 7.35x, 7.34x and 7.26x its batch 1
against 4.76x, 5.41x and 5.36x.

Without AVX-512 (most laptops: Intel's since Alder Lake have AVX-VNNI, AMD's before Zen 4 plain AVX2), oneDNN's
int8 GEMM is slow at few rows: a one-row step's products took 24 ms, where reading their 134 MB needs about 7. The
AVX2 kernel takes each block of 4 weight rows once from memory, asking for the block two on as it goes, and
multiplies it by every activation row as dot products along k: with VPDPBUSD on AVX-VNNI, and on plain AVX2 with
VPMADDWD after widening to int16 (exact, where VPMADDUBSW would saturate). On this project's Xeon kept to AVX2
(`benchmarks/as_laptop_cpu.sh`: PyTorch, oneDNN, the CPU flags luoxia reads and the compilers), a step's products
at one row in 6.3 ms through either build against 24 (the 49152×576 output projection 0.54 against 2.6 ms); at
16 rows 13.0 (AVX-VNNI) against 29.5; the AVX-VNNI build hands more than 32 rows to `_int_mm`. The plain AVX2 build
keeps every product, however many rows: there oneDNN multiplies bytes with VPMADDUBSW, whose int16 sums saturate,
and most of `_int_mm`'s sums are wrong (all of them for random int8 operands, 40% with activations within ±20;
`ONEDNN_MAX_CPU_ISA=AVX2`): the int4 model's perplexity was 1.138 / 1.200 of float32's through it, 1.023 / 0.997
through the kernel. The w8a8 model then decodes one prompt faster than int4 (with AVX-VNNI 109.3 against 82.6
tokens/s, llama.cpp built alike 81.4; plain AVX2 111.3 against 87.7 and 83.5), so there a 4-bit file runs as w8a8
(`quant.int8_beats_int4`). 16 prompts: 663.0 tokens/s (6.06x) with AVX-VNNI, 463.1 (4.16x) with plain AVX2, whose
int16 products run at half the rate. Before the kernel, with AVX-VNNI, int4 decoded at 61.0 and w8a8 at 38.2
(`benchmarks/text_decode.py --variants int4,w8a8,int4+aot,w8a8+aot --skip-cold` through `as_laptop_cpu.sh`).

The sums are exact integers, `_int_mm`'s where oneDNN's are exact: eager forwards may take them too, and the
reference comparisons are unchanged. Where `_int_mm` is not exact (checked once: CPUs without VNNI, or oneDNN
capped below it; and any CPU for K = 1 in torch 2.13) and no kernel takes a product, or a VNNI kernel would hand
it to `_int_mm` (more than 32 rows), `int8_product` computes it
in float32, 1,024 columns at a time, whose sums (integers of at most 1,024 · 128² = 2²⁴) float32 holds exactly.

Each kernel is built once per machine like the decode attention kernel (`core.cpp_kernel`), only on CPUs with its
instructions (the first of the four this CPU has), and checked against PyTorch's integer product when loaded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def vnni_missing() -> str | None:
    """Why the VNNI kernel does not apply here, or None: it is for CPUs with AVX-512 VNNI and without AMX int8
    (where the AMX kernel is faster)."""
    if not {"avx512_vnni", "avx512bw"} <= cpu_flags():
        return "this CPU has no AVX-512 VNNI (or no /proc/cpuinfo that says so)"
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return "this torch does not run AVX-512 code on this CPU"
    return None


def avx2_missing() -> str | None:
    """Why the AVX2 kernels do not apply here, or None: they are for x86 CPUs without AVX-512 VNNI."""
    if "avx2" not in cpu_flags():
        return "this CPU has no AVX2 (or no /proc/cpuinfo that says so)"
    return None


def avx_vnni_missing() -> str | None:
    """Why the AVX-VNNI build of the AVX2 kernel does not apply here, or None."""
    if "avx_vnni" not in cpu_flags():
        return "this CPU has no AVX-VNNI (or no /proc/cpuinfo that says so)"
    return avx2_missing()


def _register_fake(op: str) -> Callable[[], None]:
    def register() -> None:
        @torch.library.register_fake(f"luoxia::{op}")
        def _(q: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return q.new_empty(q.shape[0], w.shape[0], dtype=torch.int32)
    return register


def _samples() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Random int8 operands q (M, K) and w (N, K) on a few shapes (remainder rows, groups of blocks)."""
    generator = torch.Generator().manual_seed(0)
    for rows, width, columns in [(1, 64, 16), (21, 128, 112)]:
        yield (torch.randint(-128, 128, (rows, width), dtype=torch.int8, generator=generator),
               torch.randint(-128, 128, (columns, width), dtype=torch.int8, generator=generator))


def _check(op: str) -> Callable[[], None]:
    """The kernel's sums against PyTorch's integer product on `_samples`."""
    def check() -> None:
        for q, w in _samples():
            if not torch.equal(getattr(torch.ops.luoxia, op)(q, w), q.int() @ w.int().t()):
                raise RuntimeError(f"its sums differ from PyTorch's at {q.shape[0]}x{q.shape[1]}x{w.shape[0]}")
    return check


FALLBACK = "int8 products use torch._int_mm (float32 where its sums are inexact)"
HEADERS = (Path(__file__).with_name("transpose16.h"),)
KERNEL = CppKernel(Path(__file__).with_name("int8_matmul.cpp"), "AMX int8 kernel", FALLBACK,
                   _register_fake("int8_matmul"), flags=lambda: [*capability_flags(), "-mamx-tile", "-mamx-int8"],
                   unusable=amx_missing, check=_check("int8_matmul"), headers=HEADERS)
VNNI_KERNEL = CppKernel(Path(__file__).with_name("int8_matmul_vnni.cpp"), "AVX-512 VNNI int8 kernel",
                        FALLBACK, _register_fake("int8_matmul_vnni"),
                        flags=lambda: [*capability_flags(), "-mavx512vnni"], unusable=vnni_missing,
                        check=_check("int8_matmul_vnni"), headers=HEADERS)

# One source, two builds: with AVX-VNNI's byte products where the CPU has them (op int8_matmul_avxvnni), and
# with plain AVX2's (int8_matmul_avx2).
AVX_VNNI_KERNEL = CppKernel(Path(__file__).with_name("int8_matmul_avx2.cpp"), "AVX-VNNI int8 kernel",
                            FALLBACK, _register_fake("int8_matmul_avxvnni"),
                            flags=lambda: ["-mavx2", "-mfma", "-mavxvnni"], unusable=avx_vnni_missing,
                            check=_check("int8_matmul_avxvnni"))
AVX2_KERNEL = CppKernel(Path(__file__).with_name("int8_matmul_avx2.cpp"), "AVX2 int8 kernel",
                        FALLBACK, _register_fake("int8_matmul_avx2"),
                        flags=lambda: ["-mavx2", "-mfma", "-mno-avxvnni"], unusable=avx2_missing,
                        check=_check("int8_matmul_avx2"))
# In order of preference: the first that applies to this CPU (`unusable`) is the one loaded.
KERNELS = (KERNEL, VNNI_KERNEL, AVX_VNNI_KERNEL, AVX2_KERNEL)
OPS = {KERNEL: "int8_matmul", VNNI_KERNEL: "int8_matmul_vnni", AVX_VNNI_KERNEL: "int8_matmul_avxvnni",
       AVX2_KERNEL: "int8_matmul_avx2"}
# The widths (K) and weight rows (N) each takes come in whole multiples of these: its tiles or blocks.
UNITS = {KERNEL: (64, 16), VNNI_KERNEL: (64, 16), AVX_VNNI_KERNEL: (32, 4), AVX2_KERNEL: (32, 4)}
# Products of more activation rows than this the kernel hands to torch._int_mm itself (MOST_ROWS in its source).
HANDS_OFF_ABOVE = {VNNI_KERNEL: 32, AVX_VNNI_KERNEL: 32}


def this_cpus_kernel() -> CppKernel | None:
    """The kernel for this CPU: the first of AMX, AVX-512 VNNI, AVX-VNNI and AVX2 it has (None: none)."""
    return next((kernel for kernel in KERNELS if kernel.unusable() is None), None)


def load() -> bool:
    """Build (once per machine) and register this CPU's kernel (`this_cpus_kernel`); False where none applies or
    it does not build (`int8_product` then uses `torch._int_mm`, or float32 where that is inexact). A kernel that
    applies but fails to build is not replaced by the next: that would hide the failure."""
    kernel = this_cpus_kernel()
    return kernel is not None and kernel.load()


_int_mm_exact: bool | None = None  # `int_mm_is_exact`'s answer, once checked


def int_mm_is_exact() -> bool:
    """Whether `torch._int_mm` gives exact sums on this CPU, on `_samples` (checked once, about 11 ms with oneDNN's
    first call): not where oneDNN multiplies bytes with VPMADDUBSW (x86 without VNNI, or ONEDNN_MAX_CPU_ISA below
    it), whose int16 pair sums saturate. Products ask on their first fall-back, compiled ones as they are traced;
    code about to export a forward asks first, since export traces with fake tensors (`int8_product`)."""
    global _int_mm_exact
    if _int_mm_exact is None:
        _int_mm_exact = all(torch.equal(torch._int_mm(q, w.t()), q.int() @ w.int().t()) for q, w in _samples())
    return _int_mm_exact


# torch.compile runs the check as it traces and keeps the answer in the graph: what
# `torch._dynamo.assume_constant_result` marks, set without importing dynamo (1 s, at every model load).
int_mm_is_exact._dynamo_marked_constant = True  # type: ignore[attr-defined]


FLOAT_EXACT_WIDTH = 1024  # columns whose int8 products float32 sums exactly: |sum| <= 1024 * 128 * 128 = 2**24


def float_int8_product(q: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """q · weightᵀ in int32, exactly, through float32 matrix products of FLOAT_EXACT_WIDTH columns at a time
    (every partial sum an integer float32 holds), added up in int32."""
    out = q.new_zeros(q.shape[0], weight.shape[0], dtype=torch.int32)
    for start in range(0, q.shape[1], FLOAT_EXACT_WIDTH):
        part = slice(start, start + FLOAT_EXACT_WIDTH)
        out += (q[:, part].float() @ weight[:, part].float().t()).to(torch.int32)
    return out


def supports(kernel: CppKernel, width: int, columns: int) -> bool:
    """Whether `kernel` takes q (·, `width`) · wᵀ with w (`columns`, `width`): whole tiles or blocks of both."""
    width_unit, columns_unit = UNITS[kernel]
    return width % width_unit == 0 and width > 0 and columns % columns_unit == 0


def _int_mm_trusted() -> bool:
    """`int_mm_is_exact` as any forward may ask it: an exported one reads the answer found before export."""
    return _int_mm_exact is not False if torch.compiler.is_exporting() else int_mm_is_exact()


def _hands_off_inexactly(kernel: CppKernel, rows: int) -> bool:
    """Whether `kernel` would hand these rows to a `torch._int_mm` that is inexact here (oneDNN capped below VNNI
    on a CPU with it). Asked in the order that costs least: eagerly the row count is free and the check takes
    11 ms once; traced, the check is a constant and the row count would add a guard (a graph per side of it)."""
    most = HANDS_OFF_ABOVE.get(kernel)
    if most is None:
        return False
    if torch.compiler.is_compiling():
        return not _int_mm_trusted() and rows > most
    return rows > most and not _int_mm_trusted()


def int8_product(q: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """q (M, K) · weightᵀ (weight (N, K), both int8) in int32, exactly: through the kernel where it is loaded and
    takes these shapes, else `torch._int_mm`, else, where that is inexact (a CPU without VNNI; K = 1), float32
    (`float_int8_product`)."""
    if q.device.type == "cpu":
        for kernel in KERNELS:  # the one loaded
            if kernel.loaded and supports(kernel, weight.shape[1], weight.shape[0]):
                if _hands_off_inexactly(kernel, q.shape[0]):
                    return float_int8_product(q, weight)
                return getattr(torch.ops.luoxia, OPS[kernel])(q, weight)
        if weight.shape[1] == 1 or not _int_mm_trusted():
            return float_int8_product(q, weight)
    return torch._int_mm(q, weight.t())
