"""The `luoxia` command line: `main.py` builds the parser, one module per command group does the work."""

from __future__ import annotations

from luoxia.core.errors import InvalidParameterError
from luoxia.core.threads import default_threads, set_threads

THREADS_HELP = ("CPU threads (default: one per core; on CPUs with efficiency cores one per performance core, as "
                "llama.cpp does); fewer can be faster on a busy machine")


def error_line(error: BaseException) -> str:
    """A user error as the one line the CLI prints: `luoxia: error: <message>`."""
    message = " ".join(str(error).split()) or type(error).__name__
    return f"luoxia: error: {message}"


def use_threads(threads: int | None) -> None:
    """--threads: the CPU threads torch and NumPy run on; None: one per performance core on a hybrid CPU,
    else their defaults (`core.threads`). Sets them without importing torch."""
    if threads is not None and threads < 1:
        raise InvalidParameterError(f"--threads must be >= 1, got {threads}")
    threads = threads or default_threads()
    if threads is not None:
        set_threads(threads)
