"""Serving under load: `luoxia serve` as a user runs it, and llama.cpp's server beside it when given.

Each server runs as its own process on a free loopback port with the embedded SmolLM2-135M-Instruct
(ours: `luoxia serve`, int4 by default on the CPU; llama.cpp: `python -m llama_cpp.server` on the
same Q4_1 GGUF, 2 threads, when --llamacpp-python names a Python with llama-cpp-python[server]).
Clients are threads in this process speaking OpenAI's streaming chat API over HTTP.

1. Scaling: with 1, 4 and 16 concurrent clients (--levels), each client sends --requests streamed
   chat requests of --max-tokens new tokens (sampled, temperature 0.8, no seed; --temperatures 0.7,1.0
   gives client k the k-th temperature in turn). Reported: total
   completion tokens/s over the wall time, p50/p95 request latency and time to first token.
2. Load (ours): --clients streaming clients, back to back for --duration seconds (default 16 x
   60 s). Faults are injected meanwhile: a client that drops its stream after the first chunk,
   malformed JSON, a 10 MB body. Reported: requests, errors (must be 0), p50/p95 latency and TTFT,
   tokens/s, the fault responses and whether /health still answers.

    .venv/bin/python benchmarks/serve_load.py [--duration 60] [--levels 1,4,16] [--llamacpp-python PATH]

Prints Markdown tables and writes benchmarks/results/serve_load.json. The clients share the
machine's cores with the server: on a 2-core machine they take a little of its time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

RESULTS = Path(__file__).resolve().parent / "results" / "serve_load.json"
PROMPTS = ["Write a short story about a lighthouse keeper.", "Explain how rain forms, step by step.",
           "Describe a busy market in the morning.", "Give advice to a student starting university.",
           "Tell me about the history of bicycles.", "Write a letter to a friend about your holiday.",
           "Describe the life cycle of a butterfly.", "What makes a good cup of tea? Explain in detail."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    """Start a server process (its log goes to a file: a full stderr pipe would block it) and wait until
    it answers."""
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - open for the life of the server
    proc = subprocess.Popen(command, stdout=log, stderr=log, text=True, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited: {log.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("server did not come up in 300 s")
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def chat_stream(base: str, prompt: str, max_tokens: int, model: str, drop_after_first: bool = False,
                temperature: float = 0.8) -> dict:
    """One streamed chat request: latency, time to first content, completion tokens (or the error)."""
    try:
        return _chat_stream(base, prompt, max_tokens, model, drop_after_first, temperature)
    except httpx.HTTPError as e:
        return {"ok": False, "status": None, "error": f"{type(e).__name__}: {e}"[:200]}


def _chat_stream(base: str, prompt: str, max_tokens: int, model: str, drop_after_first: bool,
                 temperature: float) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": temperature, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first, pieces, usage = None, 0, None
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=600) as r:
        if r.status_code != 200:
            r.read()
            return {"ok": False, "status": r.status_code, "error": r.text[:200]}
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                return {"ok": False, "status": 200, "error": str(event["error"])[:200]}
            if event.get("usage"):
                usage = event["usage"]["completion_tokens"]
            for choice in event.get("choices", []):
                if choice.get("delta", {}).get("content"):
                    first = first or time.perf_counter()
                    pieces += 1
            if drop_after_first and first:
                return {"ok": True, "dropped": True}
    t1 = time.perf_counter()
    return {"ok": True, "latency": t1 - t0, "ttft": (first or t1) - t0, "tokens": usage or pieces}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def summarise(results: list[dict], wall: float) -> dict:
    good = [r for r in results if r["ok"] and not r.get("dropped")]
    tokens = sum(r["tokens"] for r in good)
    return {"requests": len(results), "errors": sum(not r["ok"] for r in results), "wall_s": round(wall, 2),
            "tokens": tokens, "tokens_per_s": round(tokens / wall, 2),
            "latency_p50_s": round(pct([r["latency"] for r in good], 0.5), 3),
            "latency_p95_s": round(pct([r["latency"] for r in good], 0.95), 3),
            "ttft_p50_s": round(pct([r["ttft"] for r in good], 0.5), 3),
            "ttft_p95_s": round(pct([r["ttft"] for r in good], 0.95), 3)}


def scaling(base: str, model: str, clients: int, requests: int, max_tokens: int,
            temperatures: Sequence[float] = (0.8,)) -> dict:
    def client(k: int) -> list[dict]:
        return [chat_stream(base, PROMPTS[(k + i) % len(PROMPTS)], max_tokens, model,
                            temperature=temperatures[k % len(temperatures)]) for i in range(requests)]

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = [r for batch in pool.map(client, range(clients)) for r in batch]
    return summarise(results, time.perf_counter() - t0)


def faults(base: str, model: str) -> dict:
    """A dropped stream, malformed JSON and a 10 MB body, while the load runs."""
    out = {"dropped_stream": chat_stream(base, PROMPTS[0], 200, model, drop_after_first=True).get("dropped", False)}
    out["malformed_json_status"] = httpx.post(f"{base}/v1/chat/completions", content=b'{"messages": [',
                                              headers={"Content-Type": "application/json"}, timeout=60).status_code
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST", "/v1/chat/completions", body=b"{" + b" " * (10 << 20) + b"}",
                     headers={"Content-Type": "application/json"})
        out["ten_mb_body_status"] = conn.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        out["ten_mb_body_status"] = "connection closed by the server"
    finally:
        conn.close()
    return out


def load(base: str, model: str, clients: int, duration: float, max_tokens: int) -> dict:
    end = time.monotonic() + duration
    results: list[dict] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        i = 0
        while time.monotonic() < end:
            r = chat_stream(base, PROMPTS[(k + i) % len(PROMPTS)], max_tokens, model)
            with lock:
                results.append(r)
            i += 1

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients + 1) as pool:
        futures = [pool.submit(client, k) for k in range(clients)]
        time.sleep(min(10.0, duration / 3))
        fault_report = faults(base, model)
        for f in futures:
            f.result()
    summary = summarise(results, time.perf_counter() - t0)
    summary["faults"] = fault_report
    summary["healthy_after"] = httpx.get(f"{base}/v1/models", timeout=30).status_code == 200
    return summary


def table(rows: list[tuple]) -> str:
    head = "| server | clients | requests | errors | tokens/s | latency p50 / p95 s | TTFT p50 / p95 s |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for name, clients, s in rows:
        lines.append(f"| {name} | {clients} | {s['requests']} | {s['errors']} | {s['tokens_per_s']} | "
                     f"{s['latency_p50_s']} / {s['latency_p95_s']} | {s['ttft_p50_s']} / {s['ttft_p95_s']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--levels", default="1,4,16", help="concurrent clients for the scaling runs")
    ap.add_argument("--requests", type=int, default=2, help="requests per client in the scaling runs")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperatures", default="0.8",
                    help="comma-separated; client k of the scaling runs uses the k-th in turn (default 0.8)")
    ap.add_argument("--clients", type=int, default=16, help="clients in the load run")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of the load run (0 skips it)")
    ap.add_argument("--serve-args", default="", help="more `luoxia serve` options, e.g. '--quant w8a8 --compile'")
    ap.add_argument("--llamacpp-python", help="a Python with llama-cpp-python[server]: adds llama.cpp's server")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    temperatures = [float(x) for x in args.temperatures.split(",")]
    report: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                "python": platform.python_version()},
                    "settings": vars(args), "scaling": {}, "load": None}
    rows = []

    port = free_port()
    ours = start([sys.executable, "-m", "luoxia.cli.main", "serve", "--model", args.model, "--port", str(port),
                  "--image-model", "none", "--max-queue", "256", *shlex.split(args.serve_args)], port,
                 {"LUOXIA_API_KEY": ""})
    base = f"http://127.0.0.1:{port}"
    try:
        chat_stream(base, "Hello", 8, args.model)  # warm-up
        for c in levels:
            s = scaling(base, args.model, c, args.requests, args.max_tokens, temperatures)
            report["scaling"].setdefault("luoxia", {})[c] = s
            rows.append(("luoxia", c, s))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
        if args.duration > 0:
            report["load"] = load(base, args.model, args.clients, args.duration, args.max_tokens)
        report["luoxia_engine"] = httpx.get(f"{base}/health").json()["engine"]
    finally:
        stop(ours)

    report_ours(report, rows, levels, args)
    if args.llamacpp_python:
        from luoxia.core.registry import resolve

        port = free_port()
        llama = start([args.llamacpp_python, "-m", "llama_cpp.server", "--model", str(resolve(args.model)),
                       "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(os.cpu_count() or 2),
                       "--n_ctx", "2048", "--model_alias", args.model], port)
        base = f"http://127.0.0.1:{port}"
        try:
            chat_stream(base, "Hello", 8, args.model)
            for c in levels:
                s = scaling(base, args.model, c, args.requests, args.max_tokens, temperatures)
                report["scaling"].setdefault("llama.cpp", {})[c] = s
                rows.append(("llama.cpp", c, s))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
        finally:
            stop(llama)
        print("\n" + table(rows))
        for c in levels:
            ratio = report["scaling"]["luoxia"][c]["tokens_per_s"] / max(
                report["scaling"]["llama.cpp"][c]["tokens_per_s"], 1e-9)
            print(f"luoxia / llama.cpp tokens/s at {c} clients: {ratio:.2f}x")
        RESULTS.write_text(json.dumps(report, indent=2, default=str))
    return 0 if not report["load"] or (report["load"]["errors"] == 0 and report["load"]["healthy_after"]) else 1


def report_ours(report: dict, rows: list, levels: list[int], args: argparse.Namespace) -> None:
    print(f"\nMachine: {report['machine']}; {args.max_tokens} new tokens per request, {args.requests} requests "
          "per client\n")
    print(table(rows))
    ours = report["scaling"]["luoxia"]
    if len(levels) > 1:
        print(f"\nluoxia tokens/s at {levels[-1]} clients vs 1: "
              f"{ours[levels[-1]]['tokens_per_s'] / ours[levels[0]]['tokens_per_s']:.2f}x")
    if report["load"]:
        s = report["load"]
        print(f"\nLoad: {args.clients} streaming clients for {args.duration:.0f} s: {s['requests']} requests, "
              f"{s['errors']} errors, {s['tokens_per_s']} tokens/s, latency p50 {s['latency_p50_s']} s / "
              f"p95 {s['latency_p95_s']} s, TTFT p50 {s['ttft_p50_s']} s / p95 {s['ttft_p95_s']} s")
        print(f"Faults: {s['faults']}; healthy after: {s['healthy_after']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {RESULTS}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
