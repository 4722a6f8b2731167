"""Relay metrics and the relay's structured log line.

``relay_observe(ctx, outcome)`` is called once per relayed request, right after it settled
(``inference.relay._finish``). It is O(1) and does no I/O: it bumps in-process
``prometheus_client`` counters/histograms and writes one log line. With several uvicorn
workers set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, wiped at deploy/start) and the
client library keeps the values in shared mmap files that ``/metrics`` aggregates
(see docs/operations.md).

``relay_log_context(ctx)`` binds the request's log context (request id, organization, key
display prefix, model) for every line logged while the request — and its stream pump — run.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

from config.logs import log_context_bind

logger = logging.getLogger("modelgate.relay")

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

REQUESTS = Counter(
    "modelgate_relay_requests",
    "Relayed requests that reached settlement, by model, wire format, outcome status and plan.",
    ["model", "format", "status", "plan"],
)
LATENCY = Histogram(
    "modelgate_relay_latency_seconds",
    "Request latency until settlement (streams: until the stream ended).",
    ["model", "format"],
    buckets=_LATENCY_BUCKETS,
)
TTFT = Histogram(
    "modelgate_relay_ttft_seconds",
    "Time to first token of streamed responses.",
    ["model", "format"],
    buckets=_TTFT_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "modelgate_upstream_errors",
    "Upstream failures by channel (a failed attempt before failover, or the final error).",
    ["channel"],
)
UPSTREAM_RETRIES = Counter(
    "modelgate_upstream_retries",
    "Failover attempts, by the channel that was tried after another one failed.",
    ["channel"],
)


def relay_log_context(ctx) -> None:
    """Bind the request's safe identifiers to the log context of the current task."""
    log_context_bind(
        request_id=ctx.request_id,
        org_id=ctx.org_id,
        key_prefix=getattr(ctx.key, "prefix", ""),
        model=ctx.model.id,
        endpoint=ctx.endpoint.name,
        format=ctx.endpoint.wire_format,
    )


def relay_observe(ctx, outcome) -> None:
    """Record one settled request: counters, histograms and one structured log line."""
    try:
        _observe(ctx, outcome)
    except Exception:  # metrics must never break a settled request
        logger.exception("relay metrics failed")


def _observe(ctx, outcome) -> None:
    model = ctx.model.id
    fmt = ctx.endpoint.wire_format
    org = getattr(ctx.key, "organization", None)
    plan = getattr(org, "pricing_plan", "") or "unknown"
    status = str(outcome.status)
    REQUESTS.labels(model, fmt, status, plan).inc()
    LATENCY.labels(model, fmt).observe((outcome.latency_ms or 0) / 1000)
    if outcome.ttft_ms is not None:
        TTFT.labels(model, fmt).observe(outcome.ttft_ms / 1000)
    channel = ctx.channel
    if channel is not None:
        # Channels tried before the one that ended the request failed (failover order).
        tried = ctx.channels.index(channel) if channel in ctx.channels else 0
        for failed in ctx.channels[:tried]:
            UPSTREAM_ERRORS.labels(failed.name).inc()
        if tried:
            UPSTREAM_RETRIES.labels(channel.name).inc(tried)
        if status == "upstream_error":
            UPSTREAM_ERRORS.labels(channel.name).inc()
    logger.info(
        "relay %s %s %s",
        ctx.endpoint.name,
        status,
        outcome.http_status,
        extra={
            "request_id": ctx.request_id,
            "org_id": ctx.org_id,
            "key_prefix": getattr(ctx.key, "prefix", ""),
            "model": model,
            "channel": channel.name if channel is not None else None,
            "status": status,
            "http_status": outcome.http_status,
            "latency_ms": outcome.latency_ms,
            "ttft_ms": outcome.ttft_ms,
            "error_code": outcome.error_code or None,
            "stream": bool(ctx.plan.stream),
        },
    )


# --- jobs (recorded in the Celery worker that ran them) --------------------------------------------

BATCH_LINES = Counter(
    "modelgate_batch_lines",
    "Batch lines finished by this worker, by outcome (succeeded = 2xx result, failed = error result).",
    ["outcome"],
)
BATCHES_FINISHED = Counter(
    "modelgate_batches_finished",
    "Batches that reached a final status in this worker (completed, failed, cancelled, expired).",
    ["status"],
)
COMPARE_RESULTS = Counter(
    "modelgate_compare_results",
    "Compare-job model results run by this worker, by outcome (succeeded, failed).",
    ["outcome"],
)


def jobs_observe_lines(*, succeeded: int = 0, failed: int = 0) -> None:
    if succeeded:
        BATCH_LINES.labels("succeeded").inc(succeeded)
    if failed:
        BATCH_LINES.labels("failed").inc(failed)


def jobs_observe_batch(status: str) -> None:
    BATCHES_FINISHED.labels(str(status)).inc()


def jobs_observe_compare(outcome: str) -> None:
    COMPARE_RESULTS.labels(str(outcome)).inc()
