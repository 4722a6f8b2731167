"""The simulator speaks Anthropic messages (JSON and SSE), checked with the real SDK."""

from __future__ import annotations

import asyncio
import json
import math

import anthropic
import httpx
import pytest

from inference.simulator import usage as rules

from .helpers import CLAUDE, b64png

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a place",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
}


def test_messages_create_with_system_prompt(claude):
    r = claude.messages.create(
        model=CLAUDE,
        max_tokens=256,
        system="You are a pirate.",  # 17 bytes → 5 tokens
        messages=[{"role": "user", "content": "Hello, Claude"}],  # 13 bytes → 4 tokens
    )
    assert r.type == "message"
    assert r.role == "assistant"
    assert r.model == CLAUDE
    assert r.stop_reason == "end_turn"
    (block,) = r.content
    assert block.type == "text"
    assert block.text.startswith(f"Simulated reply from {CLAUDE}")
    assert r.usage.input_tokens == 5 + 4 + 4
    assert r.usage.output_tokens == 16
    assert r.usage.cache_creation_input_tokens == 0
    assert r.usage.cache_read_input_tokens == 0

    blocks = claude.messages.create(
        model=CLAUDE,
        max_tokens=256,
        system=[{"type": "text", "text": "You are a pirate."}, {"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello, Claude"}]}],
    )
    assert blocks.usage.input_tokens == 5 + 3 + 4 + 4


def test_max_tokens_caps_output(claude):
    r = claude.messages.create(
        model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "go [[sim tokens=300]]"}]
    )
    assert r.stop_reason == "max_tokens"
    assert r.usage.output_tokens == 10
    assert len(r.content[0].text.encode()) == 40


def test_stream_helper(claude):
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=1024,
        messages=[{"role": "user", "content": "Tell me [[sim tokens=40 chunks=8]]"}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 8
    assert "".join(pieces) == final.content[0].text
    assert len(final.content[0].text.encode()) == 160
    assert final.usage.output_tokens == 40
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 4 + rules.text_tokens("Tell me [[sim tokens=40 chunks=8]]")


def test_raw_stream_event_order(claude, sim):
    body = {
        "model": CLAUDE,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi [[sim tokens=8 chunks=2]]"}],
        "stream": True,
    }
    events = claude.messages.create(**body)
    types = [e.type for e in events]
    assert types == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    # the SDK hides `ping`; on the wire it follows the first content_block_start
    raw = httpx.post(
        f"{sim.url}/v1/messages",
        json=body,
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    names = [line[7:] for line in raw.text.splitlines() if line.startswith("event: ")]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    datas = [json.loads(line[6:]) for line in raw.text.splitlines() if line.startswith("data: ")]
    start_usage = datas[0]["message"]["usage"]
    assert set(start_usage) >= {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"}
    assert datas[-2]["usage"] == {"output_tokens": 8}
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"


def test_base64_image_usage_rule(claude):
    def ask(source):
        return claude.messages.create(
            model=CLAUDE,
            max_tokens=64,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": source}, {"type": "text", "text": "Describe"}],
                }
            ],
        )

    r = ask({"type": "base64", "media_type": "image/png", "data": b64png(1024, 1024)})
    assert rules.anthropic_image_tokens(1024, 1024) == math.ceil(1024 * 1024 / 750) == 1399
    assert r.usage.input_tokens == 4 + 1399 + 2

    big = ask({"type": "base64", "media_type": "image/png", "data": b64png(3000, 2000)})
    # long edge 3000 → 1568: 1568×1045 = 1,638,560 px > 1.15 MP → ×√(1.15e6/1638560) → 1313×875
    assert rules.anthropic_image_size(3000, 2000) == (1313, 875)
    assert big.usage.input_tokens == 4 + math.ceil(1313 * 875 / 750) + 2

    url = ask({"type": "url", "url": "https://example.com/cat.jpg"})
    assert url.usage.input_tokens == 4 + rules.ANTHROPIC_URL_IMAGE_TOKENS + 2


def test_image_media_type_mismatch_is_a_400(claude):
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.messages.create(
            model=CLAUDE,
            max_tokens=64,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": b64png(8, 8)},
                        }
                    ],
                }
            ],
        )
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert "media type" in err.value.body["error"]["message"]


