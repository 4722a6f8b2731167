"""inference.translate: OpenAI chat ↔ Anthropic messages, requests, responses, usage and streams."""

from __future__ import annotations

import orjson
import pytest

from inference import translate
from inference.errors import InvalidRequest
from inference.usage import anthropic_usage, openai_chat_usage


def _events(raw: list[bytes]) -> list[tuple[str | None, object]]:
    """Parse SSE bytes into (event name, data) pairs."""
    out = []
    for item in raw:
        for frame in item.decode().split("\n\n"):
            if not frame.strip():
                continue
            name, data = None, None
            for line in frame.split("\n"):
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:] if line[6:] == "[DONE]" else orjson.loads(line[6:])
            out.append((name, data))
    return out


# --- requests ---------------------------------------------------------------------------------------


def test_openai_request_to_anthropic_maps_every_part():
    body = {
        "model": "claude-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "required",
        "stop": "END",
        "temperature": 1.6,
        "top_p": 0.9,
        "max_completion_tokens": 99,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    out = translate.openai_to_anthropic_request(body, model="claude-up", max_tokens=321)
    assert out["model"] == "claude-up"
    assert out["max_tokens"] == 321
    assert out["system"] == "Be brief."
    assert out["messages"][0] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        ],
    }
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
    }
    # The tool result and the next user turn share one user message (Anthropic alternates roles).
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "text", "text": "Thanks"},
        ],
    }
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert out["tool_choice"] == {"type": "any"}
    assert out["stop_sequences"] == ["END"]
    assert out["temperature"] == 1.0  # clamped to Anthropic's range
    assert out["top_p"] == 0.9
    assert out["stream"] is True
    assert "stream_options" not in out


def test_openai_json_mode_becomes_a_system_instruction_and_cached_system_keeps_blocks():
    body = {
        "model": "m",
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "Long", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "user", "content": "hi"},
        ],
        "response_format": {"type": "json_object"},
    }
    out = translate.openai_to_anthropic_request(body, model="m", max_tokens=10)
    assert out["system"] == [
        {"type": "text", "text": "Long", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": translate.JSON_INSTRUCTION},
    ]


def test_openai_request_errors_that_cant_be_translated():
    with pytest.raises(InvalidRequest):
        translate.openai_to_anthropic_request(
            {"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}, model="m", max_tokens=5
        )
    bad_args = {
        "model": "m",
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                ],
            }
        ],
    }
    with pytest.raises(InvalidRequest):
        translate.openai_to_anthropic_request(bad_args, model="m", max_tokens=5)


def test_anthropic_request_to_openai_maps_every_block():
    body = {
        "model": "gpt-x",
        "max_tokens": 77,
        "system": [{"type": "text", "text": "Sys", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "a", "n": 2}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "42"}],
                    },
                    {"type": "text", "text": "And?"},
                ],
            },
        ],
        "tools": [{"name": "lookup", "description": "Find", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "lookup", "disable_parallel_tool_use": True},
        "stop_sequences": ["X"],
        "temperature": 0.5,
        "top_k": 3,
        "metadata": {"user_id": "u1"},
        "stream": True,
    }
    out = translate.anthropic_to_openai_request(body, model="gpt-up")
    assert out["model"] == "gpt-up"
    assert out["max_tokens"] == 77
    assert out["messages"] == [
        {"role": "system", "content": "Sys"},  # markers dropped for OpenAI itself
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q":"a","n":2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "42"},
        {"role": "user", "content": "And?"},
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object"}, "description": "Find"},
        }
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert out["parallel_tool_calls"] is False
    assert out["stop"] == ["X"]
    assert out["temperature"] == 0.5
    assert "top_k" not in out
    assert out["user"] == "u1"
    assert out["stream_options"] == {"include_usage": True}


