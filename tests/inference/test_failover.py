"""Routing and failover against the simulator's key-driven faults: a failing first channel is
answered by the next (charged once), all channels down is a clear 503 with no charge, a failing
channel cools down and is probed back, and upstream error text never leaks keys or URLs."""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import httpx
import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

GPT_4O_IN, GPT_4O_OUT = 2_500_000_000, 10_000_000_000


def _oa(gw) -> openai.OpenAI:
    return openai.OpenAI(api_key=gw.secret, base_url=gw.openai_base, max_retries=0)


def _sim_requests(gw) -> list[dict]:
    return httpx.get(gw.simulator.url + "/_sim/requests", timeout=5).json()["requests"]


def _channel(gw, name: str, key: str, priority: int, *, base_url: str | None = None, models=("gpt-4o",)):
    from models_catalog.services import channel_create

    return channel_create(
        name=name,
        provider_type="openai",
        base_url=base_url or gw.simulator.url + "/v1",
        api_key=key,
        model_ids=list(models),
        priority=priority,
    )


def _state(channel):
    channel.refresh_from_db()
    return channel


def _cost(usage: dict) -> int:
    return math.ceil(
        (usage["prompt_tokens"] * GPT_4O_IN + usage["completion_tokens"] * GPT_4O_OUT) / 1_000_000
    )


def _holds(gw) -> int:
    from billing.services import billing_account_for_org

    return billing_account_for_org(org_id=gw.org.id).held_units


def _ask(gw, *, stream: bool = False, text: str = "hello [[sim tokens=20]]"):
    client = _oa(gw)
    messages = [{"role": "user", "content": text}]
    if stream:
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("bad_key", "outcome"), [("sim-fault-500-chanA", "fault:500"), ("sim-fault-429-chanA", "fault:429")]
)
def test_first_channel_fails_second_answers_charged_once(gateway, stream, bad_key, outcome):
    first = _channel(gateway, "first", bad_key, priority=10)
    second = _channel(gateway, "second", "sk-good-chanB", priority=5)
    before = gateway.balance()
    assert _ask(gateway, stream=stream).startswith("Simulated reply from gpt-4o")
    (record,) = gateway.wait_settled(1)
    tried = _sim_requests(gateway)
    assert [(t["key_suffix"], t["outcome"]) for t in tried] == [("hanA", outcome), ("hanB", "completed")]
    assert (record.status, record.channel_id) == ("ok", second.pk)
    assert record.cost_units == _cost(tried[1]["usage"])
    assert before - gateway.balance() == record.cost_units  # charged once
    assert _holds(gateway) == 0
    first = _state(first)
    assert first.consecutive_failures == 1
    assert first.last_error.startswith(outcome.split(":")[1])
    assert _state(second).consecutive_failures == 0


def test_first_channel_timing_out_is_answered_by_the_second(gateway, settings):
    settings.RELAY_UPSTREAM_READ_TIMEOUT = 0.5
    _channel(gateway, "slow", "sim-latency-3000-chanA", priority=10)
    second = _channel(gateway, "fast", "sk-good-chanB", priority=5)
    before = gateway.balance()
    started = time.monotonic()
    assert _ask(gateway).startswith("Simulated reply")
    assert time.monotonic() - started < 2.5
    (record,) = gateway.records()
    assert record.channel_id == second.pk
    answered = [t for t in _sim_requests(gateway) if t["key_suffix"] == "hanB"]
    assert before - gateway.balance() == record.cost_units == _cost(answered[0]["usage"])
    from models_catalog.models import Channel

    assert Channel.objects.get(name="slow").last_error.startswith("504")


def test_all_channels_down_is_a_503_in_openai_format_and_nothing_is_charged(gateway, settings):
    _channel(gateway, "a", "sk-a-1111", priority=10)
    _channel(gateway, "b", "sk-b-2222", priority=5)
    before = gateway.balance()
    with pytest.raises(openai.InternalServerError) as excinfo:
        _ask(gateway, text="x [[sim fault=503]]")
    assert excinfo.value.status_code == 503
    assert excinfo.value.body["code"] == "upstream_unavailable"
    assert "nothing was charged" in excinfo.value.body["message"]
    assert len(_sim_requests(gateway)) == settings.RELAY_MAX_ATTEMPTS  # bounded attempts
    assert gateway.balance() == before
    assert _holds(gateway) == 0
    (record,) = gateway.records()
    assert (record.status, record.cost_units, record.http_status) == ("upstream_error", 0, 503)


def test_all_channels_down_is_a_503_in_anthropic_format(gateway):
    before = gateway.balance()
    client = anthropic.Anthropic(api_key=gateway.secret, base_url=gateway.url, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as excinfo:
        client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=20,
            messages=[{"role": "user", "content": "x [[sim fault=500]]"}],
        )
    assert excinfo.value.status_code == 503
    assert excinfo.value.body["type"] == "error"
    assert "nothing was charged" in excinfo.value.body["error"]["message"]
    assert gateway.balance() == before


