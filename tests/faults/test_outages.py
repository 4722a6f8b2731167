"""The gateway's own services failing, one at a time, on a live gateway (regression tests).

A private PostgreSQL cluster and redis-server (never the shared ones), the upstream
simulator and the gateway as a uvicorn subprocess with production settings; the official
SDKs as clients. Before the fixes in inference/relay.py and config/cachesafe.py each of
these failed: an HTML 500 while PostgreSQL was down, a stream delivered but never charged
when its settlement met the outage, an HTML 500 for every request while Redis was down. A
stream's end ([DONE]) now waits for its charge to commit, and is an error when it can't.
"""

from __future__ import annotations

import threading
import time

import anthropic
import httpx
import openai
import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _clients(stack):
    secret = stack.setup["secret"]
    oai = openai.OpenAI(api_key=secret, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=30)
    claude = anthropic.Anthropic(api_key=secret, base_url=stack.gateway_url, max_retries=0, timeout=30)
    return oai, claude


def _balance(stack) -> int:
    response = httpx.get(
        stack.gateway_url + "/api/balance",
        headers={"Authorization": f"Bearer {stack.setup['secret']}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["held_units"] == 0
    return body["balance_units"]


def _openai_ok(oai, text: str = "hello") -> str:
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], max_tokens=50
    )
    assert raw.parse().choices[0].message.content.startswith("Simulated reply")
    return raw.headers["x-request-id"]


def _anthropic_ok(claude, text: str = "hello", stream: bool = False) -> str:
    if stream:
        with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": text}]
        ) as s:
            assert s.get_final_message().stop_reason
            return s.response.headers["x-request-id"]
    raw = claude.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": text}]
    )
    assert raw.parse().content[0].text.startswith("Simulated reply")
    return raw.headers["x-request-id"]


def _records(stack, request_ids, expiry_wait: float = 0) -> dict[str, dict]:
    """The books; holds left open are given back by the expiry task once due (within
    ``expiry_wait`` seconds)."""
    books = stack.remote("check", str(stack.setup["org_id"]), str(expiry_wait))
    assert books["audit"]["ok"], books["audit"]["report"]
    by_id = {r["request_id"]: r for r in books["records"]}
    return {rid: by_id.get(rid) for rid in request_ids}, books


def _gateway_log_clean(stack) -> None:
    log = stack.gateway_log.read_text()
    assert '"msg":"Internal Server Error: /' not in log  # django.request: an unhandled exception
    assert "Task exception was never retrieved" not in log


def test_postgres_down_is_a_503_in_each_wire_format_charges_nothing_and_recovers(stack):
    oai, claude = _clients(stack)
    _openai_ok(oai)
    before = _balance(stack)
    stack.pg.stop()
    try:
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as caught:
                oai.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=stream
                )
            error = caught.value
            assert error.status_code == 503
            assert error.response.headers["content-type"] == "application/json"
            assert error.response.headers["retry-after"] == "1"
            assert error.body["code"] == "service_unavailable"
            assert error.body["type"] == "api_error"
            assert "nothing was charged" in error.body["message"]

            with pytest.raises(anthropic.APIStatusError) as caught:
                claude.messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=50,
                    messages=[{"role": "user", "content": "hi"}],
                    stream=stream,
                )
            error = caught.value
            assert error.status_code == 503
            assert error.response.headers["content-type"] == "application/json"
            assert error.body["type"] == "error"
            assert error.body["error"]["type"] == "overloaded_error"
            assert error.body["request_id"] == error.response.headers["x-request-id"]
    finally:
        stack.pg.start()
    # Back without restarting the gateway: its connections were checked and replaced.
    _openai_ok(oai)
    _anthropic_ok(claude)
    after = _balance(stack)
    charged = before - after
    _unused, books = _records(stack, [])
    assert books["open_holds"] == 0
    # Only the two requests after the outage were charged; the refused ones left nothing behind.
    assert charged == sum(r["cost_units"] for r in books["records"][-2:])
    _gateway_log_clean(stack)


def _stream_in_thread(oai, seen: dict) -> threading.Thread:
    """An OpenAI stream read by the SDK in a thread: ``content_done`` once the finish and usage
    chunks arrived, ``ended`` when the SDK saw [DONE] (or ``error`` when the stream failed)."""
    seen.update(content_done=threading.Event(), ended=threading.Event())

    def client():
        try:
            stream = oai.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "story [[sim tokens=60 chunks=15 chunk_delay_ms=80]]"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            seen["request_id"] = stream.response.headers["x-request-id"]
            for chunk in stream:
                if chunk.usage:
                    seen["usage"] = chunk.usage
                    seen["content_done"].set()
                if chunk.choices and chunk.choices[0].finish_reason:
                    seen["finish"] = chunk.choices[0].finish_reason
        except openai.APIError as exc:
            seen["error"] = exc
        seen["ended"].set()

    thread = threading.Thread(target=client)
    thread.start()
    return thread


