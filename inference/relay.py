"""The relay: authenticate → plan → guard → limits → hold → upstream → settle.

Async, under ASGI. Database work happens in short hops to ``config.asyncdb``'s threads:
admit (the hold) and finish (the settlement); the first step (key, model, channels) runs on
the event loop from this process's copies and needs a hop only when one of them is stale.
No transaction is open while the upstream is called.

Streams are relayed by a *pump* task that reads the upstream, keeps the usage and the
text produced, and hands events to the response through a queue. The pump — not the
response — settles the request, so a client that disconnects mid-stream does not stop
it: it keeps draining the upstream (for at most RELAY_DRAIN_SECONDS) to learn the true
usage, and charges once. The stream's terminal event (``[DONE]``, ``message_stop``) is held
back until that charge has committed: a client that saw the end of its stream has been
charged for it, even if the process dies a moment later.

Any chat model is reachable through either format: when a channel speaks the other
format than the caller, the request is translated (``inference.translate``), the answer
or stream is translated back, and the charge is settled from the upstream's own usage,
read in the upstream's format before any translation. Same-format calls take the fast
path: the upstream's bytes are relayed as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from dataclasses import dataclass, field
from fractions import Fraction

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, StreamingHttpResponse

from accounts.keys import key_from_headers
from accounts.models import ApiKey
from config.asyncdb import db_call
from config.cachesafe import CACHE_ERRORS
from config.errors import ApplicationError
from config.localcache import NeedsIO, local_only
from models_catalog.guard import guard_check, models_that_can
from models_catalog.info import ChannelInfo, ModelInfo, RequestNeeds, Usage
from models_catalog.selectors import channels_for_model, model_resolve, pricing_plan_multiplier

from . import translate
from . import usage as usage_rules
from .auth import v1_authenticate
from .errors import (
    InvalidRequest,
    ModelNotAllowed,
    NoChannel,
    ServiceUnavailable,
    UpstreamError,
    anthropic_error,
    openai_error,
)
from .fetch import fetch_body_images, fetches_images_for
from .metrics import relay_log_context, relay_observe
from .models import UsageSource, UsageStatus
from .ratelimit import rate_check, rate_record_tokens
from .services import Admission, Outcome, request_admit, request_finish, request_finished
from .upstream import (
    CONNECT_ERRORS,
    OPENAI_TYPES,
    STATUS_ERRORS,
    UpstreamFailure,
    channel_order,
    failure_from,
    open_stream,
)
from .wire import ANTHROPIC, OPENAI, RequestPlan, body_parse, request_body

logger = logging.getLogger("modelgate.relay")

_background: set[asyncio.Task] = set()

# The database cannot be reached (restarting, failing over, the network): the connection-level
# errors. Anything else from the database is a bug and stays one.
DB_UNAVAILABLE = (OperationalError, InterfaceError)


def db_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Modelgate cannot reach its database right now; nothing was charged. Retry in a moment.",
        headers={"Retry-After": "1"},
    )


def _spawn(coro) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def background_drain(timeout: float = 30.0) -> None:
    """Wait for pumps that outlived their requests (tests and graceful shutdown)."""
    if _background:
        await asyncio.wait(list(_background), timeout=timeout)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


@dataclass(frozen=True)
class Endpoint:
    name: str  # chat.completions, messages, embeddings, images.generations
    wire_format: str  # OPENAI | ANTHROPIC
    upstream_path: str
    provider_types: frozenset[str]
    plan: object  # Callable[[dict, list], RequestPlan]
    usage_from_body: object  # Callable[[dict, RequestPlan], Usage | None]
    produced_from_body: object  # Callable[[dict], str]
    read: object = None  # Callable[[request], (body, files)]; default: a JSON body, no files
    cross_path: str | None = None  # upstream path when the channel speaks the other format
    cross_types: frozenset[str] = frozenset()  # provider types reached through translation

    def render_error(self, exc: ApplicationError, request_id: str) -> HttpResponse:
        renderer = anthropic_error if self.wire_format == ANTHROPIC else openai_error
        return renderer(exc, request_id)


@dataclass
class Context:
    endpoint: Endpoint
    request_id: str
    started: float
    key: ApiKey
    model: ModelInfo
    multiplier: Fraction
    plan: RequestPlan
    channels: list[ChannelInfo]
    admission: Admission | None = None
    channel: ChannelInfo | None = None
    ttft_ms: int | None = None
    files: list = field(default_factory=list)  # multipart uploads (images.edits)
    batch: bool = False  # priced at the model's batch price
    on_settled: object = None  # Callable[[UsageRecord, int, bytes], None], run in the settle transaction
    upstream_format: str = ""  # the format of the channel being called (OPENAI | ANTHROPIC)
    translator: object = None  # a stream translator when the formats differ, else None
    http: bool = False  # a live HTTP caller (relay), not a job (relay_call)

    @property
    def translating(self) -> bool:
        return self.upstream_format != self.endpoint.wire_format

    @property
    def org_id(self) -> int:
        return self.key.organization_id

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


# --- before any money moves ------------------------------------------------------------------


def _resolve(key: ApiKey, plan: RequestPlan, endpoint: Endpoint):
    """Model, allowlist, guard, plan multiplier and channels — cache reads, before any money moves."""
    model = model_resolve(plan.model_id)
    if key.allowed_models and model.id not in key.allowed_models and plan.model_id not in key.allowed_models:
        raise ModelNotAllowed(
            f"This API key may not use {model.id}.", extra={"param": "model", "allowed": key.allowed_models}
        )
    guard_check(model=model, needs=plan.needs)
    if endpoint.name == "images.generations" and plan.needs.input_modalities != frozenset({"text"}):
        readers = models_that_can(RequestNeeds(input_modalities=frozenset({"text", "image"}), output="text"))
        raise InvalidRequest(
            "/v1/images/generations creates images from text and takes no input image. "
            "To edit an image use /v1/images/edits; to read one, call /v1/chat/completions with a vision "
            f"model: {', '.join(readers)}.",
            code="model_capability_mismatch",
            extra={"param": "image", "models_that_can": readers},
        )
    multiplier = pricing_plan_multiplier(key.organization.pricing_plan)
    channels = _channels(model, endpoint)
    if not channels:
        raise NoChannel(f"No upstream is configured for {model.id} in the {endpoint.wire_format} format.")
    return model, multiplier, channels


def _channels(model: ModelInfo, endpoint: Endpoint) -> list[ChannelInfo]:
    """Channels to try: rested ones first, by priority; within a priority, channels that
    speak the caller's format (no translation) before the others, weighted random."""
    available = channels_for_model(model.id)
    if not endpoint.cross_types:
        return channel_order(available, endpoint.provider_types)
    ordered = channel_order(available, endpoint.provider_types | endpoint.cross_types)
    return sorted(
        ordered, key=lambda c: (c.in_cooldown(), -c.priority, c.provider_type not in endpoint.provider_types)
    )


