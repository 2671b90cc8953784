"""`core.cpp_kernel`: a kernel that does not apply to this machine, or fails its check, is not used."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from luoxia.core.cpp_kernel import CppKernel

SOURCE = Path(__file__).parents[2] / "src" / "luoxia" / "text" / "decode_attention.cpp"


def test_a_kernel_for_other_cpus_is_quietly_not_built(capsys):
    kernel = CppKernel(SOURCE, "test kernel", "tests go on", lambda: None, unusable=lambda: "this CPU lacks it",
                       flags=lambda: ["-DNEVER_BUILT"])  # a build path of its own
    assert not kernel.load() and not kernel.loaded
    assert kernel.failure() == "this CPU lacks it"
    assert not kernel.library_path().exists()
    assert capsys.readouterr().err == ""  # not a failure: nothing to tell


def test_a_kernel_that_fails_its_check_is_not_used(capsys):
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler")

    def check():
        raise RuntimeError("its sums differ")

    kernel = CppKernel(SOURCE, "test kernel", "tests go on", lambda: None, check=check)
    assert not kernel.load() and not kernel.loaded
    assert kernel.failure() == "RuntimeError: its sums differ"
    assert capsys.readouterr().err == "test kernel not built (RuntimeError: its sums differ); tests go on\n"
    assert not kernel.load()  # decided once
