"""Two web nodes + two worker nodes (separate process groups, and network namespaces when root)
on one PostgreSQL and one Redis: RPM and holds hold globally, a batch runs on both workers, and a
web node and a worker node SIGKILLed mid-load lose or double no money. `make scale-test` runs the
longer variant and writes the report into docs/operations.md."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.jobs.conftest import _purge_broker
from tests.jobs.conftest import test_database_url as database_url_for_nodes

from . import scenarios
from .harness import SHORT, cluster_for, run_all

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_two_web_nodes_two_worker_nodes_keep_the_books(transactional_db, tmp_path):
    cluster, why_not_netns = cluster_for(database_url=database_url_for_nodes(), workdir=tmp_path / "cluster")
    if not cluster.netns and os.environ.get("MODELGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"network namespaces unavailable in CI: {why_not_netns}")
    _purge_broker()
    scenarios.catalogue_seeded()
    started = time.monotonic()
    cluster.start()
    try:
        report = run_all(cluster, SHORT)
    except BaseException:
        for node in cluster.nodes.values():
            print(f"--- {node.name} ---\n{node.log_tail(2000)}")
        raise
    finally:
        cluster.stop()
    report["total_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report, indent=1))