def upstream_format_of(channel: ChannelInfo) -> str:
    return OPENAI if channel.provider_type in OPENAI_TYPES else ANTHROPIC


async def _with_fetched_images(endpoint: Endpoint, model: ModelInfo, body: dict, plan: RequestPlan, files):
    """For vendors that need image bytes, fetch http(s) image URLs (behind the SSRF guard)
    and inline them; the plan is re-read so the hold uses the real pixel sizes."""
    if all(info is not None for info, _ in plan.images):
        return body, plan  # no image URLs (or no images at all)
    if not fetches_images_for(model) or endpoint.name not in ("chat.completions", "messages"):
        return body, plan
    body = await fetch_body_images(body, endpoint.wire_format)
    return body, endpoint.plan(body, files)


def _prepare(secret: str | None, plan: RequestPlan, endpoint: Endpoint):
    """Authenticate and resolve: cache reads, none at all when this process's copies are fresh
    (``config.localcache``)."""
    key = v1_authenticate(secret)
    return (key, *_resolve(key, plan, endpoint))


def _read_json(request) -> tuple[dict, list]:
    return body_parse(request_body(request)), []


async def relay(request, endpoint: Endpoint):
    request_id = new_request_id()
    started = time.monotonic()
    try:
        body, files = (endpoint.read or _read_json)(request)
        plan = endpoint.plan(body, files)
        secret = key_from_headers(request.headers)
        try:
            with local_only():  # from this process's copies, on the event loop
                key, model, multiplier, channels = _prepare(secret, plan, endpoint)
        except NeedsIO:
            key, model, multiplier, channels = await db_call(_prepare, secret, plan, endpoint)
        estimated_tokens = plan.text_tokens + (plan.max_output_tokens or 0)
        await rate_check(
            key_id=key.pk, rpm_limit=key.rpm_limit, tpm_limit=key.tpm_limit, estimated_tokens=estimated_tokens
        )
        body, plan = await _with_fetched_images(endpoint, model, body, plan, files)
        ctx = Context(
            endpoint=endpoint,
            request_id=request_id,
            started=started,
            key=key,
            model=model,
            multiplier=multiplier,
            plan=plan,
            channels=channels,
            files=files,
            http=True,
        )
        relay_log_context(ctx)
        await _admit(ctx)
    except ApplicationError as exc:
        return endpoint.render_error(exc, request_id)
    except DB_UNAVAILABLE as exc:
        # Before the upstream call: no hold was placed (or, if its commit went through unseen,
        # the expiry task gives it back). A 503 in the caller's format, not an HTML 500.
        logger.warning(
            "database unavailable, request refused before the upstream call: %s", type(exc).__name__
        )
        return endpoint.render_error(db_unavailable(), request_id)
    return await _call_upstream(ctx, body)


