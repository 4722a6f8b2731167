"""Fixtures of the operations tests. The relay fixtures (simulator, gateway) are the inference tests'."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.inference.conftest import Gateway, catalogue, gateway, gateway_server, simulator  # noqa: F401
from tests.live import free_port

VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    """The test database, for a server in another process (transactional tests only)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def web_factory(tmp_path):
    """Start the gateway as a real uvicorn subprocess (the Procfile's command) on the test DB."""
    procs = []

    def start(*, workers: int = 1, env: dict | None = None) -> subprocess.Popen:
        port = free_port()
        log_path = tmp_path / f"web-{port}.log"
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": _database_url(),
            "MODELGATE_SERVE_STATIC": "0",
            "SHUTDOWN_DRAIN_SECONDS": "20",
            "RELAY_DRAIN_SECONDS": "20",
            "LOG_FORMAT": "json",
            **(env or {}),
        }
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [
                str(VENV_BIN / "uvicorn"),
                "config.asgi:application",
                "--host=127.0.0.1",
                f"--port={port}",
                f"--workers={workers}",
                "--no-access-log",
                "--timeout-graceful-shutdown=15",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, log))
        proc.url = f"http://127.0.0.1:{port}"
        proc.log_path = log_path
        deadline = time.monotonic() + 40
        while True:
            try:
                if httpx.get(proc.url + "/healthz", timeout=1).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("gateway did not start:\n" + log_path.read_text())
            time.sleep(0.1)

    yield start
    for proc, log in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
