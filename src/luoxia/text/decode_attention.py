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

It is built once per machine, source and torch (about 13 s with g++, the compiler AOTInductor needs anyway)
into the luoxia home and loaded with `torch.ops.load_library`. Eager forwards keep PyTorch's attention (in
float32, `Transformer.cache_dtype`), whose rounding the reference comparisons are made with; where the kernel
cannot be built, compiled steps do too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import torch

from luoxia.core.atomic import atomic_path
from luoxia.core.compile import error_line, note
from luoxia.core.paths import luoxia_home

SOURCE = Path(__file__).with_name("decode_attention.cpp")
# Whether the op is registered in this process: read by `model.Attention` while a step is traced.
LOADED = False
_FAILED: str | None = None  # why building or loading failed, once


def capability_flags() -> list[str]:
    """The vector width ATen's `Vectorized` is compiled for: what this CPU and this torch build run."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith("AVX512"):
        return ["-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512", "-mavx512f", "-mavx512dq", "-mavx512vl",
                "-mavx512bw", "-mfma"]
    if capability == "AVX2":
        return ["-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2", "-mavx2", "-mfma"]
    return ["-DCPU_CAPABILITY=DEFAULT"]


def compile_command(compiler: str, output: Path) -> list[str]:
    from torch.utils.cpp_extension import include_paths, library_paths  # imports setuptools: only to build

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return [compiler, str(SOURCE), "-o", str(output), "-shared", "-fPIC", "-std=c++20", "-O3",
            "-march=native", "-fopenmp", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", *capability_flags(),
            *(f"-I{p}" for p in include_paths()), *(f"-L{p}" for p in library_paths()),
            *(f"-Wl,-rpath,{p}" for p in library_paths()), "-ltorch", "-ltorch_cpu", "-lc10"]


def library_path() -> Path:
    """Where this source, torch and CPU's build lives."""
    key = hashlib.sha256(SOURCE.read_bytes() + f"{torch.__version__}|{capability_flags()}".encode()).hexdigest()[:16]
    return luoxia_home() / "kernels" / f"decode_attention.{key}.so"


def load() -> bool:
    """Build the kernel if this machine has no build of it, and register the op; False, with a note (and the
    reason in `failure()`), where that cannot be done, e.g. without a C++ compiler. Cheap after the first call."""
    global LOADED, _FAILED
    if LOADED or _FAILED is not None:
        return LOADED
    try:
        path = library_path()
        if not path.exists():
            build(path)
        try:
            torch.ops.load_library(str(path))
        except OSError:  # a damaged build (the file is only ever written whole): made again
            path.unlink()
            build(path)
            torch.ops.load_library(str(path))
        _register_fake()
        LOADED = True
    except (OSError, RuntimeError) as e:
        _FAILED = error_line(e)
        note(f"decode attention kernel not built ({_FAILED}); compiled steps use PyTorch's attention")
    return LOADED


def build(path: Path) -> None:
    """Compile the kernel into `path`, whole or not at all."""
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ({compiler}) on PATH")
    with atomic_path(path) as tmp:
        run = subprocess.run(compile_command(compiler, tmp), capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {(run.stderr.strip().splitlines() or [''])[-1][:200]}")


def supports(head_dim: int) -> bool:
    """Whether the kernel takes heads this wide: whole vectors (16 floats with AVX-512), up to 128."""
    return head_dim % 16 == 0 and 0 < head_dim <= 128


def failure() -> str | None:
    """Why `load` could not register the op, if it could not."""
    return _FAILED


def _register_fake() -> None:
    @torch.library.register_fake("luoxia::decode_attention")
    def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, H, T, D = q.shape
        return q.new_empty(B, T, H * D)
