"""The relay's fast path (issue 11): the lean ASGI handler, the bounded database threads and the
per-process copies of keys and the catalogue — each with the guarantee it must keep."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import httpx
import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from openai import OpenAI

from accounts.models import ApiKey
from accounts.selectors import api_key_lookup
from accounts.services import _key_cache_key, api_key_revoke
from config.localcache import NeedsIO, local_only
from models_catalog.selectors import VERSION_KEY, catalogue_snapshot, catalogue_version

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def test_relay_paths_skip_the_middleware_but_keep_the_api_headers(gateway):
    relay = httpx.post(
        gateway.url + "/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {gateway.secret}"}
    )
    assert relay.status_code == 200
    assert relay.headers["X-Content-Type-Options"] == "nosniff"
    assert relay.headers["X-Frame-Options"] == "DENY"
    # No session, CSRF or locale middleware ran: nothing varies on cookies or language.
    assert "set-cookie" not in relay.headers
    assert "Cookie" not in relay.headers.get("Vary", "")
    # Every other route still runs the full stack (here: LocaleMiddleware's Vary, security headers).
    page = httpx.get(gateway.url + "/models/")
    assert page.status_code == 200
    assert "Accept-Language" in page.headers.get("Vary", "")
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_relay_paths_answer_405_in_the_wire_format(gateway):
    r = httpx.get(gateway.url + "/v1/messages", headers={"x-api-key": gateway.secret})
    assert r.status_code == 405
    assert r.json()["type"] == "error"
    assert r.headers["Allow"] == "POST"


@pytest.mark.postgres
def test_database_connections_stay_bounded_with_many_streams_in_flight(gateway, settings):
    """40 streams held open at once through the gateway (in this process) use at most
    DB_THREADS connections, not one per request as Django's per-request threads would."""
    from config.asyncdb import db_executor

    threads = db_executor()._max_workers

    def backends() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]

    def one(i: int) -> str:
        client = OpenAI(base_url=gateway.openai_base, api_key=gateway.secret, max_retries=0, timeout=30)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            stream=True,
            messages=[{"role": "user", "content": f"[[sim tokens=8 chunks=4 delay=400]] stream {i}"}],
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    before = backends()
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        futures = [pool.submit(one, i) for i in range(40)]
        time.sleep(0.8)  # all 40 are open upstream, sending chunks
        during = backends()
        texts = [f.result() for f in futures]
    assert all(texts)
    records = gateway.wait_settled(40)
    assert len(records) == 40
    assert all(r.cost_units > 0 for r in records)
    # The gateway's threads keep their connections; nothing else of the gateway opens one.
    assert during - before <= threads, (before, during, threads)
    assert backends() <= before + threads


def test_a_key_revoked_in_this_process_is_refused_at_once(gateway, django_capture_on_commit_callbacks):
    client = OpenAI(base_url=gateway.openai_base, api_key=gateway.secret, max_retries=0)
    client.chat.completions.create(**BODY)  # now in this process's copy
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(actor=gateway.owner, key=gateway.key)
    r = httpx.post(
        gateway.url + "/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {gateway.secret}"}
    )
    assert r.status_code == 401
    assert "revoked" in r.json()["error"]["message"]


def test_a_key_revoked_by_another_process_is_refused_within_the_local_ttl(make_org, settings):
    """Another process revokes: the row changes and the shared cache entry goes; this process's
    copy serves at most API_KEY_LOCAL_CACHE_SECONDS longer."""
    from accounts.services import api_key_create

    settings.API_KEY_LOCAL_CACHE_SECONDS = 0.3
    owner = make_org()
    key, secret = api_key_create(actor=owner, name="elsewhere")
    assert api_key_lookup(secret=secret).revoked_at is None
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())  # the other process's write
    cache.delete(_key_cache_key(key.secret_hash))  # … and its eviction of the shared entry
    assert api_key_lookup(secret=secret).revoked_at is None  # still this process's copy
    time.sleep(0.35)
    assert api_key_lookup(secret=secret).revoked_at is not None


def test_catalogue_changes_made_elsewhere_are_seen_within_the_check_interval(catalogue, settings):
    settings.CATALOGUE_VERSION_CHECK_SECONDS = 0.3
    first = catalogue_version()
    cache.set(VERSION_KEY, "changed-by-another-process", timeout=None)
    assert catalogue_version() == first
    time.sleep(0.35)
    assert catalogue_version() == "changed-by-another-process"


def test_catalogue_changes_made_here_are_seen_at_once(catalogue):
    from models_catalog.services import catalogue_changed

    first = catalogue_version()
    catalogue_changed()
    assert catalogue_version() != first


def test_the_first_step_runs_without_io_only_when_this_process_has_fresh_copies(gateway):
    """``_prepare`` under ``local_only()``: cold copies need I/O (NeedsIO is raised at the first
    fetch); once warmed by a normal call the same step completes with no I/O at all."""
    from inference.endpoints import CHAT_COMPLETIONS
    from inference.relay import _prepare

    plan = CHAT_COMPLETIONS.plan(dict(BODY), [])
    from tests.conftest import _clear_caches

    _clear_caches()
    with pytest.raises(NeedsIO), local_only():
        _prepare(gateway.secret, plan, CHAT_COMPLETIONS)
    key, model, _multiplier, channels = _prepare(gateway.secret, plan, CHAT_COMPLETIONS)  # warms them
    with local_only():
        again = _prepare(gateway.secret, plan, CHAT_COMPLETIONS)
    assert again[0].pk == key.pk
    assert again[1].id == model.id
    assert again[3] == channels
    assert catalogue_snapshot().models  # still served from the same copy


def test_db_call_carries_the_log_context_and_returns_connections(transactional_db):
    from config.asyncdb import db_call
    from config.logs import log_context, log_context_bind

    async def main():
        log_context_bind(request_id="req_ctx")
        return await db_call(lambda: (log_context().get("request_id"), ApiKey.objects.count()))

    assert asyncio.run(main()) == ("req_ctx", 0)
