"""`luoxia serve` as a user starts it: a real process, bound to loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def luoxia(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "luoxia.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "LUOXIA_API_KEY": ""}, **kwargs)


def test_serve_runs_on_loopback_and_stops_on_sigint(tiny_llama_dir):
    port = free_port()
    proc = luoxia("serve", "--model", str(tiny_llama_dir), "--port", str(port), "--image-model", "none")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "luoxia serve did not come up"
                time.sleep(0.2)
        assert health["status"] == "ok" and health["auth"] is False
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json={"prompt": "Hi", "max_tokens": 3},
                           timeout=30)
        assert reply.status_code == 200 and reply.json()["choices"][0]["aigc"]["Label"] == "1"
        listening = [c for c in _listeners(proc.pid) if c.endswith(f":{port}")]
        assert listening and all(c.startswith("127.0.0.1:") for c in listening)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in err


def _fd_target(pid: int, fd: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except FileNotFoundError:  # closed since it was listed
        return ""


def _listeners(pid: int) -> list[str]:
    """Local addresses the process listens on, from /proc (IPv4)."""
    targets = [_fd_target(pid, fd) for fd in os.listdir(f"/proc/{pid}/fd")]
    inodes = {target[8:-1] for target in targets if target.startswith("socket:")}
    out = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # state LISTEN
                ip_hex, port_hex = fields[1].split(":")
                ip = ".".join(str(int(ip_hex[i:i + 2], 16)) for i in (6, 4, 2, 0))
                out.append(f"{ip}:{int(port_hex, 16)}")
    return out


def test_bad_serve_flags_are_one_line_errors(tiny_llama_dir):
    for args, words in [(["--port", "0"], "port must be in 1..65535"),
                        (["--max-tokens-limit", "0"], "max_tokens_limit must be >= 1"),
                        (["--model", "/no/such/model.gguf", "--image-model", "none"], "/no/such/model.gguf")]:
        proc = luoxia("serve", *args)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert words in err and len(err.strip().splitlines()) == 1, err
