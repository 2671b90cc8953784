"""Handing PyTorch's CPU work from one thread to another without halving its speed.

PyTorch's CPU kernels run their parallel loops on OpenMP (GNU libgomp in the Linux wheels). Each
thread that starts a parallel loop gets a team of worker threads of its own, kept for later loops.
Between loops the workers spin for a moment before they sleep, which is what makes small decode-step
kernels fast; but libgomp cuts the spinning to almost nothing once it manages more threads than the
machine has CPUs. So after a model is loaded in one thread (its team stays, idle) and then run in
another (a server's worker), both teams count and every small kernel pays a sleep and a wake-up:
on a 2-core machine SmolLM2 decoded at 30 tokens/s in the worker against 67 in the loading thread.

`release_thread_pool()`, called in the thread that is done with PyTorch, frees that thread's team
(OpenMP 5's `omp_pause_resource_all`). It is a no-op where libgomp is not loaded (macOS, CUDA-only
work) or too old to have it; a later parallel loop in that thread simply builds a new team.
"""

from __future__ import annotations

import ctypes
import os

OMP_PAUSE_SOFT = 1


def release_thread_pool() -> bool:
    """Free the calling thread's OpenMP worker threads; True when there was a libgomp to ask."""
    try:
        libgomp = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)  # only if already loaded
        pause = libgomp.omp_pause_resource_all
    except (OSError, AttributeError):
        return False
    return pause(OMP_PAUSE_SOFT) == 0