def test_stream_whose_settlement_meets_the_outage_ends_once_the_database_is_back_and_is_charged(stack):
    oai, _claude = _clients(stack)
    before = _balance(stack)
    seen: dict = {}
    thread = _stream_in_thread(oai, seen)
    time.sleep(0.3)  # the hold is placed, the stream is in flight
    stack.pg.stop()  # it ends (and wants to settle) while the database is down
    try:
        assert seen["content_done"].wait(15), seen
        assert seen.get("finish") == "stop", seen
        # The content is all there; the end ([DONE]) waits for the charge to commit.
        assert not seen["ended"].wait(1.0), "the stream ended while its charge could not be recorded"
    finally:
        stack.pg.start()
    assert seen["ended"].wait(15)
    thread.join(5)
    assert "error" not in seen, seen

    # No waiting: [DONE] came after the commit.
    records, books = _records(stack, [seen["request_id"]])
    record = records[seen["request_id"]]
    assert record is not None, "the stream ended but was never settled"
    assert record["status"] == "ok"
    assert record["cost_units"] > 0
    keys = [k for k, _ in books["usage_entries"]]
    assert keys.count(f"usage:{seen['request_id']}") == 1
    assert before - _balance(stack) == record["cost_units"]
    assert books["open_holds"] == 0
    assert "settlement waits for the database" in stack.gateway_log.read_text()
    _gateway_log_clean(stack)


def test_stream_whose_settlement_cannot_be_recorded_ends_in_an_error_and_charges_nothing(stack):
    """The database stays down past RELAY_SETTLE_RETRY_SECONDS (6 s here): the stream is not
    charged, so it doesn't end as a success either — its last event is a 503-style error, and
    the hold is the expiry task's."""
    oai, _claude = _clients(stack)
    before = _balance(stack)
    seen: dict = {}
    thread = _stream_in_thread(oai, seen)
    time.sleep(0.3)
    stack.pg.stop()
    try:
        assert seen["content_done"].wait(15), seen
        assert seen["ended"].wait(15), "the stream never ended"
    finally:
        stack.pg.start()
    thread.join(5)
    error = seen.get("error")
    assert isinstance(error, openai.APIError), seen
    assert "cannot reach its database" in error.message
    assert "nothing was charged" in error.message
    assert error.body["code"] == "service_unavailable"

    records, books = _records(stack, [seen["request_id"]], expiry_wait=30)
    assert books["holds_expired_by_task"] == 1
    assert records[seen["request_id"]] is None
    assert f"usage:{seen['request_id']}" not in [k for k, _ in books["usage_entries"]]
    assert books["open_holds"] == 0
    assert _balance(stack) == before
    assert "request not settled: database unavailable" in stack.gateway_log.read_text()
    _gateway_log_clean(stack)


@pytest.mark.parametrize("fault", ["stopped", "flushed"])
def test_redis_down_or_flushed_requests_are_served_and_charged_exactly(stack, fault):
    oai, claude = _clients(stack)
    _openai_ok(oai)
    before = _balance(stack)
    if fault == "stopped":
        stack.redis.kill()
    else:
        stack.redis.flushall()
    request_ids = []
    try:
        # Longer than API_KEY_LOCAL_CACHE_SECONDS and CATALOGUE_VERSION_CHECK_SECONDS: the key and
        # the catalogue version are looked up in the (failing or empty) shared cache again.
        for i in range(4):
            request_ids.append(_openai_ok(oai, f"q{i}"))
            request_ids.append(_anthropic_ok(claude, f"q{i}", stream=bool(i % 2)))
            time.sleep(0.4)
    finally:
        if fault == "stopped":
            stack.redis.start()
    records, _books = _records(stack, request_ids)
    assert all(r is not None and r["status"] == "ok" and r["cost_units"] > 0 for r in records.values()), (
        records
    )
    assert before - _balance(stack) == sum(r["cost_units"] for r in records.values())
    if fault == "stopped":
        log = stack.gateway_log.read_text()
        assert "shared cache unavailable" in log  # the cache fell back to the database
        assert "Rate limiter: Redis unavailable" in log  # the limiter degraded to its local counter
    _gateway_log_clean(stack)