async def _admit(ctx: Context) -> None:
    """Place the hold (and the key's spend reservation) for the request: the last step before
    the upstream call, and the first that moves money."""
    ctx.admission = await db_call(
        request_admit,
        org_id=ctx.org_id,
        key=ctx.key,
        plan=ctx.plan,
        model=ctx.model,
        multiplier=ctx.multiplier,
        request_id=ctx.request_id,
        batch=ctx.batch,
    )


# --- the upstream call, with failover before the first byte ------------------------------------------


def _upstream_body(ctx: Context, body: dict, channel: ChannelInfo) -> dict:
    if ctx.translating:
        return _translated_body(ctx, body, channel)
    out = dict(body)
    out["model"] = channel.upstream_model(ctx.model.id)
    if ctx.admission.output_cap:
        out.pop("max_completion_tokens", None)
        out["max_tokens"] = ctx.admission.output_cap
    if ctx.plan.stream and ctx.endpoint.wire_format == OPENAI:
        out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return out


def _translated_body(ctx: Context, body: dict, channel: ChannelInfo) -> dict:
    """The caller's request in the channel's format (see inference.translate)."""
    model = channel.upstream_model(ctx.model.id)
    if ctx.upstream_format == ANTHROPIC:
        # Anthropic requires max_tokens: what was held for (the caller's, else the model's
        # maximum output), lowered to what the balance covers.
        max_tokens = (
            ctx.admission.output_cap
            or ctx.plan.max_output_tokens
            or ctx.model.max_output_tokens
            or settings.RELAY_DEFAULT_MAX_OUTPUT_TOKENS
        )
        return translate.openai_to_anthropic_request(body, model=model, max_tokens=max_tokens)
    out = translate.anthropic_to_openai_request(
        body, model=model, keep_cache_control=ctx.model.vendor in settings.RELAY_CACHE_CONTROL_VENDORS
    )
    if ctx.admission.output_cap:
        out["max_tokens"] = ctx.admission.output_cap
    return out


