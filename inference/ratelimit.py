"""Per-API-key request (RPM) and token (TPM) limits for the relay hot path.

Semantics
---------
* **Fixed 60-second windows aligned to the minute** (``floor(now / 60)`` on this
  process's wall clock, ``_now``; tests replace it). Counters start from zero at each
  boundary, so a client can get up to twice a limit through across one boundary.
* ``rate_check`` admits a request when *requests so far in the window < rpm_limit*
  and *tokens recorded in the window + estimated_tokens ≤ tpm_limit*; admitting it
  counts one request. **A refused request consumes nothing** (neither limit), so
  refused retries never extend a lockout. When both limits are exceeded the RPM
  refusal is reported.
* The token estimate is only checked, not reserved: ``rate_record_tokens`` adds the
  actual tokens of a settled request to the window current *at settlement*. Requests
  in flight at the same time can therefore all pass the TPM check before any of them
  is recorded; RPM bounds that burst.
* A refusal raises ``RateLimited`` (429, ``rate_limit_exceeded``) with
  ``Retry-After`` = whole seconds until the current window ends (at least 1). A
  request whose estimate alone exceeds ``tpm_limit`` is refused the same way (as
  OpenAI does) with ``extra["request_too_large"] = True``; it will never pass.
* Both limits ``None`` → returns at once, no I/O and no locking.

Backends
--------
* ``settings.REDIS_URL`` set: Redis via ``redis.asyncio``; check-and-count is one Lua
  script (EVALSHA), so it is atomic across processes. Keys look like
  ``<prefix>{<key_id>}:rpm:<window>`` (hash tag: both counters of a key share a
  cluster slot) and expire 120 s after creation. The prefix is
  ``settings.RELAY_RATELIMIT_KEY_PREFIX`` or ``"<CACHES KEY_PREFIX>:rl:"``
  (``"mg:rl:"`` by default). One client (a bounded connection pool, 0.25 s
  connect/op timeouts, no retry back-off) per event loop and URL.
* No Redis: an in-process limiter with the same semantics. Limits are then **per
  process** (N worker processes admit up to N × the limit).
* Redis failing (connection refused, timeout, any ``RedisError``): the call falls back
  to the in-process limiter, a warning is logged at most once a minute, and Redis is
  not tried again for ``_REDIS_RETRY_SECONDS`` (so a dead Redis costs one timeout per
  window, not one per request). Rate limits degrade; money is kept exact elsewhere.

Windows use the wall clock of each application server; keep them NTP-synchronised.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from config.errors import ApplicationError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
_KEY_TTL_SECONDS = 2 * WINDOW_SECONDS
_REDIS_SOCKET_TIMEOUT = 0.25  # connect and per-operation, seconds
_REDIS_POOL_SIZE = 50
_REDIS_POOL_WAIT = 0.5  # seconds to wait for a free pooled connection
_REDIS_RETRY_SECONDS = 5.0  # after a failure, use the local limiter this long
_WARN_EVERY_SECONDS = 60.0

_now: Callable[[], float] = time.time  # wall clock for windows; tests replace it
_monotonic: Callable[[], float] = time.monotonic  # for back-off and log throttling

_OK, _RPM, _TPM = 0, 1, 2


class RateLimited(ApplicationError):
    """A key's requests-per-minute or tokens-per-minute limit is reached (429)."""

    code = "rate_limit_exceeded"
    status = 429


# --- public API -----------------------------------------------------------------


async def rate_check(
    *, key_id: int, rpm_limit: int | None, tpm_limit: int | None, estimated_tokens: int
) -> None:
    """Count one request against ``key_id``'s limits or raise ``RateLimited``.

    Admits the request when fewer than ``rpm_limit`` requests were admitted in the
    current minute and the tokens recorded in it plus ``estimated_tokens`` do not
    exceed ``tpm_limit``. ``None`` means no limit. Refused requests are not counted.
    """
    if rpm_limit is None and tpm_limit is None:
        return
    now = _now()
    window = _window_of(now)
    estimated = max(0, int(estimated_tokens))
    verdict, observed = await _check(key_id, window, rpm_limit, tpm_limit, estimated)
    if verdict == _RPM:
        raise _rpm_refusal(rpm_limit, _retry_after(now, window))
    if verdict == _TPM:
        raise _tpm_refusal(tpm_limit, observed, estimated, _retry_after(now, window))


