"""Start the cluster for a database and run every scenario: shared by the pytest test and `make scale-test`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from . import scenarios
from .cluster import Cluster, netns_available

HOLD_TTL_SECONDS = 8


@dataclass
class Sizes:
    rpm: int
    hold_requests: int
    batch_lines: int
    kill_lines: int
    kill_load_seconds: float
    kill_clients: int


SHORT = Sizes(rpm=10, hold_requests=8, batch_lines=30, kill_lines=40, kill_load_seconds=4, kill_clients=6)
LONG = Sizes(rpm=40, hold_requests=30, batch_lines=200, kill_lines=300, kill_load_seconds=15, kill_clients=16)


def node_settings() -> dict:
    from django.conf import settings

    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "scale-test-" + "x" * 40,
        "DJANGO_ALLOWED_HOSTS": "*",
        "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEYS),  # the driver wrote the channels
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", "mg"),
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
    }


NODE_ENV = {
    "BATCH_CHUNK_SIZE": "5",
    "BATCH_LEASE_SECONDS": "3",
    "BATCH_STALE_SECONDS": "1",
    "BATCH_RESUME_INTERVAL_SECONDS": "1",
    "BILLING_HOLD_TTL_SECONDS": str(HOLD_TTL_SECONDS),
    "BILLING_HOLDS_EXPIRE_INTERVAL_SECONDS": "2",
    "CATALOGUE_CACHE_SECONDS": "1",
}


def cluster_for(*, database_url: str, workdir: Path, netns: bool | None = None) -> tuple[Cluster, str]:
    from django.conf import settings

    mode_reason = ""
    if netns is None:
        netns, mode_reason = netns_available()
    cluster = Cluster(
        database_url=database_url,
        redis_url=settings.REDIS_URL,
        broker_url=settings.CELERY_BROKER_URL,
        result_url=settings.CELERY_RESULT_BACKEND,
        workdir=workdir,
        netns=netns,
        settings_env=node_settings(),
        node_env=NODE_ENV,
    )
    return cluster, mode_reason


def run_all(cluster: Cluster, sizes: Sizes) -> dict:
    report: dict = {"mode": "network namespaces" if cluster.netns else "loopback ports"}
    report["nodes"] = {
        n: {"url": node.url, **({"celery": node.hostname} if node.hostname else {})}
        for n, node in cluster.nodes.items()
        if node.kind in ("web", "worker")
    }
    scenarios.catalogue_ready(cluster.nodes["simulator"].url)
    scenarios.warm_up(cluster)
    for name, run in (
        ("rpm", lambda: scenarios.scenario_rpm(cluster, rpm=sizes.rpm)),
        ("holds", lambda: scenarios.scenario_holds(cluster, k=sizes.hold_requests)),
        ("batch", lambda: scenarios.scenario_batch(cluster, lines=sizes.batch_lines)),
        (
            "kill",
            lambda: scenarios.scenario_kill(
                cluster,
                lines=sizes.kill_lines,
                load_seconds=sizes.kill_load_seconds,
                clients=sizes.kill_clients,
                hold_ttl=HOLD_TTL_SECONDS,
            ),
        ),
    ):
        started = time.monotonic()
        report[name] = run()
        report[name]["scenario_seconds"] = round(time.monotonic() - started, 1)
    return report
