"""Structured JSON logs: the relay's lines carry the request context and never a secret or prompt."""

from __future__ import annotations

import io
import logging

import httpx
import orjson
import pytest

from config.logs import JsonFormatter, log_context_bind, log_context_clear

pytestmark = pytest.mark.django_db(transaction=True)

CANARY_PROMPT = "canary-prompt-7f3a9c1e-do-not-log"


@pytest.fixture
def json_logs():
    """Every record of every logger, at DEBUG, formatted as JSON lines into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_formatter_emits_one_json_object_with_context_and_masks_keys():
    log_context_bind(request_id="req_1", org_id=7, key_prefix="mg-abcdefg", prompt="never")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", ("mg-" + "A" * 40,), None)
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        log_context_clear()
    assert line["request_id"] == "req_1"
    assert line["org_id"] == 7
    assert line["key_prefix"] == "mg-abcdefg"
    assert "prompt" not in line  # only known-safe context fields are kept
    assert "A" * 20 not in line["msg"]


def test_relayed_requests_never_log_the_key_or_the_prompt(gateway, json_logs):
    headers = {"Authorization": f"Bearer {gateway.secret}"}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"{CANARY_PROMPT} [[sim tokens=5]]"}]}
    plain = httpx.post(gateway.openai_base + "/chat/completions", headers=headers, json=body, timeout=30)
    assert plain.status_code == 200, plain.text
    with httpx.stream(
        "POST",
        gateway.openai_base + "/chat/completions",
        headers=headers,
        json={**body, "stream": True},
        timeout=30,
    ) as streamed:
        assert streamed.status_code == 200
        streamed.read()
    # Translated (Anthropic format to an OpenAI model), and a refused wrong key.
    translated = httpx.post(
        gateway.url + "/v1/messages",
        headers={"x-api-key": gateway.secret, "anthropic-version": "2023-06-01"},
        json={"model": "gpt-4o", "max_tokens": 20, "messages": [{"role": "user", "content": CANARY_PROMPT}]},
        timeout=30,
    )
    assert translated.status_code == 200, translated.text
    wrong = "mg-" + "canarykey" * 5
    refused = httpx.post(
        gateway.openai_base + "/chat/completions",
        headers={"Authorization": f"Bearer {wrong}"},
        json=body,
        timeout=30,
    )
    assert refused.status_code == 401
    gateway.wait_settled(3)

    text = json_logs.getvalue()
    assert text  # something was logged
    assert gateway.secret not in text
    assert gateway.secret[10:] not in text  # not even the part after the display prefix
    assert wrong not in text
    assert CANARY_PROMPT not in text

    lines = [orjson.loads(line) for line in text.splitlines()]
    relay_lines = [line for line in lines if line["logger"] == "modelgate.relay" and "status" in line]
    assert len(relay_lines) == 3
    request_ids = {r.request_id for r in gateway.records()}
    for line in relay_lines:
        assert line["request_id"] in request_ids
        assert line["org_id"] == gateway.org.id
        assert line["key_prefix"] == gateway.key.prefix
        assert line["model"] == "gpt-4o"
        assert line["channel"]
        assert line["status"] == "ok"
        assert line["latency_ms"] >= 0
    assert any(line["stream"] and line.get("ttft_ms") is not None for line in relay_lines)
