"""CPU thread counts: Linux's CPU lists, the performance cores of a hybrid CPU, and what --threads sets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from luoxia.cli import use_threads
from luoxia.core import threads
from luoxia.core.errors import InvalidParameterError
from luoxia.core.threads import THREAD_VARIABLES, default_threads, parse_cpu_list, performance_cores


def fake_sys(root: Path, performance: str | None, cores: dict[int, int]) -> Path:
    """A /sys with the hybrid PMU's list of performance CPUs (None: not a hybrid CPU) and each CPU's core id."""
    if performance is not None:
        (root / "devices/cpu_core").mkdir(parents=True)
        (root / "devices/cpu_core/cpus").write_text(performance + "\n")
    for cpu, core in cores.items():
        topology = root / f"devices/system/cpu/cpu{cpu}/topology"
        topology.mkdir(parents=True)
        (topology / "core_id").write_text(f"{core}\n")
        (topology / "physical_package_id").write_text("0\n")
    return root


# An i7-1260P: 4 performance cores with two hyperthreads each (CPUs 0-7), 8 efficiency cores (CPUs 8-15).
LAPTOP_CORES = {**{cpu: cpu // 2 * 4 for cpu in range(8)}, **{cpu: 16 + cpu for cpu in range(8, 16)}}


def test_cpu_lists():
    assert parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpu_list("5") == {5}
    assert parse_cpu_list("") == set()


def test_performance_cores_of_a_hybrid_cpu(tmp_path):
    root = fake_sys(tmp_path, "0-7", LAPTOP_CORES)
    assert performance_cores(root, allowed=set(range(16))) == 4  # hyperthreads counted once
    assert performance_cores(root, allowed={0, 1, 2, 9, 10}) == 2  # only the CPUs this process may use
    assert performance_cores(root, allowed={9, 10}) is None


def test_no_hybrid_cpu_no_default(tmp_path):
    assert performance_cores(fake_sys(tmp_path, None, {0: 0, 1: 1}), allowed={0, 1}) is None
    assert performance_cores(fake_sys(tmp_path / "odd", "0-x", {0: 0}), allowed={0}) is None


def test_the_users_omp_num_threads_wins(monkeypatch):
    monkeypatch.setattr(threads, "performance_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert default_threads() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() is None


def test_use_threads(monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)  # put back after the test
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "performance_cores", lambda: None)
        use_threads(None)  # not hybrid: torch's and NumPy's own defaults stay
        assert not any(name in os.environ for name in THREAD_VARIABLES) and torch.get_num_threads() == before
        monkeypatch.setattr(threads, "performance_cores", lambda: 3)
        use_threads(None)  # hybrid: the performance cores, in the environment and in torch (loaded here)
        assert all(os.environ[name] == "3" for name in THREAD_VARIABLES) and torch.get_num_threads() == 3
        use_threads(1)  # asked for: that
        assert all(os.environ[name] == "1" for name in THREAD_VARIABLES) and torch.get_num_threads() == 1
        with pytest.raises(InvalidParameterError, match="--threads must be >= 1"):
            use_threads(0)
    finally:
        torch.set_num_threads(before)


def test_the_cli_sets_threads_before_torch_loads():
    """`luoxia` imports torch only when it needs it: the environment carries the count to it."""
    script = ("import sys; from luoxia.cli import use_threads; use_threads(1); assert 'torch' not in sys.modules; "
              "import torch; print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "1"
