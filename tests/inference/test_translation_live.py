"""Any chat model through either format, end to end: Claude via the `openai` SDK, gpt-4o via the
`anthropic` SDK — streaming and not, with an image, with a tool-call round trip, with prompt
caching — each charged exactly the list price of the usage the upstream (simulator) reported."""

from __future__ import annotations

import base64
import io
import json
import math

import anthropic
import httpx
import openai
import pytest
from PIL import Image

pytestmark = pytest.mark.django_db(transaction=True)

M = 1_000_000_000  # units per $1 per 1M tokens
SONNET = {"in": 3 * M, "out": 15 * M, "cached": 3 * M // 10, "write": 3_750_000_000}
GPT_4O = {"in": 2_500_000_000, "out": 10 * M, "cached": 1_250_000_000}
CLAUDE = "claude-3-5-sonnet-20241022"

WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


def _oa(gw) -> openai.OpenAI:
    return openai.OpenAI(api_key=gw.secret, base_url=gw.openai_base, max_retries=0)


def _an(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=gw.secret, base_url=gw.url, max_retries=0)


def _png_b64(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _sim_requests(gw) -> list[dict]:
    return httpx.get(gw.simulator.url + "/_sim/requests?body=1", timeout=5).json()["requests"]


def _anthropic_cost(usage: dict) -> int:
    """Claude's list price applied to the usage the simulator reported in Anthropic's format."""
    return math.ceil(
        (
            usage["input_tokens"] * SONNET["in"]
            + usage.get("cache_read_input_tokens", 0) * SONNET["cached"]
            + usage.get("cache_creation_input_tokens", 0) * SONNET["write"]
            + usage["output_tokens"] * SONNET["out"]
        )
        / 1_000_000
    )


def _openai_cost(usage: dict) -> int:
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return math.ceil(
        (
            (usage["prompt_tokens"] - cached) * GPT_4O["in"]
            + cached * GPT_4O["cached"]
            + usage["completion_tokens"] * GPT_4O["out"]
        )
        / 1_000_000
    )


def _only_upstream(gw, fmt: str) -> dict:
    (entry,) = _sim_requests(gw)
    assert entry["format"] == fmt
    assert entry["outcome"] == "completed"
    return entry


# --- Claude through the openai SDK ------------------------------------------------------------------


def test_claude_via_openai_sdk_with_an_image_is_charged_exactly(gateway):
    before = gateway.balance()
    completion = _oa(gateway).chat.completions.create(
        model=CLAUDE,
        max_tokens=300,
        messages=[
            {"role": "system", "content": "You describe pictures."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture? [[sim tokens=25]]"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{_png_b64(1024, 1024)}"},
                    },
                ],
            },
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content.startswith(f"Simulated reply from {CLAUDE}")
    assert completion.choices[0].finish_reason == "stop"
    upstream = _only_upstream(gateway, "anthropic")
    sent = upstream["body"]
    assert sent["system"] == "You describe pictures."
    assert sent["max_tokens"] == 300
    assert sent["messages"][0]["content"][1]["source"]["type"] == "base64"
    reported = upstream["usage"]
    assert reported["input_tokens"] > 1399  # the 1024×1024 image at Anthropic's rule, plus text
    assert completion.usage.prompt_tokens == reported["input_tokens"]
    assert completion.usage.completion_tokens == reported["output_tokens"] == 25
    (record,) = gateway.records()
    assert (record.status, record.wire_format, record.output_tokens) == ("ok", "openai", 25)
    assert record.cost_units == _anthropic_cost(reported)
    assert before - gateway.balance() == record.cost_units


def test_claude_via_openai_sdk_streaming_with_usage(gateway):
    before = gateway.balance()
    stream = _oa(gateway).chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": "Stream please [[sim tokens=40 chunks=10]]"}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=100,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith(f"Simulated reply from {CLAUDE}")
    assert len(text.encode()) == 160  # 4 bytes per simulated token
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    (record,) = gateway.wait_settled(1)
    reported = _only_upstream(gateway, "anthropic")["usage"]
    assert usage.prompt_tokens == reported["input_tokens"]
    assert usage.completion_tokens == reported["output_tokens"] == 40
    assert (record.status, record.stream) == ("ok", True)
    assert record.ttft_ms is not None
    assert record.cost_units == _anthropic_cost(reported)
    assert before - gateway.balance() == record.cost_units


def test_claude_via_openai_sdk_without_max_tokens_sends_the_held_maximum(gateway):
    _oa(gateway).chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "hi"}])
    sent = _only_upstream(gateway, "anthropic")["body"]
    from models_catalog.selectors import model_resolve

    assert sent["max_tokens"] == model_resolve(CLAUDE).max_output_tokens


