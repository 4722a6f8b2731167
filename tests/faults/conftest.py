"""Fault tests run their own PostgreSQL cluster and redis-server (``tests.faults.services``) —
never the shared ones, which they stop, restart and flush."""

from __future__ import annotations

import pytest

from tests.conftest import _missing
from tests.faults.services import postgres_bindir, redis_server_path


@pytest.fixture(scope="session")
def fault_binaries():
    if postgres_bindir() is None:
        _missing("needs the PostgreSQL server binaries (initdb, pg_ctl; or set PG_BINDIR)")
    if redis_server_path() is None:
        _missing("needs redis-server")


@pytest.fixture(scope="module")
def stack(fault_binaries, tmp_path_factory):
    """Private PostgreSQL + Redis, the simulator and the gateway (uvicorn, production settings)."""
    from tests.faults.harness import Stack

    stack = Stack(tmp_path_factory.mktemp("fault-stack"))
    try:
        stack.setup = stack.start()
        yield stack
    finally:
        stack.stop()
