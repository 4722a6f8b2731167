"""Operations endpoints: ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz`` — the process is alive and serving; no I/O. 200 always.
- ``/readyz`` — the database, the cache (Redis when configured), the Celery broker answer and
  the model catalogue is loaded; JSON detail per check, 200 when all pass, else 503. Every
  check is bounded by ``READYZ_TIMEOUT_SECONDS``.
- ``/metrics`` — Prometheus text format. Protected by ``METRICS_TOKEN`` (``Authorization:
  Bearer …``); with no token set, only loopback clients that did not come through a proxy.
  Process metrics come from ``inference.metrics`` (multiprocess-aware); money and queue
  gauges are computed at scrape time (see :class:`ScrapeCollector`).

Included once from ``config.urls``.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger("modelgate.ops")

LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


# --- health --------------------------------------------------------------------------------------


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _timeout() -> float:
    return float(getattr(settings, "READYZ_TIMEOUT_SECONDS", 2.0))


def check_database() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_cache() -> dict:
    if settings.REDIS_URL:
        import redis

        t = _timeout()
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=t, socket_timeout=t)
        try:
            client.ping()
        finally:
            client.close()
    from django.core.cache import cache

    probe = f"readyz:{os.getpid()}:{time.monotonic_ns()}"
    cache.set(probe, "1", 5)
    if cache.get(probe) != "1":
        raise RuntimeError("cache round trip failed")
    cache.delete(probe)
    return {"backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]}


def check_broker() -> dict:
    from kombu import Connection

    t = _timeout()
    conn = Connection(
        settings.CELERY_BROKER_URL,
        transport_options=dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}),
        connect_timeout=t,
    )
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=t)
        return {"transport": type(conn.transport).__module__.rsplit(".", 1)[-1]}
    finally:
        conn.release()


def check_catalogue() -> dict:
    from models_catalog.selectors import catalogue_snapshot

    models = len(catalogue_snapshot().models)
    if not models:
        raise RuntimeError("the model catalogue is empty (run `manage.py bootstrap`)")
    return {"models": models}


CHECKS = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "catalogue": check_catalogue,
}


@never_cache
@require_GET
def readyz(request):
    results: dict[str, dict] = {}
    ready = True
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            detail = {"ok": True, **check()}
        except Exception as exc:  # report every failure as a failed check, never a 500
            ready = False
            detail = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
            logger.warning("readiness check %s failed: %s", name, detail["error"])
        detail["ms"] = round((time.monotonic() - started) * 1000, 1)
        results[name] = detail
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": results}, status=200 if ready else 503
    )


# --- metrics -------------------------------------------------------------------------------------


def metrics_allowed(request) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        header = request.headers.get("Authorization", "")
        presented = header[7:].strip() if header[:7].lower() == "bearer " else ""
        return bool(presented) and hmac.compare_digest(presented.encode(), token.encode())
    forwarded = request.headers.get("X-Forwarded-For") or request.headers.get("X-Real-IP")
    return not forwarded and request.META.get("REMOTE_ADDR", "") in LOOPBACK


_ledger_cache: list = [0.0, None]  # [monotonic time, {kind: units}]


def _ledger_totals() -> dict[str, int]:
    """Σ ledger amounts per entry kind; one aggregate query, reused for METRICS_LEDGER_CACHE_SECONDS."""
    from django.db.models import Sum

    from billing.models import LedgerEntry

    now = time.monotonic()
    ttl = float(getattr(settings, "METRICS_LEDGER_CACHE_SECONDS", 60.0))
    if _ledger_cache[1] is not None and now - _ledger_cache[0] < ttl:
        return _ledger_cache[1]
    totals = {
        row["kind"]: int(row["total"] or 0)
        for row in LedgerEntry.objects.order_by().values("kind").annotate(total=Sum("amount_units"))
    }
    _ledger_cache[:] = [now, totals]
    return totals


def _queue_depths() -> dict[str, int] | None:
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith(("redis://", "rediss://")):
        return None
    import redis

    t = _timeout()
    client = redis.Redis.from_url(broker, socket_connect_timeout=t, socket_timeout=t)
    try:
        queues = getattr(settings, "METRICS_CELERY_QUEUES", ["celery"])
        return {q: int(client.llen(q)) for q in queues}
    finally:
        client.close()


class ScrapeCollector:
    """Gauges read from the database (and the broker) at scrape time: cheap aggregates."""

    def collect(self):
        from django.db.models import Count, Sum
        from prometheus_client.core import GaugeMetricFamily

        from billing.models import Hold, HoldStatus

        holds = Hold.objects.filter(status=HoldStatus.OPEN).aggregate(
            n=Count("pk"), units=Sum("amount_units")
        )
        yield GaugeMetricFamily(
            "modelgate_holds_open", "Open holds (requests in flight).", value=holds["n"] or 0
        )
        yield GaugeMetricFamily(
            "modelgate_holds_open_units", "Nano-USD held by open holds.", value=int(holds["units"] or 0)
        )
        ledger = GaugeMetricFamily(
            "modelgate_ledger_sum_units",
            "Σ ledger entry amounts by kind, nano-USD (signup_credit/bonus/redemption = granted, "
            "topup = topped up, usage = charged, negative).",
            labels=["kind"],
        )
        for kind, units in sorted(_ledger_totals().items()):
            ledger.add_metric([kind], units)
        yield ledger
        yield from QueueCollector().collect()


class QueueCollector:
    """``modelgate_celery_queue_length{queue}`` read from the broker at scrape time (Redis only;
    nothing when the broker can't be read)."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        try:
            depths = _queue_depths()
        except Exception as exc:
            logger.warning("celery queue depth unavailable: %s", exc)
            return
        if depths is None:
            return
        gauge = GaugeMetricFamily(
            "modelgate_celery_queue_length", "Messages waiting in the queue.", labels=["queue"]
        )
        for queue, depth in depths.items():
            gauge.add_metric([queue], depth)
        yield gauge


def prometheus_text(*scrape_collectors) -> bytes:
    """This process's metrics (all processes' with ``PROMETHEUS_MULTIPROC_DIR``), then the
    collectors read at scrape time."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    # Importing registers the relay's and the jobs' metrics (in this or the mmap registry).
    import inference.metrics  # noqa: F401

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        process_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(process_registry)
    else:
        process_registry = REGISTRY
    scrape_registry = CollectorRegistry(auto_describe=False)
    for collector in scrape_collectors:
        scrape_registry.register(collector)
    return generate_latest(process_registry) + generate_latest(scrape_registry)


def metrics_text() -> bytes:
    return prometheus_text(ScrapeCollector())


@never_cache
@require_GET
def metrics(request):
    if not metrics_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    from prometheus_client import CONTENT_TYPE_LATEST

    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]
