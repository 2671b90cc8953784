"""`luoxia` itself: help, version, usage errors, and `luoxia models`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from luoxia.cli.models import human_size


def test_help_lists_the_commands(luoxia):
    run = luoxia("--help")
    assert run.code == 0
    for command in ("generate", "chat", "models"):
        assert command in run.out


@pytest.mark.parametrize("command", ["generate", "chat", "models"])
def test_each_command_has_help(luoxia, command):
    run = luoxia(command, "--help")
    assert run.code == 0
    assert run.out.startswith(f"usage: luoxia {command}")


def test_help_does_not_import_torch():
    code = ("import sys; from luoxia.cli.main import main; main(['--help']); main(['generate', '--help']); "
            "main(['chat', '--help']); print('torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "False"


def test_version(luoxia):
    run = luoxia("--version")
    assert run.code == 0
    assert run.out.startswith("luoxia ")


def test_no_command_shows_help_and_fails(luoxia):
    run = luoxia()
    assert run.code == 2
    assert "usage: luoxia" in run.err


@pytest.mark.parametrize("argv, words", [
    (["generate", "hi", "--top-k", "many"], ["--top-k", "invalid int value"]),
    (["generate", "hi", "--early-stopping", "maybe"], ["--early-stopping", "invalid choice"]),
    (["generate", "hi", "--sample", "--greedy"], ["--greedy", "not allowed"]),
    (["generate", "hi", "--bogus"], ["unrecognized arguments", "--bogus"]),
    (["frobnicate"], ["invalid choice", "frobnicate"]),
])
def test_usage_errors_are_one_line(luoxia, argv, words):
    luoxia(*argv).assert_user_error(*words)


def test_models_lists_the_embedded_model(luoxia, smollm2_path):
    run = luoxia("models")
    assert run.code == 0
    header, *rows = run.out.splitlines()
    assert header.split()[:3] == ["NAME", "KIND", "SIZE"]
    smollm2 = next(r for r in rows if r.startswith("smollm2 "))
    assert "embedded" in smollm2 and "MiB" in smollm2 and str(smollm2_path) in smollm2


def test_models_json(luoxia, smollm2_path):
    run = luoxia("models", "--json")
    assert run.code == 0
    entries = {e["name"]: e for e in json.loads(run.out)}
    assert entries["smollm2"]["kind"] == "embedded"
    assert entries["smollm2"]["size_bytes"] == smollm2_path.stat().st_size
    assert entries["smollm2"]["source"] == str(smollm2_path)
    for name, package in (("shapes", "image"), ("digits", "image"), ("chorale", "music"), ("moving-shapes", "video")):
        assert entries[name]["kind"] == "embedded" and entries[name]["size_bytes"] > 0, name
        assert entries[name]["source"].endswith(f"{package}/weights/{name}"), name


@pytest.mark.parametrize("n, text", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (98362432, "93.8 MiB"),
                                     (3 * 1024**3, "3.0 GiB"), (5 * 1024**4, "5.0 TiB")])
def test_human_size(n, text):
    assert human_size(n) == text
