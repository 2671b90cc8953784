"""How many CPU threads torch and NumPy run on, set without importing torch.

The CPU libraries read their thread counts from the environment as they load (OpenMP: torch's parallel loops,
its compiled and C++ kernels; OpenBLAS: NumPy's; MKL), so `set_threads` sets those and, where torch is already
loaded, torch itself. The CLI imports torch only when it needs it (the head start shows tokens before), which is
why this module must not import it.

Defaults: torch runs one thread per core. On Intel's hybrid CPUs (most laptops since Alder Lake) that includes
the efficiency cores, and a parallel loop split evenly waits for its slowest part; llama.cpp therefore runs on
the performance cores only, and `default_threads` does the same. Linux lists those cores' logical CPUs in
/sys/devices/cpu_core/cpus (the hybrid PMU's folder; it exists only on such CPUs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# What the CPU libraries read as they start.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_cpu_list(text: str) -> set[int]:
    """Linux's CPU list format ("0-7,16,18-19") as a set of CPU numbers."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if part:
            first, _, last = part.partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def performance_cores(sys_root: Path = Path("/sys"), allowed: set[int] | None = None) -> int | None:
    """The physical performance cores among the CPUs this process may use (`allowed`, default its affinity) on
    a hybrid CPU, hyperthreads counted once; None where the CPU is not hybrid or Linux does not say."""
    topology = sys_root / "devices/system/cpu"
    try:
        cpus = parse_cpu_list((sys_root / "devices/cpu_core/cpus").read_text())
        allowed = os.sched_getaffinity(0) if allowed is None else allowed
        cores = {tuple((topology / f"cpu{cpu}/topology" / name).read_text().strip()
                       for name in ("physical_package_id", "core_id")) for cpu in cpus & allowed}
    except (OSError, ValueError, AttributeError):  # no hybrid PMU, an odd list, no sched_getaffinity
        return None
    return len(cores) or None


def default_threads() -> int | None:
    """The thread count to set where none is asked for: the performance cores on a hybrid CPU, else None
    (torch's own default, one thread per core). An OMP_NUM_THREADS the user set wins."""
    return None if "OMP_NUM_THREADS" in os.environ else performance_cores()


def set_threads(threads: int) -> None:
    """Run torch's and NumPy's CPU work on `threads` threads, in this process and those it starts."""
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