async def _call_upstream(ctx: Context, body: dict):
    endpoint = ctx.endpoint
    deadline = time.monotonic() + settings.RELAY_FAILOVER_BUDGET_SECONDS
    failure: UpstreamFailure | None = None
    for attempt, channel in enumerate(ctx.channels[: settings.RELAY_MAX_ATTEMPTS]):
        if attempt and time.monotonic() > deadline:
            break
        ctx.channel = channel
        ctx.upstream_format = upstream_format_of(channel)
        path = endpoint.cross_path if ctx.translating else endpoint.upstream_path
        try:
            upstream_body = _upstream_body(ctx, body, channel)
        except ApplicationError as exc:
            # The request can't be expressed in this channel's format: nothing was sent.
            await _finish_or_leave_hold(
                ctx, Outcome(status=UsageStatus.UPSTREAM_ERROR, http_status=exc.status, error_code=exc.code)
            )
            return endpoint.render_error(exc, ctx.request_id)
        try:
            response = await open_stream(channel, path, upstream_body, files=ctx.files)
        except (*STATUS_ERRORS, *CONNECT_ERRORS) as exc:
            failure = failure_from(exc, channel)
            await _channel_failed(channel, failure)
            if not failure.retriable:
                break
            continue
        await _channel_ok(channel)
        if ctx.plan.stream:
            return _stream_response(ctx, response)
        return await _json_response(ctx, response)
    return await _all_failed(ctx, failure)


# Consecutive retriable failures per channel seen by this process (the catalogue snapshot's
# counts are only refreshed when a channel's state changes). Reset by a success.
_channel_failures: dict[int, int] = {}


async def _channel_failed(channel: ChannelInfo, failure: UpstreamFailure) -> None:
    """Count a retriable failure; at RELAY_CHANNEL_FAILURE_THRESHOLD in a row the channel
    cools down for RELAY_CHANNEL_COOLDOWN_SECONDS (tried only after rested channels; once
    the cooldown is over it is tried again in its place — the probe)."""
    from models_catalog.services import channel_record_failure

    if not failure.retriable:
        return
    failures = max(_channel_failures.get(channel.id, 0), channel.consecutive_failures) + 1
    _channel_failures[channel.id] = failures
    threshold = max(settings.RELAY_CHANNEL_FAILURE_THRESHOLD, 1)
    cooldown = settings.RELAY_CHANNEL_COOLDOWN_SECONDS if failures >= threshold else 0
    logger.warning("upstream channel %s failed: %s %s", channel.name, failure.status, failure.message)
    try:
        await db_call(
            channel_record_failure,
            channel_id=channel.id,
            error=f"{failure.status}: {failure.message}",
            cooldown_seconds=cooldown,
        )
    except (*DB_UNAVAILABLE, *CACHE_ERRORS) as exc:  # bookkeeping: never fails the request
        logger.warning("channel health of %s not recorded: %s", channel.name, type(exc).__name__)


async def _channel_ok(channel: ChannelInfo) -> None:
    if channel.consecutive_failures or channel.cooldown_until or _channel_failures.pop(channel.id, 0):
        from models_catalog.services import channel_record_success

        _channel_failures.pop(channel.id, None)
        try:
            await db_call(channel_record_success, channel_id=channel.id)
        except (*DB_UNAVAILABLE, *CACHE_ERRORS) as exc:
            logger.warning("channel health of %s not recorded: %s", channel.name, type(exc).__name__)


