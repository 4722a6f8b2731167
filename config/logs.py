"""Structured logs: a JSON formatter and a per-request log context.

``LOG_FORMAT=json`` (settings) selects :class:`JsonFormatter` for the web process and the
Celery workers; the default stays the plain one-line format for ``make run``.

The context (request id, organization id, key *display prefix*, model, channel) lives in a
``contextvars.ContextVar``: it is set by the relay for the request's task, copied into the
threads of ``sync_to_async`` and into the stream pump task, and never shared between
requests. Only values known to be safe go into it — never a secret, a full key, a prompt
or an image. As a last line of defence the formatter masks anything shaped like an API key
(``mg-`` followed by a long token) in the message.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import re

import orjson

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("modelgate_log_context", default=None)

# Fields the context accepts; anything else is dropped (keeps secrets out by construction).
CONTEXT_FIELDS = ("request_id", "org_id", "key_prefix", "model", "channel", "endpoint", "format")
# Extra attributes a log call may pass with ``extra={...}`` that are copied to the JSON line.
EXTRA_FIELDS = (*CONTEXT_FIELDS, "status", "http_status", "latency_ms", "ttft_ms", "error_code", "stream")

_KEY_LIKE = re.compile(r"mg-[A-Za-z0-9_\-]{12,}")


def log_context_bind(**fields) -> None:
    """Add fields to the current task's log context (unknown names are ignored)."""
    current = dict(_context.get() or {})
    current.update({k: v for k, v in fields.items() if k in CONTEXT_FIELDS and v not in (None, "")})
    _context.set(current)


def log_context() -> dict:
    return dict(_context.get() or {})


def log_context_clear() -> None:
    _context.set(None)


def mask_secrets(text: str) -> str:
    return _KEY_LIKE.sub(lambda m: m.group(0)[:10] + "…", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the request context, safe extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_secrets(record.getMessage()),
        }
        payload.update(log_context())
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                payload[name] = value
        if record.exc_info:
            payload["exc"] = mask_secrets(self.formatException(record.exc_info))
        process_name = record.__dict__.get("processName")
        if process_name and process_name != "MainProcess":
            payload["process"] = process_name
        return orjson.dumps(payload, default=str).decode()