def test_anthropic_request_keeps_cache_markers_for_vendors_that_read_them():
    body = {
        "model": "q",
        "max_tokens": 5,
        "system": [{"type": "text", "text": "Sys", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
    }
    out = translate.anthropic_to_openai_request(body, model="qwen-vl-max", keep_cache_control=True)
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Sys", "cache_control": {"type": "ephemeral"}}
    ]


# --- responses and usage ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("stop_sequence", "stop")],
)
def test_anthropic_response_to_openai(stop_reason, finish_reason):
    message = {
        "id": "msg_1",
        "type": "message",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Hello "},
            {"type": "text", "text": "there"},
            {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": stop_reason,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 7,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
        },
    }
    out = translate.anthropic_to_openai_response(message)
    choice = out["choices"][0]
    assert choice["finish_reason"] == finish_reason
    assert choice["message"]["content"] == "Hello there"
    assert choice["message"]["tool_calls"] == [
        {"id": "toolu_9", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    ]
    assert out["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 7,
        "total_tokens": 137,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_creation_input_tokens": 20},
    }
    # Read back as the relay reads an OpenAI usage, it is the same Usage as the Anthropic one.
    assert openai_chat_usage(out["usage"]) == anthropic_usage(message["usage"], None)


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_openai_response_to_anthropic(finish_reason, stop_reason):
    completion = {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hi",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x":true}'},
                        }
                    ],
                },
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 9,
            "total_tokens": 59,
            "prompt_tokens_details": {"cached_tokens": 32},
        },
    }
    out = translate.openai_to_anthropic_response(completion)
    assert out["type"] == "message"
    assert out["stop_reason"] == stop_reason
    assert out["content"] == [
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": True}},
    ]
    assert out["usage"] == {
        "input_tokens": 18,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 32,
        "output_tokens": 9,
    }
    assert anthropic_usage(out["usage"], None) == openai_chat_usage(completion["usage"])


def test_grok_reasoning_outside_completion_tokens_is_output_in_both_readings():
    usage = {"prompt_tokens": 20, "completion_tokens": 16, "total_tokens": 43}  # 7 reasoning tokens
    assert translate.openai_usage_to_anthropic(usage)["output_tokens"] == 23
    assert openai_chat_usage(usage).output_tokens == 23


# --- streams ----------------------------------------------------------------------------------------


def _anthropic_stream_events():
    return [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "model": "claude-x",
                "usage": {
                    "input_tokens": 12,
                    "cache_read_input_tokens": 5,
                    "cache_creation_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"ci'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'ty":"Paris"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
        {"type": "message_stop"},
    ]


@pytest.mark.parametrize("include_usage", [True, False])
def test_anthropic_stream_to_openai_chunks(include_usage):
    stream = translate.AnthropicToOpenAIStream(include_usage=include_usage)
    raw = [b for event in _anthropic_stream_events() for b in stream.feed(event)]
    events = _events(raw)
    assert events[-1] == (None, "[DONE]")
    chunks = [data for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Let me check."
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "w", "arguments": ""},
    }
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"city":"Paris"}'
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finishing] == ["tool_calls"]
    usage_chunks = [c for c in chunks if not c["choices"]]
    if include_usage:
        assert usage_chunks[0]["usage"] == {
            "prompt_tokens": 17,
            "completion_tokens": 30,
            "total_tokens": 47,
            "prompt_tokens_details": {"cached_tokens": 5},
        }
    else:
        assert usage_chunks == []
        assert all("usage" not in c for c in chunks)


def _openai_chunks(*, usage_on_finish: bool):
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o"}
    usage = {
        "prompt_tokens": 40,
        "completion_tokens": 11,
        "total_tokens": 51,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    chunks = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        },
        {**base, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "w", "arguments": ""},
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ],
        },
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]},
                    "finish_reason": None,
                }
            ],
        },
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
                    "finish_reason": None,
                }
            ],
        },
    ]
    if usage_on_finish:  # Gemini
        chunks.append(
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": usage}
        )
    else:
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks


@pytest.mark.parametrize("usage_on_finish", [False, True])
def test_openai_stream_to_anthropic_events(usage_on_finish):
    stream = translate.OpenAIToAnthropicStream()
    raw = [b for chunk in _openai_chunks(usage_on_finish=usage_on_finish) for b in stream.feed(chunk)]
    raw += stream.done()
    events = _events(raw)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "w", "input": {}}
    assert [e[1]["index"] for e in events[1:9]] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert events[6][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"a":'}
    delta = events[9][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {
        "input_tokens": 40,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 11,
    }
    assert stream.done() == []  # closes once