async def _finish(ctx: Context, outcome: Outcome) -> None:
    """Settle (or release) the hold and write the usage record.

    The database unreachable (a restart, a failover): the settlement is retried for up to
    RELAY_SETTLE_RETRY_SECONDS, then the last error is raised — the hold stays open and the
    expiry task gives it back. A retry first checks whether an earlier attempt committed after
    all (its answer lost with the connection), so a request is never settled twice."""
    outcome.latency_ms = outcome.latency_ms or ctx.elapsed_ms()
    outcome.ttft_ms = ctx.ttft_ms
    deadline = time.monotonic() + settings.RELAY_SETTLE_RETRY_SECONDS
    delay, attempt = 0.05, 0
    while True:
        try:
            if not attempt or not await db_call(request_finished, request_id=ctx.request_id):
                await _settle(ctx, outcome)
            break
        except DB_UNAVAILABLE as exc:
            if time.monotonic() + delay > deadline:
                raise
            if not attempt:
                logger.warning("settlement waits for the database: %s", type(exc).__name__)
            await asyncio.sleep(delay)
            delay, attempt = min(delay * 2, 1.0), attempt + 1
    relay_observe(ctx, outcome)
    if outcome.usage is not None and ctx.key.tpm_limit:
        u = outcome.usage
        tokens = u.input_tokens + u.output_tokens + u.cached_input_tokens + u.cache_write_tokens
        await rate_record_tokens(key_id=ctx.key.pk, tpm_limit=ctx.key.tpm_limit, tokens=tokens)


async def _finish_or_leave_hold(ctx: Context, outcome: Outcome) -> bool:
    """``_finish``; for a live caller, a database that stays unreachable is logged and
    ``False`` returned (nothing charged, the hold left to the expiry task). Jobs get the error:
    their tasks retry."""
    try:
        await _finish(ctx, outcome)
    except DB_UNAVAILABLE:
        if not ctx.http:
            raise
        logger.error(
            "request not settled: database unavailable for %s s; hold %s left to the expiry task",
            settings.RELAY_SETTLE_RETRY_SECONDS,
            ctx.admission.hold_id,
        )
        return False
    return True


async def _settle(ctx: Context, outcome: Outcome) -> None:
    await db_call(
        request_finish,
        batch=ctx.batch,
        on_settled=ctx.on_settled,
        response_status=outcome.http_status,
        response_body=outcome.body,
        admission=ctx.admission,
        org_id=ctx.org_id,
        key_id=ctx.key.pk,
        model=ctx.model,
        multiplier=ctx.multiplier,
        channel=ctx.channel,
        endpoint=ctx.endpoint.name,
        wire_format=ctx.endpoint.wire_format,
        stream=ctx.plan.stream,
        outcome=outcome,
    )


async def _all_failed(ctx: Context, failure: UpstreamFailure | None) -> HttpResponse:
    """No channel answered: release the hold, record the failure, tell the caller."""
    if failure is not None and not failure.retriable and failure.status and failure.status < 500:
        status, message, code = failure.status, failure.message, "upstream_rejected"
    else:
        status, code = 503, "upstream_unavailable"
        message = f"All upstream channels for {ctx.model.id} failed; nothing was charged. Try again shortly."
    await _finish_or_leave_hold(
        ctx, Outcome(status=UsageStatus.UPSTREAM_ERROR, http_status=status, error_code=code)
    )
    headers = {"Retry-After": failure.retry_after} if failure and failure.retry_after else {}
    return ctx.endpoint.render_error(
        UpstreamError(message, status=status, code=code, headers=headers), ctx.request_id
    )


def _estimated(ctx: Context, produced: str) -> Usage:
    image_tokens = ctx.plan.image_tokens(ctx.model) if ctx.model.reads_images else 0
    return usage_rules.estimated_usage(
        input_tokens=ctx.plan.text_tokens, image_tokens=image_tokens, produced_text=produced
    )


def _settle_usage(ctx: Context, reported: Usage | None, produced: str) -> tuple[Usage, str]:
    """The usage to charge, and where it came from (see inference.usage for the policy)."""
    if reported is not None and not usage_rules.is_empty(reported):
        return reported, UsageSource.UPSTREAM
    return _estimated(ctx, produced), UsageSource.ESTIMATED


