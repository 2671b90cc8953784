"""Atomic writes: whole files or none, with the permissions a plain write would give."""

from __future__ import annotations

import os
import stat

import pytest

from luoxia.core import atomic


def test_a_new_file_gets_the_mode_of_a_plain_write(tmp_path):
    (tmp_path / "plain").write_bytes(b"x")  # the process umask decides, as for any program
    path = tmp_path / "out.bin"
    atomic.write_bytes(path, b"data")
    assert path.read_bytes() == b"data"
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) != 0o600  # what mkstemp alone would leave


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    path.chmod(0o640)
    atomic.write_text(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]
