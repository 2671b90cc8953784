"""release_thread_pool frees the calling thread's OpenMP workers (a server's loading thread must)."""

import os
import time
from pathlib import Path

import pytest
import torch

from luoxia.core.openmp import release_thread_pool


def threads_in_process() -> int:
    return len(os.listdir("/proc/self/task"))


def threads_after_exits(at_most: int, wait_s: float = 2.0) -> int:
    """The thread count once it is down to `at_most` (exiting threads take a moment to leave), or at the deadline."""
    deadline = time.monotonic() + wait_s
    while threads_in_process() > at_most and time.monotonic() < deadline:
        time.sleep(0.01)
    return threads_in_process()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or "OpenMP" not in torch.__config__.parallel_info(),
                    reason="needs Linux and PyTorch on OpenMP")
def test_release_frees_the_callers_openmp_workers():
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        x = torch.randn(4096, 4096)
        (x + x).sum()  # a parallel loop: this thread now owns a team of 4 (3 worker threads)
        with_team = threads_in_process()
        assert release_thread_pool()
        assert threads_after_exits(with_team - 3) <= with_team - 3
        assert torch.equal((x + x)[0], 2 * x[0])  # and PyTorch still works: the next loop builds a new team
    finally:
        torch.set_num_threads(before)