async def _json_response(ctx: Context, response) -> HttpResponse:
    try:
        raw = await response.aread()
    except CONNECT_ERRORS:
        return await _all_failed(ctx, UpstreamFailure(502, "The upstream connection broke.", True))
    finally:
        await response.aclose()
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except (orjson.JSONDecodeError, ValueError):
        # Nothing usable reached the caller: nothing is charged.
        return await _all_failed(ctx, UpstreamFailure(502, "The upstream returned malformed JSON.", False))
    ctx.ttft_ms = ctx.elapsed_ms()
    if ctx.translating:
        # Usage in the upstream's own format, then the answer in the caller's.
        if ctx.upstream_format == ANTHROPIC:
            reported = usage_rules.anthropic_usage(data.get("usage"), None)
            produced = usage_rules.anthropic_produced(data)
            raw = orjson.dumps(translate.anthropic_to_openai_response(data))
        else:
            reported = usage_rules.openai_chat_usage(data.get("usage"))
            produced = usage_rules.openai_chat_produced(data)
            raw = orjson.dumps(translate.openai_to_anthropic_response(data))
    else:
        reported = ctx.endpoint.usage_from_body(data, ctx.plan)
        produced = ctx.endpoint.produced_from_body(data)
    usage, source = _settle_usage(ctx, reported, produced)
    if not await _finish_or_leave_hold(
        ctx, Outcome(status=UsageStatus.OK, usage=usage, usage_source=source, body=raw)
    ):
        # Not recorded, so not charged: the caller doesn't get the answer either.
        return ctx.endpoint.render_error(db_unavailable(), ctx.request_id)
    out = HttpResponse(raw, content_type="application/json")
    out["x-request-id"] = ctx.request_id
    return out


# --- streams -------------------------------------------------------------------------------------------


@dataclass
class StreamState:
    queue: asyncio.Queue
    produced: list[str] = field(default_factory=list)
    usage_start: dict | None = None  # Anthropic message_start usage
    usage_delta: dict | None = None  # Anthropic message_delta usage
    openai_usage: dict | None = None
    client_gone: bool = False
    error: str | None = None
    done: bool = False
    # The items of the upstream's terminal event and anything after it: sent once the charge
    # has committed (None until the terminal event arrives).
    held: list | None = None


_END = object()
UPSTREAM_STREAM_ERROR = "error_mid_stream"  # the upstream sent an error event (forwarded as is)


_DONE = {"type": "[DONE]"}
_HIDE = object()  # the usage chunk the gateway asked for, not the client


def _openai_event(state: StreamState, ctx: Context, data: str):
    """Account for one OpenAI chunk; returns it parsed (``_HIDE``: don't forward it)."""
    if data == "[DONE]":
        state.done = True
        return _DONE
    chunk = orjson.loads(data)
    if not isinstance(chunk, dict):
        raise ValueError("chunk is not an object")
    if chunk.get("error"):
        state.error = UPSTREAM_STREAM_ERROR
        return chunk
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content"):
            state.produced.append(delta["content"])
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            state.produced.append((fn.get("name") or "") + (fn.get("arguments") or ""))
    if chunk.get("usage"):
        state.openai_usage = chunk["usage"]
        if not chunk.get("choices") and not ctx.plan.include_usage and not ctx.translating:
            return _HIDE
    return chunk


def _anthropic_event(state: StreamState, data: str):
    event = orjson.loads(data)
    if not isinstance(event, dict):
        raise ValueError("event is not an object")
    kind = event.get("type")
    if kind == "message_start":
        state.usage_start = (event.get("message") or {}).get("usage")
    elif kind == "content_block_delta":
        delta = event.get("delta") or {}
        state.produced.append(delta.get("text") or delta.get("partial_json") or delta.get("thinking") or "")
    elif kind == "message_delta":
        state.usage_delta = event.get("usage")
    elif kind == "message_stop":
        state.done = True
    elif kind == "error":
        state.error = UPSTREAM_STREAM_ERROR
    return event