@pytest.mark.parametrize("stream", [False, True])
def test_claude_via_openai_sdk_tool_call_round_trip(gateway, stream):
    client = _oa(gateway)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    kwargs = {"model": CLAUDE, "max_tokens": 200, "tools": [WEATHER_TOOL_OPENAI]}
    if stream:
        calls: dict[int, dict] = {}
        finish = None
        for chunk in client.chat.completions.create(messages=messages, stream=True, **kwargs):
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for tc in choice.delta.tool_calls or ():
                    slot = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                    slot["id"] = tc.id or slot["id"]
                    slot["name"] = (tc.function.name if tc.function else None) or slot["name"]
                    slot["arguments"] += (tc.function.arguments if tc.function else None) or ""
        (call,) = calls.values()
        call_id, name, arguments = call["id"], call["name"], call["arguments"]
    else:
        first = client.chat.completions.create(messages=messages, **kwargs)
        finish = first.choices[0].finish_reason
        (tc,) = first.choices[0].message.tool_calls
        call_id, name, arguments = tc.id, tc.function.name, tc.function.arguments
    assert finish == "tool_calls"
    assert name == "get_weather"
    assert json.loads(arguments) == {"location": "Paris"}
    assert isinstance(arguments, str)

    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"},
    ]
    second = client.chat.completions.create(messages=messages, **kwargs)
    assert "the tool returned: 18C and sunny" in second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop"

    records = gateway.wait_settled(2)
    upstream = _sim_requests(gateway)
    assert [u["format"] for u in upstream] == ["anthropic", "anthropic"]
    second_sent = upstream[1]["body"]["messages"]
    assert second_sent[1]["content"] == [
        {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"location": "Paris"}}
    ]
    assert second_sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": call_id, "content": "18C and sunny"}
    ]
    # A stream settles after its last event, so the two records may be written in either order.
    assert sorted(r.cost_units for r in records) == sorted(_anthropic_cost(u["usage"]) for u in upstream)


def test_claude_prompt_cache_through_openai_sdk_is_priced_at_cache_rates(gateway):
    system = [{"type": "text", "text": "Reference manual. " * 60, "cache_control": {"type": "ephemeral"}}]
    client = _oa(gateway)
    for question in ("First question?", "Second question?"):
        client.chat.completions.create(
            model=CLAUDE,
            max_tokens=50,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
        )
    first, second = _sim_requests(gateway)
    assert first["body"]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert first["usage"]["cache_creation_input_tokens"] > 0
    assert second["usage"]["cache_read_input_tokens"] == first["usage"]["cache_creation_input_tokens"]
    r1, r2 = gateway.records()
    assert (r1.cache_write_tokens, r1.cached_input_tokens) == (
        first["usage"]["cache_creation_input_tokens"],
        0,
    )
    assert (r2.cache_write_tokens, r2.cached_input_tokens) == (0, second["usage"]["cache_read_input_tokens"])
    assert r1.cost_units == _anthropic_cost(first["usage"])
    assert r2.cost_units == _anthropic_cost(second["usage"])
    assert r2.cost_units < r1.cost_units


# --- gpt-4o through the anthropic SDK ---------------------------------------------------------------


