"""The upstream simulator: a pure ASGI application (no framework, no Django).

It speaks OpenAI (chat completions, embeddings, images, models) and Anthropic
(messages, count_tokens, models) with deterministic usage, and injects latency and
faults chosen per request (``[[sim …]]`` directives in the prompt, a ``sim-…`` API key,
or an ``x-sim`` header). See docs/simulator.md.

Run it with ``python -m inference.simulator`` or ``uvicorn inference.simulator.app:app``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

import orjson

from . import formats, media
from .controls import ControlError, Controls, apply_directives, apply_key, iter_strings, parse_pairs
from .formats import Reply, RequestError, anthropic_error, openai_error
from .usage import PromptCache

MAX_BODY = 64 * 1024 * 1024
LOG_SIZE = 1000

MODELS = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("gpt-4.1", "openai"),
    ("gpt-4.1-mini", "openai"),
    ("o4-mini", "openai"),
    ("text-embedding-3-small", "openai"),
    ("text-embedding-3-large", "openai"),
    ("gpt-image-1", "openai"),
    ("dall-e-3", "openai"),
    ("dall-e-2", "openai"),
    ("claude-3-5-sonnet-20241022", "anthropic"),
    ("claude-3-5-haiku-20241022", "anthropic"),
    ("claude-sonnet-4-20250514", "anthropic"),
    ("claude-opus-4-20250514", "anthropic"),
    ("grok-3", "xai"),
    ("grok-3-mini", "xai"),
    ("grok-2-vision-1212", "xai"),
    ("qwen-plus", "qwen"),
    ("qwen-max", "qwen"),
    ("qwen-vl-max", "qwen"),
    ("gemini-2.0-flash", "google"),
    ("gemini-2.5-pro", "google"),
]


class SimulatedDisconnect(Exception):
    """Raised inside the ASGI app to make the server drop the connection mid-response."""


class _QuietDisconnects(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedDisconnect)


logging.getLogger("uvicorn.error").addFilter(_QuietDisconnects())


# Base paths of the vendors the simulator stands in for (OpenAI, Anthropic, xAI: /v1;
# Qwen/DashScope: /compatible-mode/v1; Gemini's OpenAI endpoint: /v1beta/openai).
BASE_PATHS = ("/v1", "/compatible-mode/v1", "/v1beta/openai", "/openai/v1", "/api/v1")
ENDPOINTS = {
    "/chat/completions": "chat",
    "/messages/count_tokens": "count_tokens",
    "/messages": "messages",
    "/embeddings": "embeddings",
    "/images/generations": "images",
    "/images/edits": "image_edits",
    "/models": "models",
}


def _route(path: str) -> str | None:
    """Map ``<base path><endpoint>`` onto an endpoint name; None when unknown."""
    for base in BASE_PATHS:
        if path.startswith(base + "/"):
            rest = path[len(base) :]
            if rest in ENDPOINTS:
                return ENDPOINTS[rest]
            if rest.startswith("/models/") and len(rest) > 8:
                return "model"
    return None


class Simulator:
    """ASGI callable. All state (request log, prompt cache, key overrides) is per instance."""

    def __init__(self, log_size: int = LOG_SIZE) -> None:
        self.requests: deque[dict] = deque(maxlen=log_size)
        self.cache = PromptCache()
        self.key_controls: dict[str, str] = {}
        self._seq = 0
        self.started = time.time()

    def reset(self) -> None:
        self.requests.clear()
        self.cache.clear()
        self.key_controls.clear()

    # ------------------------------------------------------------------ ASGI entry point

    async def __call__(self, scope: dict, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        body = await self._read_body(receive)
        if path.startswith("/_sim/") or path in ("/_sim", "/health"):
            await self._admin(scope, method, path, headers, body, send)
            return
        endpoint = _route(path)
        anthropic = endpoint in ("messages", "count_tokens") or (
            endpoint in ("models", "model", None) and "anthropic-version" in headers
        )
        err = anthropic_error if anthropic else openai_error
        if body is None:
            await _send_error(send, anthropic, 413, "Request body too large.")
            return
        if endpoint is None or (method != "GET") == (endpoint in ("models", "model")):
            await _send_json(
                send, 404, err(404, f"Unknown request URL: {method} {path}. (upstream simulator)", None)
            )
            return

        key = _api_key(headers, anthropic)
        if not key:
            if anthropic:
                msg = "x-api-key header is required"
                await _send_json(send, 401, anthropic_error(401, msg))
            else:
                msg = (
                    "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                )
                await _send_json(send, 401, openai_error(401, msg, code=None))
            return
        if anthropic and "anthropic-version" not in headers:
            await _send_json(send, 400, anthropic_error(400, "anthropic-version: header is required"))
            return

        if endpoint in ("models", "model"):
            await self._models(send, path, endpoint, anthropic)
            return

        entry = self._log(scope, endpoint, headers, key)
        try:
            parsed, directive_texts, form = self._parse(endpoint, headers, body)
            entry["model"] = str(parsed.get("model") or "") or None
            entry["stream"] = bool(parsed.get("stream")) and endpoint in ("chat", "messages")
            entry["body"] = form if form is not None else parsed
            controls = self._controls(key, headers, directive_texts)
            entry["controls"] = controls.as_dict()
            reply = self._build(endpoint, parsed, controls, headers, scope)
        except RequestError as exc:
            entry.update(status=exc.status, outcome="error", error=exc.message)
            body_out = (
                anthropic_error(exc.status, exc.message, exc.kind)
                if anthropic
                else openai_error(exc.status, exc.message, exc.kind, exc.code, exc.param)
            )
            await _send_json(send, exc.status, body_out)
            return
        except ControlError as exc:
            entry.update(status=400, outcome="error", error=str(exc))
            await _send_error(send, anthropic, 400, str(exc))
            return
        entry.update(reply.summary)
        await self._respond(scope, receive, send, entry, controls, reply, anthropic)

    # ------------------------------------------------------------------ parsing

    @staticmethod
    async def _read_body(receive) -> bytes | None:
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= MAX_BODY:
                chunks.append(chunk)
            if not message.get("more_body"):
                break
        if size > MAX_BODY:
            return None
        return b"".join(chunks)

    def _parse(self, endpoint: str, headers: dict, body: bytes) -> tuple[dict, list[str], dict | None]:
        ctype = headers.get("content-type", "")
        if endpoint == "image_edits" or ctype.startswith("multipart/form-data"):
            if not ctype.startswith("multipart/form-data"):
                raise RequestError(400, "Expected a multipart/form-data body.")
            try:
                fields, files = media.parse_multipart(body, ctype)
            except ValueError as exc:
                raise RequestError(400, f"Invalid multipart body: {exc}") from exc
            parsed: dict[str, Any] = {**fields, "_files": files}
            summary = {
                **fields,
                "files": [
                    {"field": f[0], "filename": f[1], "content_type": f[2], "bytes": len(f[3])} for f in files
                ],
            }
            return parsed, [fields.get("prompt", "")], summary
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError as exc:
            raise RequestError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                "your HTTP library correctly.)",
            ) from exc
        if not isinstance(parsed, dict):
            raise RequestError(400, "The request body must be a JSON object.")
        if endpoint == "chat":
            texts = formats.openai_directive_texts(parsed)
        elif endpoint in ("messages", "count_tokens"):
            texts = formats.anthropic_directive_texts(parsed)
        elif endpoint == "embeddings":
            texts = list(iter_strings(parsed.get("input")))
        else:
            texts = [str(parsed.get("prompt") or "")]
        return parsed, texts, None

    def _controls(self, key: str, headers: dict, texts: list[str]) -> Controls:
        controls = Controls()
        apply_key(key, controls)
        override = self.key_controls.get(key)
        if override:
            parse_pairs(override, controls, "/_sim/keys override")
        header = headers.get("x-sim")
        if header:
            parse_pairs(header, controls, "x-sim header")
        for text in texts:
            apply_directives(text, controls)
        return controls

    def _build(self, endpoint: str, parsed: dict, controls: Controls, headers: dict, scope: dict) -> Reply:
        if endpoint == "chat":
            return formats.openai_chat(parsed, controls, self.cache)
        if endpoint == "messages":
            return formats.anthropic_messages(parsed, controls, self.cache)
        if endpoint == "count_tokens":
            return formats.anthropic_count_tokens(parsed)
        if endpoint == "embeddings":
            return formats.embeddings(parsed, controls)
        files = parsed.pop("_files", [])
        base = _base_url(scope, headers)
        return formats.images(parsed, files, controls, base, edit=endpoint == "image_edits")

    # ------------------------------------------------------------------ responding

    async def _respond(
        self, scope, receive, send, entry, controls: Controls, reply: Reply, anthropic: bool
    ) -> None:
        started = time.perf_counter()
        fault = controls.fault
        try:
            if fault == "timeout":
                await asyncio.sleep(controls.timeout_s)
            if controls.latency_ms:
                await asyncio.sleep(controls.latency_ms / 1000)
            if fault and fault.isdigit():
                status = int(fault)
                entry.update(status=status, outcome=f"fault:{fault}")
                extra = (
                    [(b"retry-after", str(controls.retry_after).encode())]
                    if status in (429, 503, 529)
                    else []
                )
                await _send_error(
                    send,
                    anthropic,
                    status,
                    formats.FAULT_MESSAGES.get(status, f"Simulated error {status}."),
                    extra,
                )
                return
            if fault == "malformed_json" or (fault == "malformed_sse" and reply.events is None):
                entry.update(status=200, outcome=f"fault:{fault}")
                await _send_raw(
                    send,
                    200,
                    b'{"id": "sim-malformed", "object": "chat.completion", "choices": [{"index": 0,',
                    b"application/json",
                )
                return
            if reply.events is None:
                await self._respond_json(send, entry, controls, reply)
            else:
                await self._respond_stream(receive, send, entry, controls, reply)
        except asyncio.CancelledError:
            entry["outcome"] = "cancelled"
            raise
        finally:
            entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            if entry.get("outcome") == "in_progress":
                entry["outcome"] = "completed"
            entry["usage"] = reply.usage

    async def _respond_json(self, send, entry, controls: Controls, reply: Reply) -> None:
        payload = reply.raw if reply.raw is not None else orjson.dumps(reply.body)
        entry["status"] = reply.status
        if controls.fault == "disconnect_mid_stream":
            entry["outcome"] = "fault:disconnect_mid_stream"
            await send(
                {
                    "type": "http.response.start",
                    "status": reply.status,
                    "headers": [
                        (b"content-type", reply.content_type),
                        (b"content-length", str(len(payload)).encode()),
                        *_common_headers(),
                    ],
                }
            )
            await send(
                {"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True}
            )
            raise SimulatedDisconnect
        await _send_raw(send, reply.status, payload, reply.content_type, reply.headers)

    async def _respond_stream(self, receive, send, entry, controls: Controls, reply: Reply) -> None:
        events = reply.events or []
        fault = controls.fault
        inject_at = None
        if fault in ("disconnect_mid_stream", "error_mid_stream", "malformed_sse"):
            after = (
                controls.fault_after
                if controls.fault_after is not None
                else max(1, reply.content_events // 2)
            )
            inject_at = min(reply.prelude + after, len(events) - 1)
        entry["status"] = 200
        entry["events_total"] = len(events)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    *reply.headers,
                    *_common_headers(),
                ],
            }
        )
        watcher = asyncio.ensure_future(receive())
        delay = controls.chunk_delay_ms / 1000
        sent = 0
        try:
            for i, event in enumerate(events):
                if i == inject_at:
                    if fault == "disconnect_mid_stream":
                        entry["outcome"] = "fault:disconnect_mid_stream"
                        raise SimulatedDisconnect
                    if fault == "error_mid_stream":
                        entry["outcome"] = "fault:error_mid_stream"
                        await send(
                            {"type": "http.response.body", "body": reply.error_event, "more_body": True}
                        )
                        break
                    if fault == "malformed_sse":
                        entry["outcome"] = "fault:malformed_sse"
                        await send(
                            {"type": "http.response.body", "body": reply.malformed_event, "more_body": True}
                        )
                if delay and i:
                    await asyncio.sleep(delay)
                if watcher.done():
                    entry["outcome"] = "client_disconnected"
                    return
                await send({"type": "http.response.body", "body": event, "more_body": True})
                sent += 1
                entry["events_sent"] = sent
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            entry["events_sent"] = sent
            if watcher.done() and entry.get("outcome") == "in_progress":
                entry["outcome"] = "client_disconnected"
            watcher.cancel()

    # ------------------------------------------------------------------ log, models, admin

    def _log(self, scope: dict, endpoint: str, headers: dict, key: str) -> dict:
        self._seq += 1
        entry = {
            "id": self._seq,
            "time": time.time(),
            "method": scope["method"],
            "path": scope["path"],
            "endpoint": endpoint,
            "format": "anthropic" if endpoint in ("messages", "count_tokens") else "openai",
            "model": None,
            "stream": False,
            "key_suffix": key[-4:],
            "headers": {
                k: v
                for k, v in headers.items()
                if k
                in (
                    "anthropic-version",
                    "anthropic-beta",
                    "user-agent",
                    "content-type",
                    "x-sim",
                    "openai-organization",
                )
            },
            "status": None,
            "outcome": "in_progress",
        }
        self.requests.append(entry)
        return entry

    async def _models(self, send, path: str, endpoint: str, anthropic: bool) -> None:
        def item(mid: str, owner: str) -> dict:
            if anthropic:
                return {"type": "model", "id": mid, "display_name": mid, "created_at": "2025-01-01T00:00:00Z"}
            return {"id": mid, "object": "model", "created": 1735689600, "owned_by": owner}

        if endpoint == "model":
            mid = path.rsplit("/models/", 1)[1]
            owner = dict(MODELS).get(mid, "simulator")
            await _send_json(send, 200, item(mid, owner))
            return
        data = [item(mid, owner) for mid, owner in MODELS]
        if anthropic:
            data = [d for d, (_m, owner) in zip(data, MODELS, strict=True) if owner == "anthropic"]
            body = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        else:
            body = {"object": "list", "data": data}
        await _send_json(send, 200, body)

    async def _admin(self, scope, method: str, path: str, headers: dict, body: bytes | None, send) -> None:
        if path in ("/health", "/_sim/health"):
            await _send_json(send, 200, {"status": "ok", "simulator": True, "requests": self._seq})
            return
        if path == "/_sim/requests" and method == "GET":
            query = parse_qs(scope.get("query_string", b"").decode())
            limit = int(query.get("limit", ["100"])[0])
            with_body = query.get("body", ["0"])[0] in ("1", "true")
            items = list(self.requests)[-limit:] if limit > 0 else []
            if not with_body:
                items = [{k: v for k, v in e.items() if k != "body"} for e in items]
            await _send_json(send, 200, {"requests": items, "total": self._seq})
            return
        if path == "/_sim/reset" and method == "POST":
            self.reset()
            await _send_json(send, 200, {"reset": True})
            return
        if path == "/_sim/keys" and method == "POST":
            try:
                data = orjson.loads(body or b"{}")
                key, value = str(data["key"]), str(data.get("controls") or "")
                parse_pairs(value, Controls(), "/_sim/keys")
            except (orjson.JSONDecodeError, KeyError, TypeError, ControlError) as exc:
                await _send_json(send, 400, {"error": f"expected {{'key': ..., 'controls': 'k=v …'}}: {exc}"})
                return
            if value:
                self.key_controls[key] = value
            else:
                self.key_controls.pop(key, None)
            await _send_json(send, 200, {"key_suffix": key[-4:], "controls": value})
            return
        if path == "/_sim/image.png" and method == "GET":
            query = parse_qs(scope.get("query_string", b"").decode())
            try:
                w, h = media.parse_size(query.get("size", ["256x256"])[0])
                color = int(query.get("color", ["0"])[0])
            except ValueError:
                await _send_json(send, 400, {"error": "bad size or color"})
                return
            await _send_raw(send, 200, media.png_bytes(w, h, color), b"image/png")
            return
        await _send_json(send, 404, {"error": f"unknown simulator admin URL {method} {path}"})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


# ---------------------------------------------------------------------- helpers


def _api_key(headers: dict, anthropic: bool) -> str:
    auth = headers.get("authorization", "")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if anthropic:
        return headers.get("x-api-key", "").strip() or bearer
    return bearer


def _base_url(scope: dict, headers: dict) -> str:
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


def _common_headers() -> list[tuple[bytes, bytes]]:
    return [(b"x-simulator", b"modelgate"), (b"x-request-id", b"req_sim")]


async def _send_raw(send, status: int, payload: bytes, content_type: bytes, headers=()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(payload)).encode()),
                *headers,
                *_common_headers(),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def _send_json(send, status: int, obj: Any, headers=()) -> None:
    await _send_raw(send, status, orjson.dumps(obj), b"application/json", headers)


async def _send_error(send, anthropic: bool, status: int, message: str, headers=()) -> None:
    body = anthropic_error(status, message) if anthropic else openai_error(status, message)
    await _send_json(send, status, body, headers)


def create_app(log_size: int = LOG_SIZE) -> Simulator:
    return Simulator(log_size=log_size)


app = create_app()
