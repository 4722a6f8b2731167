"""Provider adapters: one shared official-SDK client per channel, raw streaming access.

The relay uses the official ``openai`` and ``anthropic`` async SDKs for auth, base URLs,
timeouts and error classes, and reads the upstream's bytes as they arrive (the
``X-Stainless-Raw-Response: stream`` mode behind the SDKs' ``with_streaming_response``),
so responses are relayed without re-serialising them.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import anthropic
import httpx2  # the HTTP client both official SDKs are built on
import openai
from django.conf import settings

from models_catalog.info import ChannelInfo

RAW_STREAM = {"X-Stainless-Raw-Response": "stream"}

# "local" models run in this process (inference.local) and answer in the OpenAI format.
OPENAI_TYPES = frozenset({"openai", "local"})
ANTHROPIC_TYPES = frozenset({"anthropic"})

_clients: dict[tuple, object] = {}

# Errors on which the next channel is tried (nothing has reached the client yet).
CONNECT_ERRORS = (openai.APIConnectionError, anthropic.APIConnectionError, httpx2.TransportError)
STATUS_ERRORS = (openai.APIStatusError, anthropic.APIStatusError)


def _timeout() -> openai.Timeout:
    return openai.Timeout(
        settings.RELAY_UPSTREAM_READ_TIMEOUT,
        connect=settings.RELAY_UPSTREAM_CONNECT_TIMEOUT,
        pool=settings.RELAY_UPSTREAM_CONNECT_TIMEOUT,
    )


def _limits() -> httpx2.Limits:
    # The SDKs default to 1,000 connections per client: a worker holding more streams than that
    # to one channel would wait for a free connection and time out (measured: `make bench`).
    return httpx2.Limits(
        max_connections=settings.RELAY_UPSTREAM_MAX_CONNECTIONS,
        max_keepalive_connections=settings.RELAY_UPSTREAM_KEEPALIVE_CONNECTIONS,
    )


def client_for(channel: ChannelInfo):
    """The shared SDK client of a channel (per event loop; connection reuse, keep-alive)."""
    loop = asyncio.get_running_loop()
    secret_tag = hashlib.sha256(channel._ciphertext.encode()).hexdigest()[:16]
    cache_key = (id(loop), channel.id, channel.provider_type, channel.base_url, secret_tag)
    client = _clients.get(cache_key)
    if client is None:
        if channel.provider_type in ANTHROPIC_TYPES:
            client = anthropic.AsyncAnthropic(
                api_key=channel.api_key(),
                base_url=channel.base_url,
                max_retries=0,
                timeout=_timeout(),
                http_client=anthropic.DefaultAsyncHttpxClient(limits=_limits(), timeout=_timeout()),
            )
        else:
            client = openai.AsyncOpenAI(
                api_key=channel.api_key(),
                base_url=channel.base_url,
                max_retries=0,
                timeout=_timeout(),
                http_client=openai.DefaultAsyncHttpxClient(limits=_limits(), timeout=_timeout()),
            )
        for stale in [k for k in _clients if k[1] == channel.id and k != cache_key and k[0] == id(loop)]:
            _clients.pop(stale, None)
        _clients[cache_key] = client
    return client


def channel_order(channels: list[ChannelInfo], provider_types: frozenset[str]) -> list[ChannelInfo]:
    """Channels to try: highest priority first, weighted random within a priority; cooling-down last."""
    eligible = [c for c in channels if c.provider_type in provider_types]
    ready = [c for c in eligible if not c.in_cooldown()]
    resting = [c for c in eligible if c.in_cooldown()]
    ordered: list[ChannelInfo] = []
    for group in (ready, resting):
        for priority in sorted({c.priority for c in group}, reverse=True):
            bucket = [c for c in group if c.priority == priority]
            while bucket:
                weights = [max(c.weight, 0) or 1 for c in bucket]
                pick = random.choices(range(len(bucket)), weights=weights)[0]  # noqa: S311 - load spreading
                ordered.append(bucket.pop(pick))
    return ordered


@dataclass
class UpstreamFailure(Exception):
    """Why an upstream attempt failed before anything reached the client."""

    status: int | None
    message: str
    retriable: bool
    retry_after: str | None = None
    body: dict | None = None


_SECRETISH = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{4,}|mg-[A-Za-z0-9_\-]{4,}|xai-[A-Za-z0-9_\-*]{4,}|AIza[0-9A-Za-z_\-]{8,}"
    r"|sim-[A-Za-z0-9_\-]{2,}|Bearer\s+\S+|x-api-key:?\s*\S+|https?://\S+)",
    re.IGNORECASE,
)


def scrub(text: str, channel: ChannelInfo | None = None) -> str:
    """Upstream error text without keys, URLs or hosts (never shown to tenants)."""
    if channel is not None:
        secrets_ = [channel.api_key(), channel.base_url]
        if channel.base_url:
            parts = urlsplit(channel.base_url)
            secrets_ += [parts.netloc, parts.hostname or ""]
        for secret in sorted((s for s in secrets_ if s and len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
    return _SECRETISH.sub("[redacted]", text)[:500]


def failure_from(exc: Exception, channel: ChannelInfo) -> UpstreamFailure:
    if isinstance(exc, STATUS_ERRORS):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else None
        message = exc.message if isinstance(exc.message, str) else str(exc)
        if status in (401, 403):
            # The channel's own credentials failed: not the caller's fault; try another channel.
            return UpstreamFailure(502, "The upstream provider rejected the gateway's credentials.", True)
        retriable = status == 429 or status >= 500 or status == 408
        return UpstreamFailure(
            status,
            scrub(message, channel),
            retriable,
            retry_after=exc.response.headers.get("retry-after"),
            body=body,
        )
    if isinstance(exc, openai.APITimeoutError | anthropic.APITimeoutError | httpx2.TimeoutException):
        return UpstreamFailure(504, "The upstream provider timed out.", True)
    return UpstreamFailure(502, "Could not connect to the upstream provider.", True)


async def open_stream(channel: ChannelInfo, path: str, body: dict, files: list | None = None):
    """POST ``body`` to ``path`` on the channel; returns the unread ``httpx2.Response``.

    With ``files`` ((field, (name, bytes, media type)) tuples) the body goes as multipart
    form data, as the SDKs' own ``images.edit`` sends it. Raises the SDK's errors
    (status, connection, timeout) — the caller classifies them.
    """
    if channel.provider_type == "local":
        from .local.adapter import open_local

        return await open_local(channel, path, body)
    client = client_for(channel)
    headers = dict(RAW_STREAM)
    if files:
        headers["Content-Type"] = "multipart/form-data"
    response = await client.post(
        path, body=body, files=files or None, cast_to=httpx2.Response, options={"headers": headers}
    )
    # anthropic wraps the raw response in its AsyncAPIResponse; openai returns it as is.
    return getattr(response, "http_response", response)