def test_failing_channel_cools_down_and_is_probed_back(gateway, settings):
    settings.RELAY_CHANNEL_FAILURE_THRESHOLD = 2
    settings.RELAY_CHANNEL_COOLDOWN_SECONDS = 1
    sim = gateway.simulator.url
    flaky = _channel(gateway, "flaky", "sk-flaky-AAAA", priority=10)
    backup = _channel(gateway, "backup", "sk-backup-BBBB", priority=5)
    httpx.post(sim + "/_sim/keys", json={"key": "sk-flaky-AAAA", "controls": "fault=503"}, timeout=5)

    def tried_since(n: int) -> list[str]:
        return [t["key_suffix"] for t in _sim_requests(gateway)[n:]]

    # Two failures in a row (the threshold): the flaky channel cools down.
    _ask(gateway)
    _ask(gateway)
    assert tried_since(0) == ["AAAA", "BBBB", "AAAA", "BBBB"]
    flaky = _state(flaky)
    assert flaky.consecutive_failures == 2
    assert flaky.cooldown_until is not None
    assert flaky.last_error.startswith("503")

    # While it rests, requests go straight to the backup.
    _ask(gateway)
    assert tried_since(4) == ["BBBB"]

    # After the cooldown it is tried again (the probe); still failing → rests again.
    time.sleep(1.1)
    _ask(gateway)
    assert tried_since(5) == ["AAAA", "BBBB"]
    assert _state(flaky).consecutive_failures == 3

    # Fixed upstream: the next probe succeeds and resets the channel's health.
    httpx.post(sim + "/_sim/keys", json={"key": "sk-flaky-AAAA", "controls": ""}, timeout=5)
    _ask(gateway)
    assert tried_since(7) == ["BBBB"]  # still resting
    time.sleep(1.1)
    _ask(gateway)
    assert tried_since(8) == ["AAAA"]
    flaky = _state(flaky)
    assert (flaky.consecutive_failures, flaky.cooldown_until) == (0, None)

    records = gateway.records()
    assert [r.channel_id for r in records] == [backup.pk] * 5 + [flaky.pk]
    assert all(r.status == "ok" and r.cost_units > 0 for r in records)
    assert gateway.balance() == 5_000_000_000 - sum(r.cost_units for r in records)


def test_a_success_resets_the_failure_count(gateway, settings):
    settings.RELAY_CHANNEL_FAILURE_THRESHOLD = 2
    flaky = _channel(gateway, "flaky", "sk-flaky-CCCC", priority=10)
    _channel(gateway, "backup", "sk-backup-DDDD", priority=5)
    sim = gateway.simulator.url
    httpx.post(sim + "/_sim/keys", json={"key": "sk-flaky-CCCC", "controls": "fault=500"}, timeout=5)
    _ask(gateway)
    httpx.post(sim + "/_sim/keys", json={"key": "sk-flaky-CCCC", "controls": ""}, timeout=5)
    _ask(gateway)
    assert _state(flaky).consecutive_failures == 0
    httpx.post(sim + "/_sim/keys", json={"key": "sk-flaky-CCCC", "controls": "fault=500"}, timeout=5)
    _ask(gateway)
    flaky = _state(flaky)
    assert (flaky.consecutive_failures, flaky.cooldown_until) == (1, None)  # not two in a row


# --- no leaks -----------------------------------------------------------------------------------------


class _EchoingUpstream(BaseHTTPRequestHandler):
    """An upstream whose errors quote the caller's key and its own address (as real ones do)."""

    status = 400

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        host = self.headers.get("host")
        message = (
            f"Incorrect API key provided: {self.headers.get('authorization')}. "
            f"You called {self.path} on {host}; see http://{host}/docs"
        )
        body = json.dumps(
            {"error": {"message": message, "type": "invalid_request_error", "code": None}}
        ).encode()
        self.send_response(type(self).status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def echoing_upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingUpstream)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [400, 500])
def test_upstream_error_text_never_leaks_keys_or_urls(gateway, echoing_upstream, caplog, status):
    _EchoingUpstream.status = status
    canary = "sk-canary-" + secrets.token_hex(16)
    port = echoing_upstream.server_address[1]
    channel = _channel(gateway, "echo", canary, priority=10, base_url=f"http://127.0.0.1:{port}/v1")
    response = httpx.post(
        gateway.openai_base + "/chat/completions",
        headers={"Authorization": f"Bearer {gateway.secret}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    if status == 400:
        assert response.status_code == 400
        assert "Incorrect API key provided" in response.json()["error"]["message"]
    else:
        assert response.status_code == 200  # failed over to the simulator channel
    channel = _state(channel)
    # Our own logs too (the HTTP client's request log is for operators and names the URL).
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("modelgate"))
    for text in (response.text, channel.last_error, ours):
        assert canary not in text
        assert canary[:12] not in text
        assert f"127.0.0.1:{port}" not in text
    assert str(port) not in response.text + channel.last_error
