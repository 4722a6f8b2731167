"""Per-key RPM/TPM limits, against the in-process limiter and against real Redis.

The clock is ``inference.ratelimit._now`` (replaced here), so window rollover needs no
sleeping. Redis tests use their own key prefix and delete only those keys.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis

from inference import ratelimit
from inference.ratelimit import RateLimited, rate_check, rate_close, rate_record_tokens

T0 = 1_800_000_000 + 15.25  # 1_800_000_000 is a minute boundary; 44.75 s left in this window
WINDOW_START = 1_800_000_000


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    ratelimit._reset()
    fake = Clock(T0)
    monkeypatch.setattr(ratelimit, "_now", fake)
    yield fake
    ratelimit._reset()


class RedisProbe:
    """Reads the limiter's Redis keys (format documented in inference.ratelimit)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def key(self, key_id: int, kind: str, now: float) -> str:
        return f"{self.prefix}{{{key_id}}}:{kind}:{int(now // 60)}"

    def value(self, key_id: int, kind: str, now: float) -> int | None:
        raw = self.client.get(self.key(key_id, kind, now))
        return None if raw is None else int(raw)

    def cleanup(self) -> None:
        for key in self.client.scan_iter(match=f"{self.prefix}*"):
            self.client.delete(key)
        self.client.close()


def _redis_probe(settings, prefix: str | None = None) -> RedisProbe:
    prefix = prefix or f"mgtest-{uuid.uuid4().hex[:12]}:rl:"
    settings.RELAY_RATELIMIT_KEY_PREFIX = prefix
    return RedisProbe(settings.REDIS_URL, prefix)


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request, settings, caplog):
    """``None`` for the in-process limiter, a ``RedisProbe`` for Redis."""
    if request.param == "local":
        settings.REDIS_URL = ""
        yield None
        return
    probe = _redis_probe(settings)
    caplog.set_level(logging.WARNING, logger="inference.ratelimit")
    yield probe
    probe.cleanup()
    # Had Redis failed, the limiter would have fallen back silently except for this.
    assert not [r for r in caplog.records if r.name == "inference.ratelimit"]


def run(fn: Callable[[], Awaitable]) -> object:
    """Run ``fn()`` in a fresh event loop, closing the limiter's clients of that loop."""

    async def main():
        try:
            return await fn()
        finally:
            await rate_close()

    return asyncio.run(main())


def check(key_id: int = 1, rpm: int | None = None, tpm: int | None = None, est: int = 0):
    """One rate_check in its own event loop: ``None`` if admitted, else the RateLimited."""

    async def one():
        try:
            await rate_check(key_id=key_id, rpm_limit=rpm, tpm_limit=tpm, estimated_tokens=est)
        except RateLimited as exc:
            return exc
        return None

    return run(one)


def record(key_id: int = 1, tpm: int | None = None, tokens: int = 0) -> None:
    run(lambda: rate_record_tokens(key_id=key_id, tpm_limit=tpm, tokens=tokens))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- behaviour, on both backends --------------------------------------------------


def test_rpm_admits_exactly_n_then_429(backend):
    assert [check(rpm=3) for _ in range(3)] == [None, None, None]

    refused = check(rpm=3)

    assert isinstance(refused, RateLimited)
    assert refused.status == 429
    assert refused.code == "rate_limit_exceeded"
    assert refused.headers == {"Retry-After": "45"}  # ceil(44.75)
    assert refused.extra["limit"] == "rpm"
    assert refused.extra["limit_value"] == 3
    assert "3 requests per minute" in refused.message


def test_refused_requests_do_not_consume_slots(backend, clock):
    assert check(rpm=2) is None
    assert check(rpm=2) is None
    for _ in range(5):
        assert isinstance(check(rpm=2), RateLimited)
    if backend:
        assert backend.value(1, "rpm", clock.t) == 2  # refusals were not counted

    # A TPM refusal does not take an RPM slot either.
    assert isinstance(check(key_id=2, rpm=2, tpm=100, est=101), RateLimited)
    assert check(key_id=2, rpm=2, tpm=100, est=10) is None
    assert check(key_id=2, rpm=2, tpm=100, est=10) is None
    assert check(key_id=2, rpm=2, tpm=100, est=10).extra["limit"] == "rpm"


@pytest.mark.parametrize(
    ("offset", "retry_after"),
    [(0.0, "60"), (15.25, "45"), (59.0, "1"), (59.9, "1")],
)
def test_retry_after_is_time_to_window_end(backend, clock, offset, retry_after):
    clock.t = WINDOW_START + offset
    check(rpm=1)

    assert check(rpm=1).headers["Retry-After"] == retry_after