async def _offer(state: StreamState, item) -> None:
    """Hand an item to the response, unless the client has gone (then drop it); from the
    terminal event on, keep it for after the settlement."""
    if state.held is not None:
        state.held.append(item)
    elif not state.client_gone:
        await state.queue.put(item)


async def _next_line(lines, state: StreamState, drain_deadline: list[float]) -> str:
    if not state.client_gone:
        return await anext(lines)
    if not drain_deadline:
        drain_deadline.append(time.monotonic() + settings.RELAY_DRAIN_SECONDS)
    return await asyncio.wait_for(anext(lines), timeout=max(drain_deadline[0] - time.monotonic(), 0.001))


async def _pump(ctx: Context, response, state: StreamState) -> None:
    """Read the upstream stream to its end (or a broken end), then settle exactly once."""
    is_openai = ctx.upstream_format == OPENAI
    translator = ctx.translator
    drain_deadline: list[float] = []
    pending: list[str] = []
    lines = response.aiter_lines()
    try:
        while True:
            try:
                line = await _next_line(lines, state, drain_deadline)
            except StopAsyncIteration:
                break
            if line:
                pending.append(line)
                continue
            if not pending:
                continue
            event_lines, pending = pending, []
            data = "\n".join(ln[5:].lstrip() for ln in event_lines if ln.startswith("data:"))
            parsed = None
            if data:
                parsed = _openai_event(state, ctx, data) if is_openai else _anthropic_event(state, data)
                if state.done and state.held is None:
                    state.held = []
            if translator is None:
                if parsed is not _HIDE:
                    if ctx.ttft_ms is None:
                        ctx.ttft_ms = ctx.elapsed_ms()
                    if is_openai and not ctx.plan.include_usage and parsed and parsed.get("usage"):
                        # Usage on a content chunk (Gemini) that the caller didn't ask for.
                        item = b"data: " + orjson.dumps({k: v for k, v in parsed.items() if k != "usage"})
                        await _offer(state, item + b"\n\n")
                    else:
                        await _offer(state, ("\n".join(event_lines) + "\n\n").encode())
            elif parsed is not None and not state.error:
                out = translator.done() if parsed is _DONE else translator.feed(parsed)
                if out and ctx.ttft_ms is None:
                    ctx.ttft_ms = ctx.elapsed_ms()
                for item in out:
                    await _offer(state, item)
            if state.error:
                break
    except TimeoutError:
        state.error = "drain_timeout"
    except CONNECT_ERRORS:
        state.error = "upstream_broke"
    except (orjson.JSONDecodeError, ValueError, AttributeError, TypeError):
        state.error = "malformed_sse"
    finally:
        await response.aclose()
    if state.held is None:
        state.held = []  # however it ended, the client sees the end after the settlement
    if state.error and (state.error != UPSTREAM_STREAM_ERROR or translator is not None):
        # (An upstream error event is forwarded as is, unless it is in the other format.)
        await _offer(state, _stream_error_event(ctx, _stream_broke(state.error)))
    if is_openai:
        reported = usage_rules.openai_chat_usage(state.openai_usage)
    else:
        reported = usage_rules.anthropic_usage(state.usage_start, state.usage_delta)
    produced = "".join(state.produced)
    usage, source = _settle_usage(ctx, reported, produced)
    if not is_openai and state.usage_delta is None and usage is not None and source == UsageSource.UPSTREAM:
        # Broken off before message_delta: message_start's output count is a placeholder.
        produced_tokens = usage_rules.estimated_usage(
            input_tokens=0, image_tokens=0, produced_text=produced
        ).output_tokens
        if produced_tokens > usage.output_tokens:
            usage, source = dataclasses.replace(usage, output_tokens=produced_tokens), UsageSource.ESTIMATED
    if (state.error or not state.done) and not produced and reported is None:
        usage, source = None, UsageSource.NONE  # broke before producing anything: no charge
    status = UsageStatus.OK
    if state.client_gone:
        status = UsageStatus.CLIENT_DISCONNECTED
    elif state.error or not state.done:
        status = UsageStatus.UPSTREAM_ERROR
    settled = await _finish_or_leave_hold(
        ctx, Outcome(status=status, usage=usage, usage_source=source, error_code=state.error or "")
    )
    held, state.held = state.held, None
    if settled:
        for item in held:
            await _offer(state, item)
    else:
        # Not recorded, so not charged (logged): the stream ends in an error, not in its end.
        await _offer(state, _stream_error_event(ctx, db_unavailable()))
    await _offer(state, _END)


