"""Metrics of a Celery worker node: its own ``/metrics`` HTTP endpoint (off by default).

A worker node has no web server, so it serves its metrics itself, like any other Prometheus
target: with ``WORKER_METRICS_PORT`` set, the worker's main process starts a small HTTP server
(``WORKER_METRICS_ADDR``, default ``127.0.0.1``) answering ``GET /metrics``.

What it exports:

- task outcomes and durations, from Celery's task signals in the pool processes:
  ``modelgate_celery_tasks_total{task, state}`` and
  ``modelgate_celery_task_duration_seconds{task}``;
- job outcomes recorded by the jobs themselves (``inference.metrics``): batch lines, finished
  batches, compare results — and ``modelgate_relay_*`` for the lines the worker relayed;
- ``modelgate_celery_queue_length{queue}`` read from the broker at scrape time (Redis only).

The prefork pool runs tasks in child processes: their values reach the main process through
prometheus_client's multiprocess mode, so ``PROMETHEUS_MULTIPROC_DIR`` must point at an empty
directory of this worker's own (not the web's: each service empties its directory when it
starts). A worker started with the port but without the directory refuses to start.
Access: ``METRICS_TOKEN`` when set (``Authorization: Bearer …``), as for the web's ``/metrics``;
bind the port to an address only the monitoring network reaches.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import signals
from prometheus_client import Counter, Histogram

logger = logging.getLogger("modelgate.ops")

_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

TASKS = Counter(
    "modelgate_celery_tasks",
    "Celery tasks run by this worker, by task name and final state (SUCCESS, FAILURE, RETRY, …).",
    ["task", "state"],
)
TASK_DURATION = Histogram(
    "modelgate_celery_task_duration_seconds",
    "Run time of Celery tasks in this worker (prerun → postrun).",
    ["task"],
    buckets=_DURATION_BUCKETS,
)

_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_prerun(task_id=None, **_kwargs) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


@signals.task_postrun.connect
def _task_postrun(task_id=None, task=None, state=None, **_kwargs) -> None:
    try:
        began = _started.pop(task_id, None)
        name = getattr(task, "name", None) or "unknown"
        TASKS.labels(name, str(state or "UNKNOWN")).inc()
        if began is not None:
            TASK_DURATION.labels(name).observe(time.monotonic() - began)
    except Exception:  # metrics never fail a task
        logger.exception("task metrics failed")


# --- the endpoint -----------------------------------------------------------------------------------


def worker_metrics_text() -> bytes:
    from config.health import QueueCollector, prometheus_text

    return prometheus_text(QueueCollector())


def _authorized(header: str, token: str) -> bool:
    presented = header[7:].strip() if header[:7].lower() == "bearer " else ""
    return bool(presented) and hmac.compare_digest(presented.encode(), token.encode())


def metrics_wsgi_app(environ, start_response):
    from django.conf import settings
    from prometheus_client import CONTENT_TYPE_LATEST

    token = getattr(settings, "METRICS_TOKEN", "")
    if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found\n"]
    if token and not _authorized(environ.get("HTTP_AUTHORIZATION", ""), token):
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [b"Forbidden\n"]
    try:
        body = worker_metrics_text()
    except Exception:
        logger.exception("worker metrics failed")
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"metrics failed\n"]
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Cache-Control", "no-store")])
    return [body]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # no access log
        pass


def _uses_child_processes(worker) -> bool:
    pool = getattr(worker, "pool_cls", None)
    name = (
        pool
        if isinstance(pool, str)
        else f"{getattr(pool, '__module__', '')}.{getattr(pool, '__name__', '')}"
    )
    return "prefork" in name or "processes" in name


def worker_metrics_serve(*, addr: str, port: int) -> _Server:
    server = make_server(addr, port, metrics_wsgi_app, server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    return server


@signals.worker_init.connect
def _worker_init(sender=None, **_kwargs) -> None:
    from django.conf import settings

    port = int(getattr(settings, "WORKER_METRICS_PORT", 0) or 0)
    if not port:
        return
    if _uses_child_processes(sender) and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # SystemExit, not an exception: Celery logs and ignores exceptions raised by receivers.
        raise SystemExit(
            "WORKER_METRICS_PORT with the prefork pool needs PROMETHEUS_MULTIPROC_DIR: an empty "
            "directory of this worker's own (the pool's child processes write their values there)."
        )
    addr = getattr(settings, "WORKER_METRICS_ADDR", "127.0.0.1")
    worker_metrics_serve(addr=addr, port=port)
    logger.warning("worker metrics on http://%s:%s/metrics", addr, port)
