"""Device and dtype, chosen in one place."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from luoxia.core.errors import InvalidParameterError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(name: str | None = None) -> torch.device:
    """"auto" (or None): CUDA when available, else CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidParameterError(f"device {name!r} asked for but CUDA is not available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InvalidParameterError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None


def pick_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """float32 on CPU (exact parity with references), bfloat16 on GPU, unless asked otherwise."""
    if name in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise InvalidParameterError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them ("avx512_vnni", "amx_int8", ...); empty where it does not."""
    try:
        line = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return frozenset()
    return frozenset(line.split(":", 1)[1].split())
