"""The server at the HTTP level: limits, malformed input, disconnects, the page."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlparse

import httpx
import pytest

AUTH = {"Authorization": "Bearer test-key"}


def post(server, path: str, body: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(server.url + path, content=body, headers={**AUTH, "Content-Type": "application/json",
                                                                 **(headers or {})}, timeout=60)


def assert_openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def test_health_and_page(server):
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["model"] == server.text.name and health["auth"] is True
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "luoxia" in page.text and 'id="chat-input"' in page.text


@pytest.mark.parametrize(("body", "code"), [
    (b'{"prompt": "Hi", "max_tokens": ', "invalid_json"),
    (b"\xff\xfe not utf-8", "invalid_json"),
    (b'["a list"]', "invalid_json"),
    (b"{}", None),
])
def test_malformed_bodies_are_400(server, body, code):
    error = assert_openai_error(post(server, "/v1/completions", body), 400)
    assert error["code"] == code
    if code is None:
        assert error["param"] == "prompt"


def test_unknown_route_and_method_are_json_errors(server):
    assert assert_openai_error(httpx.get(server.url + "/v1/nothing"), 404)["type"] == "not_found_error"
    assert_openai_error(httpx.get(server.url + "/v1/completions"), 405)


def test_a_10_mb_body_is_refused_and_the_server_keeps_serving(server):
    target = urlparse(server.url)
    body = b'{"prompt": "' + b"x" * (10 << 20) + b'"}'
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    try:
        conn.request("POST", "/v1/completions", body=body, headers={**AUTH, "Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"]["code"] == "request_too_large"
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered 413 and closed before the client finished sending: also fine
    finally:
        conn.close()
    # A chunked body (no Content-Length) is cut off at the limit as well.
    chunks = (b"x" * 8192 for _ in range(100))
    chunked = httpx.post(server.url + "/v1/completions", content=chunks, headers=AUTH, timeout=60)
    assert_openai_error(chunked, 413)
    ok = post(server, "/v1/completions", json.dumps({"prompt": "Hi", "max_tokens": 2, "temperature": 0}).encode())
    assert ok.status_code == 200


def test_a_client_that_leaves_mid_stream_frees_its_slot(server):
    cancelled = server.engine.stats.cancelled
    body = {"prompt": "The quick", "max_tokens": 3000, "min_tokens": 3000, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body, headers=AUTH, timeout=60) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
    deadline = time.monotonic() + 20
    while server.engine.stats.cancelled == cancelled or server.engine.stats.active:
        assert time.monotonic() < deadline, "the abandoned stream kept decoding"
        time.sleep(0.05)
    ok = post(server, "/v1/completions", json.dumps({"prompt": "Hi", "max_tokens": 2, "temperature": 0}).encode())
    assert ok.status_code == 200 and ok.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_every_response_kind_carries_the_labels(server):
    data = post(server, "/v1/completions", json.dumps({"prompt": "Hi", "max_tokens": 3}).encode()).json()
    choice = data["choices"][0]
    assert choice["aigc"]["Label"] == "1" and choice["provenance"]["labels"]["visible"] is True
    assert choice["provenance"]["model"] == server.text.name
    events = []
    with httpx.stream("POST", server.url + "/v1/chat/completions", headers=AUTH, timeout=60,
                      json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    final = json.loads(events[-2])
    assert final["choices"][0]["finish_reason"] and final["aigc"]["Label"] == "1"


def test_a_full_queue_answers_429_and_recovers(serve_text, monkeypatch):
    import threading

    from serve_helpers import start_server

    from luoxia.serve.app import create_app
    from luoxia.serve.config import ServeConfig

    release = threading.Event()
    unblocked = serve_text.running_batch

    def held(config):  # the worker's first step waits until the test lets it go
        batch, seed = unblocked(config)
        step = batch.step

        def held_step():
            release.wait(30)
            return step()

        batch.step = held_step
        return batch, seed

    monkeypatch.setattr(serve_text, "running_batch", held)
    running = start_server(create_app(ServeConfig(max_queue=1, max_batch=1, batch_window_ms=0), serve_text),
                           serve_text)
    request = {"prompt": "Hi", "max_tokens": 2, "temperature": 0}
    replies: list[httpx.Response] = []
    try:
        def send() -> None:
            replies.append(httpx.post(running.url + "/v1/completions", json=request, timeout=60))

        senders = [threading.Thread(target=send) for _ in range(2)]
        deadline = time.monotonic() + 10
        senders[0].start()  # decoding (held)
        while running.engine.stats.active < 1:
            assert time.monotonic() < deadline, "the first request never reached the model"
            time.sleep(0.02)
        senders[1].start()  # waiting in the queue
        while running.engine.queued < 1:
            assert time.monotonic() < deadline, "the second request never reached the queue"
            time.sleep(0.02)
        refused = httpx.post(running.url + "/v1/completions", json=request, timeout=60)
        assert assert_openai_error(refused, 429)["type"] == "rate_limit_error"
        release.set()
        for sender in senders:
            sender.join(timeout=30)
        assert [r.status_code for r in replies] == [200, 200]
        assert httpx.post(running.url + "/v1/completions", json=request, timeout=60).status_code == 200
    finally:
        release.set()
        running.stop()