def test_window_rollover_frees_both_limits(backend, clock):
    assert check(rpm=2, tpm=1000, est=10) is None
    record(tpm=1000, tokens=990)
    assert check(rpm=2, tpm=1000, est=10) is None
    assert check(rpm=2, tpm=1000, est=10).extra["limit"] == "rpm"
    assert check(rpm=5, tpm=1000, est=11).extra["limit"] == "tpm"

    clock.t = WINDOW_START + 59.999
    assert isinstance(check(rpm=2, tpm=1000, est=10), RateLimited)
    clock.t = WINDOW_START + 60  # next minute
    assert check(rpm=2, tpm=1000, est=1000) is None
    assert check(rpm=2, tpm=1000, est=1000) is None
    assert isinstance(check(rpm=2, tpm=1000, est=0), RateLimited)


def test_tpm_checks_estimate_against_recorded_tokens(backend):
    record(tpm=1000, tokens=700)

    assert check(tpm=1000, est=300) is None  # 700 + 300 = 1000 ≤ 1000
    assert check(tpm=1000, est=300) is None  # estimates are checked, not reserved
    refused = check(tpm=1000, est=301)

    assert isinstance(refused, RateLimited)
    assert refused.extra["limit"] == "tpm"
    assert refused.extra["limit_value"] == 1000
    assert refused.extra["used"] == 700
    assert refused.extra["requested"] == 301
    assert refused.headers == {"Retry-After": "45"}
    assert "request_too_large" not in refused.extra


def test_recorded_tokens_accumulate(backend, clock):
    for _ in range(4):
        record(tpm=1000, tokens=250)

    assert check(tpm=1000, est=0) is None  # 1000 + 0 ≤ 1000
    assert check(tpm=1000, est=1).extra["used"] == 1000
    if backend:
        assert backend.value(1, "tpm", clock.t) == 1000


def test_request_larger_than_tpm_limit_is_flagged(backend):
    refused = check(tpm=1000, est=1001)

    assert refused.extra["request_too_large"] is True
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "45"


def test_recording_without_tpm_limit_is_a_noop(backend, clock):
    record(tpm=None, tokens=10_000)
    record(tpm=1000, tokens=0)
    record(tpm=1000, tokens=-5)

    assert check(tpm=1000, est=1000) is None
    if backend:
        assert backend.value(1, "tpm", clock.t) is None


def test_keys_are_independent(backend):
    assert check(key_id=1, rpm=1) is None
    assert isinstance(check(key_id=1, rpm=1), RateLimited)
    record(key_id=1, tpm=100, tokens=100)

    assert check(key_id=2, rpm=1, tpm=100, est=100) is None
    assert isinstance(check(key_id=1, tpm=100, est=1), RateLimited)


def test_rpm_only_ignores_tokens_and_tpm_only_counts_no_requests(backend):
    record(tpm=10, tokens=10**6)
    assert check(rpm=1, tpm=None, est=10**9) is None  # no TPM limit on this call

    for _ in range(100):
        assert check(key_id=3, rpm=None, tpm=10, est=10) is None


def test_200_concurrent_checks_admit_exactly_50(backend, clock):
    async def burst():
        return await asyncio.gather(
            *(rate_check(key_id=7, rpm_limit=50, tpm_limit=None, estimated_tokens=0) for _ in range(200)),
            return_exceptions=True,
        )

    results = run(burst)

    assert sum(r is None for r in results) == 50
    assert sum(isinstance(r, RateLimited) for r in results) == 150
    if backend:
        assert backend.value(7, "rpm", clock.t) == 50


def test_local_limiter_is_exact_across_threads(settings):
    settings.REDIS_URL = ""
    admitted = []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        admitted.extend(r for r in (check(key_id=8, rpm=50) for _ in range(50)) if r is None)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(admitted) == 50