def _stream_error_event(ctx: Context, exc: ApplicationError) -> bytes:
    """An error as the stream's last event, with the body the caller's format uses for errors."""
    body = ctx.endpoint.render_error(exc, ctx.request_id).content
    if ctx.endpoint.wire_format == OPENAI:
        return b"data: " + body + b"\n\n"
    return b"event: error\ndata: " + body + b"\n\n"


def _stream_broke(code: str) -> UpstreamError:
    message = "The upstream stream broke off; you are charged only for what was produced."
    return UpstreamError(message, code=code)


def _stream_response(ctx: Context, response) -> StreamingHttpResponse:
    state = StreamState(queue=asyncio.Queue(maxsize=settings.RELAY_STREAM_QUEUE))
    if ctx.translating:
        if ctx.upstream_format == ANTHROPIC:
            ctx.translator = translate.AnthropicToOpenAIStream(include_usage=ctx.plan.include_usage)
        else:
            ctx.translator = translate.OpenAIToAnthropicStream()
    _spawn(_pump(ctx, response, state))

    async def events():
        finished = False
        try:
            while True:
                item = await state.queue.get()
                if item is _END:
                    finished = True
                    return
                yield item
        finally:
            if not finished:
                state.client_gone = True
                # Unblock a pump waiting for queue space; it keeps draining the upstream.
                while not state.queue.empty():
                    state.queue.get_nowait()

    out = StreamingHttpResponse(events(), content_type="text/event-stream")
    out["Cache-Control"] = "no-cache"
    out["X-Accel-Buffering"] = "no"
    out["x-request-id"] = ctx.request_id
    return out


# --- without HTTP: batch lines and compare jobs ------------------------------------------------------


async def relay_call(
    *,
    key: ApiKey,
    endpoint: Endpoint,
    body: dict,
    request_id: str | None = None,
    batch: bool = False,
    on_settled=None,
) -> tuple[int, dict]:
    """Run one non-streaming request through the same relay as live traffic.

    Same plan, guard, hold, upstream call, failover and settlement; rate limits are not
    applied (jobs are bounded by their own concurrency). ``request_id`` doubles as the
    ledger idempotency key, so a retried job line is never charged twice. ``on_settled``
    runs inside the settlement transaction (e.g. to store a batch line's result with its
    charge). Returns the HTTP status and the JSON body the caller would have received.
    """
    request_id = request_id or new_request_id()
    started = time.monotonic()
    try:
        if body.get("stream"):
            raise InvalidRequest(
                "Streaming is not available here; remove `stream`.", extra={"param": "stream"}
            )
        plan = endpoint.plan(body, [])
        model, multiplier, channels = await db_call(_resolve, key, plan, endpoint)
        body, plan = await _with_fetched_images(endpoint, model, body, plan, [])
        ctx = Context(
            endpoint=endpoint,
            request_id=request_id,
            started=started,
            key=key,
            model=model,
            multiplier=multiplier,
            plan=plan,
            channels=channels,
            batch=batch,
            on_settled=on_settled,
        )
        await _admit(ctx)
    except ApplicationError as exc:
        response = endpoint.render_error(exc, request_id)
        return response.status_code, orjson.loads(response.content)
    response = await _call_upstream(ctx, body)
    return response.status_code, orjson.loads(response.content)