async def rate_record_tokens(*, key_id: int, tpm_limit: int | None, tokens: int) -> None:
    """Add a settled request's actual ``tokens`` to ``key_id``'s current TPM window.

    A no-op when the key has no TPM limit or ``tokens`` is not positive.
    """
    if tpm_limit is None or tokens <= 0:
        return
    window = _window_of(_now())
    url = settings.REDIS_URL
    if url and _redis_usable(url):
        try:
            handle = _redis_handle(url)
            await handle.record(keys=[_key(key_id, "tpm", window)], args=[int(tokens), _KEY_TTL_SECONDS])
            return
        except (RedisError, OSError) as exc:
            _redis_failed(url, exc)
    _local.record(key_id, window, int(tokens))


async def rate_close() -> None:
    """Close the Redis clients of the running event loop (ASGI shutdown, tests)."""
    loop = asyncio.get_running_loop()
    with _handles_lock:
        handles = _handles.pop(loop, {})
    for handle in handles.values():
        await handle.client.aclose()


# --- decisions and errors -------------------------------------------------------


def _window_of(now: float) -> int:
    return int(now // WINDOW_SECONDS)


def _retry_after(now: float, window: int) -> int:
    return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))


def _decide(
    requests: int, tokens: int, rpm_limit: int | None, tpm_limit: int | None, estimated: int
) -> tuple[int, int]:
    """The local twin of ``_CHECK_LUA``: (verdict, observed count)."""
    if rpm_limit is not None and requests >= rpm_limit:
        return _RPM, requests
    if tpm_limit is not None and tokens + estimated > tpm_limit:
        return _TPM, tokens
    return _OK, requests


