"""A C++ source of torch ops, built once per machine into the luoxia home and loaded on first use.

The kernels are built by g++ (the compiler Inductor and AOTInductor need anyway) against the installed torch,
in 6–7 s each (they include only the ATen headers they use; with `ATen/ATen.h` it took 8–10 s), into
`$LUOXIA_HOME/kernels/<name>.<key>.so`, keyed by source, torch version and compiler flags, and written whole
or not at all. Later loads take a few milliseconds. Where a kernel cannot be built or does
not apply to this CPU, `load()` returns False and its callers keep PyTorch's own operations.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import torch

from luoxia.core.atomic import atomic_path
from luoxia.core.compile import error_line, note
from luoxia.core.paths import luoxia_home


def capability_flags() -> list[str]:
    """The vector width ATen's `Vectorized` is compiled for: what this CPU and this torch build run."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith("AVX512"):
        return ["-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512", "-mavx512f", "-mavx512dq", "-mavx512vl",
                "-mavx512bw", "-mfma"]
    if capability == "AVX2":
        return ["-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2", "-mavx2", "-mfma"]
    return ["-DCPU_CAPABILITY=DEFAULT"]


class CppKernel:
    """One C++ file of ops: `load()` builds it if this machine has no build of it and registers its ops.

    `what` names it in notes; `fallback` says what callers do without it; `flags` are its extra compiler
    flags; `unusable` gives the reason it does not apply to this machine, or None (checked before building,
    and quiet: a CPU without the instructions is not a failure); `register_fake` gives its ops shapes for
    export; `check` runs once after loading and raises if the ops give wrong results here; `headers` are the
    files beside the source that it includes (part of the build's key)."""

    def __init__(self, source: Path, what: str, fallback: str, register_fake: Callable[[], None],
                 flags: Callable[[], list[str]] = capability_flags, unusable: Callable[[], str | None] = lambda: None,
                 check: Callable[[], None] = lambda: None, headers: tuple[Path, ...] = ()):
        self.source, self.what, self.fallback = source, what, fallback
        self.register_fake, self.flags, self.unusable, self.check = register_fake, flags, unusable, check
        self.headers = headers
        self.loaded = False  # read by the modules that call the ops while a step is traced
        self._failed: str | None = None

    def library_path(self) -> Path:
        """Where this source (and its headers), torch and CPU's build lives."""
        code = self.source.read_bytes() + b"".join(header.read_bytes() for header in self.headers)
        key = hashlib.sha256(code + f"{torch.__version__}|{self.flags()}".encode()).hexdigest()
        return luoxia_home() / "kernels" / f"{self.source.stem}.{key[:16]}.so"

    def load(self) -> bool:
        """Build and register the ops once; False, with the reason in `failure()` (and a note, unless the
        kernel does not apply to this CPU), where that cannot be done, e.g. without a C++ compiler."""
        if self.loaded or self._failed is not None:
            return self.loaded
        self._failed = self.unusable()
        if self._failed is not None:
            return False
        try:
            path = self.library_path()
            if not path.exists():
                self.build(path)
            try:
                torch.ops.load_library(str(path))
            except OSError:  # a damaged build (the file is only ever written whole): made again
                path.unlink()
                self.build(path)
                torch.ops.load_library(str(path))
            self.register_fake()
            self.check()
            self.loaded = True
        except (OSError, RuntimeError) as e:
            self._failed = error_line(e)
            note(f"{self.what} not built ({self._failed}); {self.fallback}")
        return self.loaded

    def build(self, path: Path) -> None:
        """Compile the source into `path`, whole or not at all."""
        compiler = os.environ.get("CXX", "g++")
        if shutil.which(compiler) is None:
            raise RuntimeError(f"no C++ compiler ({compiler}) on PATH")
        with atomic_path(path) as tmp:
            run = subprocess.run(self.compile_command(compiler, tmp), capture_output=True, text=True)
            if run.returncode != 0:
                raise RuntimeError(f"{compiler} failed: {(run.stderr.strip().splitlines() or [''])[-1][:200]}")

    def compile_command(self, compiler: str, output: Path) -> list[str]:
        from torch.utils.cpp_extension import include_paths, library_paths  # imports setuptools: only to build

        abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
        return [compiler, str(self.source), "-o", str(output), "-shared", "-fPIC", "-std=c++20", "-O3",
                "-march=native", "-fopenmp", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", *self.flags(),
                *(f"-I{p}" for p in include_paths()), *(f"-L{p}" for p in library_paths()),
                *(f"-Wl,-rpath,{p}" for p in library_paths()), "-ltorch", "-ltorch_cpu", "-lc10"]

    def failure(self) -> str | None:
        """Why `load` could not register the ops, if it could not."""
        return self._failed
