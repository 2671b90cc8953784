"""The `luoxia` command line: `main.py` builds the parser, one module per command group does the work."""

from __future__ import annotations

import os
import sys

# What the CPU libraries read as they start: OpenMP (torch's parallel loops, its compiled and C++ kernels),
# OpenBLAS (NumPy's) and MKL.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def error_line(error: BaseException) -> str:
    """A user error as the one line the CLI prints: `luoxia: error: <message>`."""
    message = " ".join(str(error).split()) or type(error).__name__
    return f"luoxia: error: {message}"


def use_threads(threads: int | None) -> None:
    """--threads: run torch's CPU work and NumPy's on `threads` threads (None: their defaults, one per core).
    Set in the environment, which both read as they load (and the processes this one starts inherit), and in
    torch where it is already loaded, without importing it (the CLI imports torch only when it needs it)."""
    from luoxia.core.errors import InvalidParameterError

    if threads is None:
        return
    if threads < 1:
        raise InvalidParameterError(f"--threads must be >= 1, got {threads}")
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