def test_tool_use_round_trip(claude):
    messages = [{"role": "user", "content": "What's the weather like in Paris?"}]
    r = claude.messages.create(model=CLAUDE, max_tokens=512, tools=[WEATHER_TOOL], messages=messages)
    assert r.stop_reason == "tool_use"
    text, tool_use = r.content
    assert text.type == "text"
    assert tool_use.type == "tool_use"
    assert tool_use.name == "get_weather"
    assert tool_use.input == {"location": "Paris", "unit": "celsius"}
    assert r.usage.output_tokens == (
        rules.text_tokens(text.text)
        + rules.text_tokens("get_weather")
        + rules.text_tokens('{"location":"Paris","unit":"celsius"}')
    )
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "15 degrees, cloudy"}],
        },
    ]
    r2 = claude.messages.create(model=CLAUDE, max_tokens=512, tools=[WEATHER_TOOL], messages=messages)
    assert r2.stop_reason == "end_turn"
    assert "15 degrees, cloudy" in r2.content[0].text


def test_tool_use_stream_input_json_deltas(claude):
    kinds = []
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=512,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather in Paris?"}],
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                kinds.append(event.delta.type)
        final = stream.get_final_message()
    assert "input_json_delta" in kinds
    assert kinds.count("input_json_delta") > 1
    assert final.stop_reason == "tool_use"
    assert final.content[1].input == {"location": "Paris", "unit": "celsius"}


def test_tool_result_without_tool_use_is_rejected(claude):
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.messages.create(
            model=CLAUDE,
            max_tokens=64,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}],
                }
            ],
        )
    assert "tool_use_id" in err.value.body["error"]["message"]


def test_system_role_inside_messages_is_rejected(claude):
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(
            model=CLAUDE,
            max_tokens=64,
            messages=[{"role": "system", "content": "no"}, {"role": "user", "content": "x"}],
        )


def test_cache_control_creation_then_read(claude):
    system_text = "You are a helpful assistant. " * 40  # 1160 bytes → 290 tokens
    system = [{"type": "text", "text": system_text, "cache_control": {"type": "ephemeral"}}]

    def ask(question: str):
        return claude.messages.create(
            model=CLAUDE, max_tokens=64, system=system, messages=[{"role": "user", "content": question}]
        )

    first = ask("Question one?")  # 13 bytes → 4 tokens
    assert first.usage.cache_creation_input_tokens == 290
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 290
    assert first.usage.input_tokens == 4 + 4
    second = ask("A different question?")  # 21 bytes → 6 tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == 290
    assert second.usage.input_tokens == 4 + 6
    # another model has its own cache
    other = claude.messages.create(
        model="claude-3-5-haiku-20241022",
        max_tokens=64,
        system=system,
        messages=[{"role": "user", "content": "x"}],
    )
    assert other.usage.cache_creation_input_tokens == 290


def test_cache_control_nested_breakpoints_and_1h_ttl(claude):
    tools = [{**WEATHER_TOOL, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    system = [{"type": "text", "text": "S" * 400, "cache_control": {"type": "ephemeral"}}]  # 100 tokens
    tool_tokens = rules.json_tokens(WEATHER_TOOL)
    first = claude.messages.create(
        model=CLAUDE, max_tokens=64, tools=tools, system=system, messages=[{"role": "user", "content": "hi"}]
    )
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == tool_tokens
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 100
    system2 = [{"type": "text", "text": "T" * 400, "cache_control": {"type": "ephemeral"}}]
    second = claude.messages.create(
        model=CLAUDE, max_tokens=64, tools=tools, system=system2, messages=[{"role": "user", "content": "hi"}]
    )
    assert second.usage.cache_read_input_tokens == tool_tokens
    assert second.usage.cache_creation_input_tokens == 100


def test_count_tokens(claude):
    r = claude.messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "Hello, Claude"}])
    assert r.input_tokens == 8


def test_async_anthropic_client(sim):
    async def run():
        async with anthropic.AsyncAnthropic(api_key="k-async", base_url=sim.url, max_retries=0) as client:
            r = await client.messages.create(
                model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            )
            async with client.messages.stream(
                model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                text = "".join([t async for t in stream.text_stream])
            return r.content[0].text, text

    whole, streamed = asyncio.run(run())
    assert whole == streamed


def test_anthropic_models_list(claude):
    ids = [m.id for m in claude.models.list()]
    assert CLAUDE in ids
    assert all(i.startswith("claude") for i in ids)


def test_missing_anthropic_version_is_a_400(sim):
    r = httpx.post(
        f"{sim.url}/v1/messages",
        json={"model": CLAUDE, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": "k"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
