"""Running a real server in a thread, on a port the OS picks (shared by the serve tests)."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

API_KEY = "test-key"


@dataclasses.dataclass
class RunningServer:
    url: str
    app: object
    text: object
    server: object
    thread: threading.Thread

    @property
    def engine(self):
        return self.app.state.engine

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(app, text) -> RunningServer:
    """Run `app` with uvicorn in a thread, on a port the OS picks; returns once it accepts."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return RunningServer(f"http://127.0.0.1:{port}", app, text, server, thread)
