"""Real Celery worker processes (not eager) against the test database and the configured broker.

CI: Redis (CELERY_BROKER_URL) + PostgreSQL (DATABASE_URL → pytest-django's ``test_<name>``).
Locally without them: the filesystem broker in MODELGATE_DATA_DIR and the SQLite test file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.inference.conftest import Gateway, catalogue, gateway, gateway_server, simulator  # noqa: F401

CELERY = str(Path(sys.executable).with_name("celery"))


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


class Workers:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, *, beat: bool = False, concurrency: int = 4, **env_extra: str) -> subprocess.Popen:
        n = len(self.procs)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": test_database_url(),
            "CATALOGUE_CACHE_SECONDS": "1",
            "BATCH_LEASE_SECONDS": "3",
            "BATCH_STALE_SECONDS": "1",
            "BATCH_RESUME_INTERVAL_SECONDS": "1",
            **env_extra,
        }
        env.pop("MODELGATE_REQUIRE_SERVICES", None)
        cmd = [
            CELERY,
            "-A",
            "config",
            "worker",
            "-l",
            "warning",
            "-P",
            "prefork",
            "-c",
            str(concurrency),
            "-n",
            f"jobs-test-{os.getpid()}-{n}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
        if beat:
            cmd += ["-B", "-s", str(self.log_dir / f"beat-{n}")]
        log = open(self.log_dir / f"worker-{n}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd, env=env, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        self._wait_ready(proc, n)
        return proc

    def _wait_ready(self, proc: subprocess.Popen, n: int) -> None:
        from config.celery import ping

        result = ping.delay()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(
                    f"worker exited: {(self.log_dir / f'worker-{n}.log').read_text()[-3000:]}"
                )
            if result.ready():
                return
            time.sleep(0.1)
        raise AssertionError("the worker did not answer a ping within 60 s")

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker and its pool children (the whole process group): no cleanup runs."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)


def _purge_broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        with contextlib.suppress(Exception):
            channel.queue_purge("celery")


@pytest.fixture
def workers(transactional_db, tmp_path):
    """Start real workers with ``workers.start()``; all are killed before the database is flushed."""
    _purge_broker()
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def worker(workers, gateway):  # noqa: F811
    """One running worker, started after the gateway's catalogue and simulator channels exist."""
    return workers.start()
