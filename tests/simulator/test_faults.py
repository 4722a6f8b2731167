"""Latency and faults chosen per request (directive, API key, header), auth, and the admin surface."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import httpx2
import openai
import pytest

from inference.simulator.server import free_port

from .helpers import CLAUDE

ROOT = Path(__file__).resolve().parents[2]


def chat(client, text: str, **kwargs):
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}], **kwargs
    )


def claude_stream_text(client, text: str) -> str:
    with client.messages.stream(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": text}]
    ) as s:
        return "".join(s.text_stream)


def drain(iterable, into: list | None = None) -> list:
    into = [] if into is None else into
    for item in iterable:
        into.append(item)
    return into


def test_429_raises_rate_limit_error_with_retry_after(oai, claude):
    with pytest.raises(openai.RateLimitError) as err:
        chat(oai, "hi [[sim fault=429 retry_after=7]]")
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "7"
    assert set(err.value.body) == {"message", "type", "code", "param"}
    assert err.value.body["code"] == "rate_limit_exceeded"

    with pytest.raises(anthropic.RateLimitError) as aerr:
        claude.messages.create(
            model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "[[sim fault=429]]"}]
        )
    assert aerr.value.response.headers["retry-after"] == "1"
    assert aerr.value.body["type"] == "error"
    assert aerr.value.body["error"]["type"] == "rate_limit_error"


def test_5xx_faults(oai, claude):
    with pytest.raises(openai.InternalServerError) as err:
        chat(oai, "[[sim fault=500]]")
    assert err.value.status_code == 500
    assert err.value.body["type"] == "server_error"
    with pytest.raises(openai.InternalServerError) as err:
        chat(oai, "[[sim fault=503]]")
    assert err.value.status_code == 503
    with pytest.raises(anthropic.InternalServerError) as aerr:
        claude.messages.create(
            model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "[[sim fault=529]]"}]
        )
    assert aerr.value.status_code == 529
    assert aerr.value.body["error"]["type"] == "overloaded_error"


def test_disconnect_mid_stream_makes_the_sdk_raise(oai, claude, admin):
    stream = chat(oai, "[[sim fault=disconnect_mid_stream tokens=40 chunks=10]]", stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        drain(stream, received)
    assert 1 < len(received) < 10  # some chunks arrived before the drop
    with pytest.raises(openai.APIConnectionError):
        chat(oai, "[[sim fault=disconnect_mid_stream]]")  # non-stream: half a body, then the drop

    # the anthropic SDK lets the transport's error through while iterating a stream
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        claude_stream_text(claude, "[[sim fault=disconnect_mid_stream]]")
    outcomes = [r["outcome"] for r in admin.get("/_sim/requests").json()["requests"]]
    assert outcomes == ["fault:disconnect_mid_stream"] * 3


def test_error_mid_stream(oai, claude):
    got = []
    with pytest.raises(openai.APIError) as err:
        drain(chat(oai, "[[sim fault=error_mid_stream fault_after=3 chunks=10]]", stream=True), got)
    assert len(got) == 1 + 3
    assert "simulated" in err.value.message
    with pytest.raises(anthropic.APIStatusError) as aerr:
        claude_stream_text(claude, "[[sim fault=error_mid_stream]]")
    assert aerr.value.body["error"]["type"] == "overloaded_error"


def test_malformed_json_and_sse(oai, claude, sim):
    with pytest.raises(json.JSONDecodeError):
        chat(oai, "[[sim fault=malformed_json]]")
    raw = httpx.post(
        f"{sim.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "[[sim fault=malformed_json]]"}]},
        headers={"authorization": "Bearer k"},
    )
    assert raw.status_code == 200
    with pytest.raises(ValueError):
        raw.json()
    with pytest.raises(json.JSONDecodeError):
        drain(chat(oai, "[[sim fault=malformed_sse]]", stream=True))
    events = claude.messages.create(
        model=CLAUDE,
        max_tokens=64,
        stream=True,
        messages=[{"role": "user", "content": "[[sim fault=malformed_sse]]"}],
    )
    with pytest.raises(json.JSONDecodeError):
        drain(events)


def test_usage_missing_zero_negative(oai, claude):
    assert chat(oai, "[[sim usage=missing]]").usage is None
    chunks = list(chat(oai, "[[sim usage=missing]]", stream=True, stream_options={"include_usage": True}))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices  # no choices:[] usage chunk at all
    zero = chat(oai, "[[sim usage=zero]]").usage
    assert (zero.prompt_tokens, zero.completion_tokens, zero.total_tokens) == (0, 0, 0)
    assert chat(oai, "[[sim usage=negative]]").usage.completion_tokens == -1
    r = claude.messages.create(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "[[sim usage=missing]]"}]
    )
    assert getattr(r, "usage", None) is None
    assert oai.embeddings.create(model="text-embedding-3-small", input="[[sim usage=missing]]").usage is None


def test_latency_and_chunk_delay(oai):
    t0 = time.perf_counter()
    chat(oai, "[[sim latency_ms=300]]")
    assert time.perf_counter() - t0 >= 0.3
    t0 = time.perf_counter()
    stream = chat(oai, "[[sim chunk_delay_ms=40 chunks=6 tokens=12]]", stream=True)
    first_at = None
    for _ in stream:
        first_at = first_at or time.perf_counter() - t0
    total = time.perf_counter() - t0
    assert first_at < 0.2
    assert total >= 0.04 * 6


def test_timeout_fault(sim):
    with openai.OpenAI(api_key="k", base_url=f"{sim.url}/v1", max_retries=0, timeout=0.5) as client:
        t0 = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            chat(client, "[[sim fault=timeout timeout_s=5]]")
        assert time.perf_counter() - t0 < 3


def test_key_driven_faults_for_failover(sim, admin):
    def client(key):
        return openai.OpenAI(api_key=key, base_url=f"{sim.url}/v1", max_retries=0)

    with pytest.raises(openai.InternalServerError):
        chat(client("sim-fault-500"), "hello")
    with pytest.raises(openai.RateLimitError):
        chat(client("sim-fault-429-channel1"), "hello")
    with pytest.raises(anthropic.InternalServerError):
        anthropic.Anthropic(api_key="sim-fault-500", base_url=sim.url, max_retries=0).messages.create(
            model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    t0 = time.perf_counter()
    chat(client("sim-latency-200-tokens-3"), "hello")
    assert time.perf_counter() - t0 >= 0.2
    assert chat(client("sim-latency-0-tokens-3"), "hello").usage.completion_tokens == 3
    assert chat(client("sk-good"), "hello").choices[0].message.content

    # runtime override of a key: the channel fails, then recovers
    assert admin.post("/_sim/keys", json={"key": "sk-flaky", "controls": "fault=503"}).status_code == 200
    with pytest.raises(openai.InternalServerError):
        chat(client("sk-flaky"), "hello")
    admin.post("/_sim/keys", json={"key": "sk-flaky", "controls": ""})
    assert chat(client("sk-flaky"), "hello").choices[0].message.content


def test_x_sim_header(oai):
    with pytest.raises(openai.InternalServerError):
        chat(oai, "hi", extra_headers={"x-sim": "fault=500 latency_ms=10"})


def test_invalid_directive_is_a_400_not_silently_ignored(oai):
    with pytest.raises(openai.BadRequestError) as err:
        chat(oai, "[[sim fault=teapot]]")
    assert "fault" in err.value.message
    with pytest.raises(openai.BadRequestError):
        chat(oai, "[[sim latncy_ms=5]]")


def test_auth_required_in_vendor_shape(sim):
    r = httpx.post(f"{sim.url}/v1/chat/completions", json={"model": "gpt-4o", "messages": []})
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"message", "type", "code", "param"}
    r = httpx.post(
        f"{sim.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": []},
        headers={"authorization": "Basic abc"},
    )
    assert r.status_code == 401
    r = httpx.post(
        f"{sim.url}/v1/messages",
        json={"model": CLAUDE, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 401
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        chat(openai.OpenAI(api_key="k", base_url=f"{sim.url}/v1", max_retries=0), "[[sim fault=401]]")


def test_requests_log_and_reset(oai, claude, admin):
    chat(oai, "hi", stream=True, stream_options={"include_usage": True}).close()
    claude.messages.create(
        model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x [[sim tokens=2]]"}]
    )
    with pytest.raises(openai.InternalServerError):
        chat(oai, "[[sim fault=500]]")
    log = admin.get("/_sim/requests").json()
    first, second, third = log["requests"]
    assert first["path"] == "/v1/chat/completions"
    assert first["model"] == "gpt-4o"
    assert first["stream"] is True
    assert first["key_suffix"] == "1234"
    assert first["messages"] == 1
    assert "sk-test" not in str(log)
    assert second["format"] == "anthropic"
    assert second["key_suffix"] == "5678"
    assert second["headers"]["anthropic-version"]
    assert second["usage"]["output_tokens"] == 2
    assert second["controls"] == {"tokens": 2}
    assert (third["status"], third["outcome"]) == (500, "fault:500")
    assert "body" not in first
    with_body = admin.get("/_sim/requests", params={"body": 1, "limit": 1}).json()["requests"]
    assert with_body[0]["body"]["messages"][0]["content"] == "[[sim fault=500]]"
    assert admin.post("/_sim/reset").json() == {"reset": True}
    assert admin.get("/_sim/requests").json()["requests"] == []


def test_client_disconnect_is_recorded(oai, admin):
    stream = chat(oai, "[[sim chunk_delay_ms=30 chunks=50 tokens=50]]", stream=True)
    next(iter(stream))
    stream.close()
    deadline = time.time() + 5
    while time.time() < deadline:
        (entry,) = admin.get("/_sim/requests").json()["requests"]
        if entry["outcome"] != "in_progress":
            break
        time.sleep(0.05)
    assert entry["outcome"] == "client_disconnected"
    assert entry["events_sent"] < entry["events_total"]


def test_200_concurrent_streams(sim, admin):
    async def one(client, i):
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": f"#{i} [[sim chunk_delay_ms=5 chunks=20 tokens=40]]"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            usage = chunk.usage or usage
        return len(text.encode()), usage.completion_tokens

    async def run():
        async with openai.AsyncOpenAI(api_key="sk-load", base_url=f"{sim.url}/v1", max_retries=0) as client:
            return await asyncio.gather(*(one(client, i) for i in range(200)))

    t0 = time.perf_counter()
    results = asyncio.run(run())
    elapsed = time.perf_counter() - t0
    assert results == [(160, 40)] * 200
    assert elapsed < 20
    log = admin.get("/_sim/requests", params={"limit": 1000}).json()["requests"]
    assert len(log) == 200
    assert {e["outcome"] for e in log} == {"completed"}


def test_module_entry_point_starts_without_django():
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    code = "import sys, inference.simulator.app; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "inference.simulator", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 15
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert r.json()["simulator"] is True
        with openai.OpenAI(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0) as client:
            assert chat(client, "hi").usage.completion_tokens == 16
            with pytest.raises(openai.APIConnectionError):
                drain(chat(client, "[[sim fault=disconnect_mid_stream]]", stream=True))
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0].decode()
    assert "Upstream simulator (not a real provider)" in output
    assert "Traceback" not in output  # simulated disconnects are not logged as crashes


def test_unknown_paths_are_404_in_vendor_shape(sim):
    r = httpx.post(
        f"{sim.url}/v1/v1/messages", json={}, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
    )
    assert r.status_code == 404
    assert r.json()["type"] == "error"
    r = httpx.post(f"{sim.url}/chat/completions", json={}, headers={"authorization": "Bearer k"})
    assert r.status_code == 404
    assert "error" in r.json()
    r = httpx.get(f"{sim.url}/v1/chat/completions", headers={"authorization": "Bearer k"})
    assert r.status_code == 404
