"""Run the simulator in a background thread (tests, benchmarks, demos).

with running_simulator() as sim:
    client = OpenAI(api_key="sk-test", base_url=sim.url + "/v1")
    ...
    sim.app.requests  # the request log, in-process
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from .app import Simulator, create_app


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class SimulatorServer:
    """uvicorn serving a fresh :class:`Simulator` on ``host:port`` in a daemon thread."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, app: Simulator | None = None
    ) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self.app = app or create_app()
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=3,
            backlog=4096,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"simulator:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"upstream simulator failed to start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)


@contextlib.contextmanager
def running_simulator(host: str = "127.0.0.1", port: int | None = None) -> Iterator[SimulatorServer]:
    server = SimulatorServer(host, port).start()
    try:
        yield server
    finally:
        server.stop()
