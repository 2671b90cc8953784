"""`torch.compile` with a fallback: a machine without a working compiler still runs, eagerly."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch


def note(message: str) -> None:
    """The default `log` of the compiling helpers: stderr, so that a program's output stays clean."""
    print(message, file=sys.stderr, flush=True)


def error_line(e: BaseException) -> str:
    """`e` in one line for a note: its type and the first line of its message (at most 200 characters)."""
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"


def compile_or_eager(fn: Callable, log: Callable[[str], None], what: str, **compile_kwargs) -> Callable:
    """`torch.compile(fn, **compile_kwargs)`, falling back to `fn` itself, with a note, when the first
    call fails to compile (no C++ compiler on a CPU machine, an unsupported platform). A real error
    in `fn` is raised again by the eager call. `what` names the job in the note ("training")."""
    use, first = torch.compile(fn, **compile_kwargs), True

    def call(*args, **kwargs):
        nonlocal use, first
        if not first:
            return use(*args, **kwargs)
        first = False
        try:
            return use(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 (whatever the compiler raises)
            log(f"note: torch.compile failed ({error_line(e)}); {what} without it")
            use = fn
            return fn(*args, **kwargs)

    return call