def test_gpt4o_via_anthropic_sdk_with_a_base64_image_is_charged_exactly(gateway):
    before = gateway.balance()
    message = _an(gateway).messages.create(
        model="gpt-4o",
        max_tokens=200,
        system="You describe pictures.",
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": _png_b64(1024, 1024)},
                    },
                    {"type": "text", "text": "Describe it. [[sim tokens=30]]"},
                ],
            }
        ],
    )
    assert message.type == "message"
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("Simulated reply from gpt-4o")
    assert message.stop_reason == "end_turn"
    upstream = _only_upstream(gateway, "openai")
    sent = upstream["body"]
    assert sent["messages"][0] == {"role": "system", "content": "You describe pictures."}
    assert sent["messages"][1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    reported = upstream["usage"]
    assert reported["prompt_tokens"] > 765  # the 1024×1024 image at OpenAI's tile rule, plus text
    assert message.usage.input_tokens == reported["prompt_tokens"]
    assert message.usage.output_tokens == reported["completion_tokens"] == 30
    (record,) = gateway.records()
    assert (record.status, record.wire_format) == ("ok", "anthropic")
    assert record.cost_units == _openai_cost(reported)
    assert before - gateway.balance() == record.cost_units


def test_gpt4o_via_anthropic_sdk_streaming(gateway):
    before = gateway.balance()
    with _an(gateway).messages.stream(
        model="gpt-4o",
        max_tokens=120,
        messages=[{"role": "user", "content": "Stream it [[sim tokens=33 chunks=11]]"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Simulated reply from gpt-4o")
    assert len(text.encode()) == 132
    assert final.stop_reason == "end_turn"
    (record,) = gateway.wait_settled(1)
    upstream = _only_upstream(gateway, "openai")
    assert upstream["body"]["stream_options"] == {"include_usage": True}
    reported = upstream["usage"]
    assert final.usage.input_tokens == reported["prompt_tokens"]
    assert final.usage.output_tokens == reported["completion_tokens"] == 33
    assert record.cost_units == _openai_cost(reported)
    assert before - gateway.balance() == record.cost_units


def test_gpt4o_via_anthropic_sdk_raw_stream_event_order(gateway):
    with httpx.stream(
        "POST",
        gateway.url + "/v1/messages",
        headers={"x-api-key": gateway.secret, "anthropic-version": "2023-06-01"},
        json={
            "model": "gpt-4o",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=10,
    ) as response:
        names = [line[7:] for line in response.iter_lines() if line.startswith("event: ")]
    assert names[0] == "message_start"
    assert names[1] == "content_block_start"
    assert set(names[2:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


@pytest.mark.parametrize("stream", [False, True])
def test_gpt4o_via_anthropic_sdk_tool_use_round_trip(gateway, stream):
    client = _an(gateway)
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    kwargs = {"model": "gpt-4o", "max_tokens": 200, "tools": [WEATHER_TOOL_ANTHROPIC]}
    if stream:
        with client.messages.stream(messages=messages, **kwargs) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(messages=messages, **kwargs)
    assert first.stop_reason == "tool_use"
    (tool_use,) = [b for b in first.content if b.type == "tool_use"]
    assert tool_use.name == "get_weather"
    assert tool_use.input == {"location": "Paris"}

    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C and sunny"}],
        },
    ]
    second = client.messages.create(messages=messages, **kwargs)
    assert "the tool returned: 18C and sunny" in second.content[0].text
    assert second.stop_reason == "end_turn"

    records = gateway.wait_settled(2)
    upstream = _sim_requests(gateway)
    assert [u["format"] for u in upstream] == ["openai", "openai"]
    sent = upstream[1]["body"]["messages"]
    assert sent[1]["tool_calls"] == [
        {
            "id": tool_use.id,
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
        }
    ]
    assert sent[2] == {"role": "tool", "tool_call_id": tool_use.id, "content": "18C and sunny"}
    assert [r.cost_units for r in records] == [_openai_cost(u["usage"]) for u in upstream]


def test_untranslatable_request_is_refused_in_callers_format_without_charge(gateway):
    before = gateway.balance()
    with pytest.raises(openai.BadRequestError) as excinfo:
        _oa(gateway).chat.completions.create(
            model=CLAUDE, n=2, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert excinfo.value.body["param"] == "n"
    assert _sim_requests(gateway) == []
    assert gateway.balance() == before
    from billing.services import billing_account_for_org

    assert billing_account_for_org(org_id=gateway.org.id).held_units == 0


def test_upstream_error_mid_stream_is_reported_in_callers_format(gateway):
    with httpx.stream(
        "POST",
        gateway.openai_base + "/chat/completions",
        headers={"Authorization": f"Bearer {gateway.secret}"},
        json={
            "model": CLAUDE,
            "max_tokens": 100,
            "stream": True,
            "messages": [
                {
                    "role": "user",
                    "content": "x [[sim tokens=40 chunks=8 fault=error_mid_stream fault_after=3]]",
                }
            ],
        },
        timeout=10,
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    payloads = [json.loads(line[6:]) for line in lines if line != "data: [DONE]"]
    assert "data: [DONE]" not in lines
    assert "error" in payloads[-1]
    assert all("type" not in p or p.get("object") for p in payloads)  # no Anthropic events leak through
    (record,) = gateway.wait_settled(1)
    assert record.status == "upstream_error"
    assert record.cost_units > 0  # output was produced: charged, never zero


def test_relay_call_translates_too(gateway):
    """The non-HTTP entry (batch lines) reaches Claude with an OpenAI-format body."""
    import asyncio

    from inference.endpoints import CHAT_COMPLETIONS
    from inference.relay import relay_call

    body = {
        "model": CLAUDE,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "batch line [[sim tokens=9]]"}],
    }
    status, data = asyncio.run(relay_call(key=gateway.key, endpoint=CHAT_COMPLETIONS, body=body))
    assert status == 200
    assert data["object"] == "chat.completion"
    assert data["usage"]["completion_tokens"] == 9
    (record,) = gateway.records()
    assert record.cost_units == _anthropic_cost(_only_upstream(gateway, "anthropic")["usage"])
