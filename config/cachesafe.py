"""Cache reads and fills that survive a Redis outage (the relay's hot path).

The shared cache only saves work: API keys, the catalogue snapshot and its version are read
from the database when the cache has nothing. So on the hot path a cache that is down, slow
or just flushed reads as a **miss**, and a fill that fails is skipped: requests keep being
served (from the database) instead of failing with a 500. A warning is logged at most once a
minute per process, and after a failure the cache is not asked again for
``CACHE_RETRY_SECONDS`` (one connect timeout per interval, not per request).

Invalidations (``cache.delete`` after a key is revoked, ``catalogue_changed``) keep using the
cache directly and fail loudly: a revocation must never be lost silently.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger("modelgate.cache")

CACHE_ERRORS = (RedisError, OSError)
_WARN_EVERY_SECONDS = 60.0
_state = {"down_until": 0.0, "warned_at": -_WARN_EVERY_SECONDS}


def _usable() -> bool:
    return time.monotonic() >= _state["down_until"]


def _failed(exc: Exception, op: str) -> None:
    now = time.monotonic()
    _state["down_until"] = now + settings.CACHE_RETRY_SECONDS
    if now - _state["warned_at"] >= _WARN_EVERY_SECONDS:
        _state["warned_at"] = now
        logger.warning(
            "shared cache unavailable (%s: %s); serving from the database for now", op, type(exc).__name__
        )


def cache_get(key: str, default=None):
    if not _usable():
        return default
    try:
        return cache.get(key, default)
    except CACHE_ERRORS as exc:
        _failed(exc, "get")
        return default


def cache_set(key: str, value, timeout) -> None:
    if not _usable():
        return
    try:
        cache.set(key, value, timeout)
    except CACHE_ERRORS as exc:
        _failed(exc, "set")


def cache_add(key: str, value, timeout) -> bool | None:
    """``cache.add``; ``None`` when the cache could not be asked (neither added nor present)."""
    if not _usable():
        return None
    try:
        return cache.add(key, value, timeout)
    except CACHE_ERRORS as exc:
        _failed(exc, "add")
        return None


def cache_reset_backoff() -> None:
    """Forget a recorded failure (tests)."""
    _state["down_until"] = 0.0
    _state["warned_at"] = -_WARN_EVERY_SECONDS