def _rpm_refusal(limit: int, retry_after: int) -> RateLimited:
    return RateLimited(
        f"Rate limit reached: this API key allows {limit} requests per minute. Retry after {retry_after} s.",
        extra={"limit": "rpm", "limit_value": limit, "retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def _tpm_refusal(limit: int, used: int, estimated: int, retry_after: int) -> RateLimited:
    too_large = estimated > limit
    if too_large:
        message = (
            f"Request too large: it needs about {estimated} tokens but this API key allows "
            f"{limit} tokens per minute. Reduce the prompt or max_tokens."
        )
    else:
        message = (
            f"Rate limit reached: this API key allows {limit} tokens per minute; {used} are used "
            f"and this request needs about {estimated}. Retry after {retry_after} s."
        )
    extra = {"limit": "tpm", "limit_value": limit, "used": used, "requested": estimated}
    extra["retry_after"] = retry_after
    if too_large:
        extra["request_too_large"] = True
    return RateLimited(message, extra=extra, headers={"Retry-After": str(retry_after)})


async def _check(
    key_id: int, window: int, rpm_limit: int | None, tpm_limit: int | None, estimated: int
) -> tuple[int, int]:
    url = settings.REDIS_URL
    if url and _redis_usable(url):
        try:
            return await _redis_check(url, key_id, window, rpm_limit, tpm_limit, estimated)
        except (RedisError, OSError) as exc:
            _redis_failed(url, exc)
    return _local.check(key_id, window, rpm_limit, tpm_limit, estimated)


# --- in-process backend ---------------------------------------------------------


@dataclass
class _Counters:
    requests: int = 0
    tokens: int = 0


@dataclass
class _LocalLimiter:
    """Counters per (key, window) in this process; thread- and task-safe."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counters: dict[tuple[int, int], _Counters] = field(default_factory=dict)
    _newest_window: int = -1

    def check(
        self, key_id: int, window: int, rpm_limit: int | None, tpm_limit: int | None, estimated: int
    ) -> tuple[int, int]:
        with self._lock:
            counters = self._get(key_id, window)
            verdict, observed = _decide(counters.requests, counters.tokens, rpm_limit, tpm_limit, estimated)
            if verdict == _OK and rpm_limit is not None:
                counters.requests += 1
            return verdict, observed

    def record(self, key_id: int, window: int, tokens: int) -> None:
        with self._lock:
            self._get(key_id, window).tokens += tokens

    def clear(self) -> None:
        with self._lock:
            self._counters.clear()
            self._newest_window = -1

    def _get(self, key_id: int, window: int) -> _Counters:
        if window > self._newest_window:
            # A new minute: earlier windows can never be read again.
            self._newest_window = window
            self._counters = {k: c for k, c in self._counters.items() if k[1] >= window}
        return self._counters.setdefault((key_id, window), _Counters())


_local = _LocalLimiter()


# --- Redis backend --------------------------------------------------------------

# KEYS: request counter, token counter of the window.
# ARGV: rpm limit (-1: none), tpm limit (-1: none), estimated tokens, key TTL seconds.
_CHECK_LUA = """
local rpm_limit = tonumber(ARGV[1])
local tpm_limit = tonumber(ARGV[2])
local requests = 0
if rpm_limit >= 0 then
  requests = tonumber(redis.call('GET', KEYS[1]) or '0')
  if requests >= rpm_limit then return {1, requests} end
end
if tpm_limit >= 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + tonumber(ARGV[3]) > tpm_limit then return {2, used} end
end
if rpm_limit >= 0 then
  requests = redis.call('INCR', KEYS[1])
  if requests == 1 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
end
return {0, requests}
"""

# KEYS: token counter of the window. ARGV: tokens, key TTL seconds.
_RECORD_LUA = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if total == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return total
"""


@dataclass
class _RedisHandle:
    client: Redis
    check: AsyncScript
    record: AsyncScript


# One client per (event loop, URL): asyncio connections cannot cross loops.
_handles: dict[asyncio.AbstractEventLoop, dict[str, _RedisHandle]] = {}
_handles_lock = threading.Lock()

# Back-off and log throttling after Redis failures, per URL.
_redis_down_until: dict[str, float] = {}
_failure_state = {"last_warning": -math.inf, "suppressed": 0}
_failure_lock = threading.Lock()


def _key_prefix() -> str:
    prefix = getattr(settings, "RELAY_RATELIMIT_KEY_PREFIX", None)
    if prefix:
        return prefix
    cache_prefix = settings.CACHES.get("default", {}).get("KEY_PREFIX") or "mg"
    return f"{cache_prefix}:rl:"


def _key(key_id: int, kind: str, window: int) -> str:
    return f"{_key_prefix()}{{{key_id}}}:{kind}:{window}"


def _redis_handle(url: str) -> _RedisHandle:
    loop = asyncio.get_running_loop()
    with _handles_lock:
        per_loop = _handles.get(loop)
        if per_loop is None:
            for stale in [other for other in _handles if other.is_closed()]:
                del _handles[stale]
            per_loop = _handles[loop] = {}
        handle = per_loop.get(url)
        if handle is None:
            handle = per_loop[url] = _new_handle(url)
        return handle


def _new_handle(url: str) -> _RedisHandle:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=_REDIS_POOL_SIZE,
        timeout=_REDIS_POOL_WAIT,
        socket_connect_timeout=_REDIS_SOCKET_TIMEOUT,
        socket_timeout=_REDIS_SOCKET_TIMEOUT,
        # One immediate retry on a broken (e.g. stale after a Redis restart)
        # connection; never on a timeout, where the script may have run.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        client_name=f"mg-ratelimit-{os.getpid()}",
    )
    client = Redis.from_pool(pool)
    return _RedisHandle(
        client=client,
        check=client.register_script(_CHECK_LUA),
        record=client.register_script(_RECORD_LUA),
    )


async def _redis_check(
    url: str, key_id: int, window: int, rpm_limit: int | None, tpm_limit: int | None, estimated: int
) -> tuple[int, int]:
    handle = _redis_handle(url)
    verdict, observed = await handle.check(
        keys=[_key(key_id, "rpm", window), _key(key_id, "tpm", window)],
        args=[
            -1 if rpm_limit is None else int(rpm_limit),
            -1 if tpm_limit is None else int(tpm_limit),
            estimated,
            _KEY_TTL_SECONDS,
        ],
    )
    return int(verdict), int(observed)


def _redis_usable(url: str) -> bool:
    until = _redis_down_until.get(url)
    return until is None or _monotonic() >= until


def _redis_failed(url: str, exc: BaseException) -> None:
    """Back off from Redis for a while and warn, at most once a minute."""
    now = _monotonic()
    with _failure_lock:
        _redis_down_until[url] = now + _REDIS_RETRY_SECONDS
        if now - _failure_state["last_warning"] < _WARN_EVERY_SECONDS:
            _failure_state["suppressed"] += 1
            return
        suppressed = _failure_state["suppressed"]
        _failure_state["last_warning"] = now
        _failure_state["suppressed"] = 0
    logger.warning(
        "Rate limiter: Redis unavailable (%s: %s); limits are per process for the next %g s "
        "(%d similar failures not logged)",
        type(exc).__name__,
        exc,
        _REDIS_RETRY_SECONDS,
        suppressed,
    )


def _reset() -> None:
    """Forget local counters and Redis failure state (tests)."""
    _local.clear()
    with _failure_lock:
        _redis_down_until.clear()
        _failure_state["last_warning"] = -math.inf
        _failure_state["suppressed"] = 0