def test_no_limits_means_no_io(settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    caplog.set_level(logging.WARNING, logger="inference.ratelimit")

    for _ in range(10):
        assert check(rpm=None, tpm=None, est=10**9) is None
    record(tpm=None, tokens=100)

    assert caplog.records == []  # a Redis attempt would have logged a failure


# --- Redis failing -----------------------------------------------------------------


def test_redis_down_allows_requests_and_warns_once(settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    caplog.set_level(logging.WARNING, logger="inference.ratelimit")
    started = time.perf_counter()

    results = [check(rpm=3, tpm=1000, est=10) for _ in range(3)]
    record(tpm=1000, tokens=500)

    assert results == [None, None, None]
    assert time.perf_counter() - started < 2
    warnings = [r for r in caplog.records if r.name == "inference.ratelimit"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "Redis unavailable" in warnings[0].getMessage()
    # The call fell back to the per-process limiter, which still counts.
    assert check(rpm=3).extra["limit"] == "rpm"
    assert check(key_id=1, tpm=1000, est=501).extra["used"] == 500


def test_unroutable_redis_costs_one_short_timeout(settings, caplog):
    settings.REDIS_URL = "redis://10.255.255.1:6379/0"  # blackholed or unreachable
    caplog.set_level(logging.WARNING, logger="inference.ratelimit")
    started = time.perf_counter()

    for _ in range(20):
        assert check(rpm=100) is None

    assert time.perf_counter() - started < 1.5
    assert len(caplog.records) == 1


def test_redis_is_retried_after_backoff_and_warnings_are_throttled(settings, caplog, monkeypatch):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    caplog.set_level(logging.WARNING, logger="inference.ratelimit")
    mono = Clock(1000.0)
    monkeypatch.setattr(ratelimit, "_monotonic", mono)

    check(rpm=100)  # fails, warns, backs off
    mono.t += 1
    check(rpm=100)  # inside the back-off: Redis not tried
    mono.t += ratelimit._REDIS_RETRY_SECONDS
    check(rpm=100)  # tried again, fails again: suppressed (within a minute of the warning)
    assert len(caplog.records) == 1

    mono.t += 60
    check(rpm=100)  # next failure after a minute is logged, with the suppressed count
    assert len(caplog.records) == 2
    assert "1 similar failures not logged" in caplog.records[1].getMessage()


# --- Redis specifics -----------------------------------------------------------------


@pytest.mark.redis
def test_redis_keys_expire(settings, clock):
    probe = _redis_probe(settings)
    try:
        check(rpm=5, tpm=100, est=1)
        record(tpm=100, tokens=5)

        for kind in ("rpm", "tpm"):
            ttl = probe.client.ttl(probe.key(1, kind, clock.t))
            assert 0 < ttl <= 120
    finally:
        probe.cleanup()


@pytest.mark.redis
def test_redis_key_prefix_follows_cache_key_prefix(settings, clock):
    cache_prefix = f"mgtest-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "KEY_PREFIX": cache_prefix},
    }
    probe = RedisProbe(settings.REDIS_URL, f"{cache_prefix}:rl:")
    try:
        check(key_id=42, rpm=5)

        assert probe.value(42, "rpm", clock.t) == 1
    finally:
        probe.cleanup()


@pytest.mark.redis
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_redis_client_works_across_event_loops(settings, caplog):
    probe = _redis_probe(settings)
    caplog.set_level(logging.WARNING, logger="inference.ratelimit")
    try:

        async def one():
            await rate_check(key_id=5, rpm_limit=2, tpm_limit=None, estimated_tokens=0)

        asyncio.run(one())  # no rate_close: the client of a dead loop is left behind
        asyncio.run(one())
        with pytest.raises(RateLimited):
            asyncio.run(one())

        assert caplog.records == []  # all three went to Redis, none fell back
    finally:
        probe.cleanup()


@pytest.mark.redis
def test_redis_connection_killed_under_the_client_recovers(settings, caplog):
    probe = _redis_probe(settings)
    caplog.set_level(logging.WARNING, logger="inference.ratelimit")
    name = f"mg-ratelimit-{os.getpid()}"

    async def scenario():
        await rate_check(key_id=6, rpm_limit=3, tpm_limit=None, estimated_tokens=0)
        await rate_check(key_id=6, rpm_limit=3, tpm_limit=None, estimated_tokens=0)
        killed = 0
        for client in probe.client.client_list():
            if client.get("name") == name:
                killed += probe.client.client_kill_filter(_id=client["id"])
        assert killed >= 1
        await rate_check(key_id=6, rpm_limit=3, tpm_limit=None, estimated_tokens=0)
        with pytest.raises(RateLimited):  # the count survived: Redis, not the local fallback
            await rate_check(key_id=6, rpm_limit=3, tpm_limit=None, estimated_tokens=0)

    try:
        run(scenario)
        assert caplog.records == []
    finally:
        probe.cleanup()
