"""The simulator speaks OpenAI chat / embeddings / images / models, checked with the real SDK."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math

import httpx
import openai
import pytest
from PIL import Image

from inference.simulator import usage as rules

from .helpers import data_url, png

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a place",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}


def test_chat_non_stream_text_and_usage(oai):
    messages = [
        {"role": "system", "content": "You are terse."},  # 14 bytes → 4 tokens
        {"role": "user", "content": "Hello there"},  # 11 bytes → 3 tokens
    ]
    r = oai.chat.completions.create(model="gpt-4o", messages=messages)
    assert r.object == "chat.completion"
    assert r.model == "gpt-4o"
    choice = r.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content.startswith("Simulated reply from gpt-4o: ")
    assert len(choice.message.content.encode()) == 4 * rules.DEFAULT_OUTPUT_TOKENS
    # (4 + 4) + (4 + 3) by the documented rule, and the pure function agrees
    assert r.usage.prompt_tokens == 15
    assert rules.count_openai_prompt({"model": "gpt-4o", "messages": messages}).total == 15
    assert r.usage.completion_tokens == 16
    assert r.usage.total_tokens == 31
    assert r.usage.prompt_tokens_details.cached_tokens == 0


def test_chat_tokens_directive_and_max_tokens(oai):
    r = oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[sim tokens=500]] write"}]
    )
    assert r.usage.completion_tokens == 500
    assert len(r.choices[0].message.content.encode()) == 2000
    r = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "[[sim tokens=500]] write"}],
        max_completion_tokens=40,
    )
    assert r.usage.completion_tokens == 40
    assert r.choices[0].finish_reason == "length"
    assert len(r.choices[0].message.content.encode()) == 160


def test_chat_stream_with_include_usage(oai):
    messages = [{"role": "user", "content": "Tell me [[sim tokens=30 chunks=10]]"}]
    stream = oai.chat.completions.create(
        model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(contents) == 10
    text = "".join(contents)
    assert text.startswith("Simulated reply from gpt-4o")
    assert len(text.encode()) == 120
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.completion_tokens == 30
    assert (
        last.usage.prompt_tokens == rules.count_openai_prompt({"model": "gpt-4o", "messages": messages}).total
    )
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_without_include_usage_has_no_usage_chunk(oai):
    chunks = list(
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert all(c.choices for c in chunks)
    assert all(getattr(c, "usage", None) is None for c in chunks)


def test_image_data_url_usage_follows_tile_rule(oai):
    text = "What is in this image?"
    content = [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": data_url(1024, 1024)}},
    ]
    r = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    # 1024×1024: no 2048 fit, shortest side → 768, 2×2 tiles → 85 + 4·170 = 765
    assert rules.openai_image_tokens(1024, 1024) == 765
    assert r.usage.prompt_tokens == 4 + math.ceil(len(text) / 4) + 765

    low = [{"type": "image_url", "image_url": {"url": data_url(1024, 1024), "detail": "low"}}]
    r = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": low}])
    assert r.usage.prompt_tokens == 4 + 85

    tall = [{"type": "image_url", "image_url": {"url": data_url(2048, 4096)}}]
    r = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": tall}])
    assert r.usage.prompt_tokens == 4 + 1105  # OpenAI's documented 2048×4096 example

    url = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    r = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": url}])
    assert r.usage.prompt_tokens == 4 + rules.OPENAI_URL_IMAGE_TOKENS["auto"]


def test_invalid_image_data_is_a_400(oai):
    bad = [
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"nope").decode()},
        }
    ]
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": bad}])
    assert err.value.body["type"] == "invalid_request_error"


def test_image_model_is_not_a_chat_model(oai):
    content = [{"type": "image_url", "image_url": {"url": data_url(64, 64)}}]
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model="gpt-image-1", messages=[{"role": "user", "content": content}])
    assert "not a chat model" in err.value.message


def test_tool_call_round_trip_non_stream(oai):
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    r = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert args == {"location": "Paris", "unit": "celsius"}
    assert r.usage.completion_tokens == rules.text_tokens("get_weather") + rules.text_tokens(
        call.function.arguments
    )

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18°C and sunny"},
    ]
    r2 = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    assert r2.choices[0].finish_reason == "stop"
    assert "18°C and sunny" in r2.choices[0].message.content
    assert r2.usage.completion_tokens * 4 == len(r2.choices[0].message.content.encode())


def test_tool_call_round_trip_stream(oai):
    messages = [{"role": "user", "content": "weather in Paris please"}]
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=messages,
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    call_id, name, args, finish, argument_deltas = None, "", "", None, 0
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            assert tc.index == 0
            call_id = tc.id or call_id
            if tc.function and tc.function.name:
                name += tc.function.name
            if tc.function and tc.function.arguments:
                args += tc.function.arguments
                argument_deltas += 1
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert name == "get_weather"
    assert argument_deltas > 1
    assert json.loads(args)["location"] == "Paris"

    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "rainy, 9 degrees"},
    ]
    text = ""
    for chunk in oai.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[WEATHER_TOOL], stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert "rainy, 9 degrees" in text


def test_forced_tool_choice_and_tool_without_call(oai):
    r = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hello"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    r = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], tools=[WEATHER_TOOL]
    )
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "stop"


def test_tool_result_without_preceding_call_is_rejected(oai):
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "user", "content": "x"},
                {"role": "tool", "tool_call_id": "call_1", "content": "y"},
            ],
        )


def test_json_mode(oai):
    r = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Reply in JSON"}],
        response_format={"type": "json_object"},
    )
    content = r.choices[0].message.content
    assert isinstance(json.loads(content), dict)
    assert r.usage.completion_tokens == len(content.encode()) // 4
    assert len(content.encode()) % 4 == 0

    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    r = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Reply in JSON"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    assert json.loads(r.choices[0].message.content) == {"name": "simulated", "age": 1}


def test_embeddings_float_and_base64(oai):
    r = oai.embeddings.create(
        model="text-embedding-3-small", input=["hello world", "bye"], encoding_format="float"
    )
    assert [d.index for d in r.data] == [0, 1]
    vec = r.data[0].embedding
    assert len(vec) == 1536
    assert abs(sum(v * v for v in vec) - 1.0) < 1e-3
    assert r.usage.prompt_tokens == rules.text_tokens("hello world") + rules.text_tokens("bye") == 4
    assert r.usage.total_tokens == 4
    # the SDK's default asks for base64 and decodes it: same deterministic vector
    again = oai.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert again.data[0].embedding == pytest.approx(vec, abs=1e-7)
    other = oai.embeddings.create(
        model="text-embedding-3-small", input="hello world!", encoding_format="float"
    )
    assert other.data[0].embedding != vec
    small = oai.embeddings.create(model="text-embedding-3-large", input=[[1, 2, 3]], dimensions=256)
    assert len(small.data[0].embedding) == 256
    assert small.usage.prompt_tokens == 3


def test_images_generate_gpt_image_and_dalle_url(oai, sim):
    r = oai.images.generate(model="gpt-image-1", prompt="a red fox", size="1024x1536", quality="low")
    (item,) = r.data
    img = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
    assert img.format == "PNG"
    assert img.size == (1024, 1536)
    assert r.usage.output_tokens == 408
    assert r.usage.input_tokens == rules.text_tokens("a red fox") == r.usage.input_tokens_details.text_tokens
    assert r.usage.total_tokens == r.usage.input_tokens + 408

    r = oai.images.generate(model="dall-e-3", prompt="a red fox", response_format="url")
    assert r.usage is None
    fetched = httpx.get(r.data[0].url)
    assert fetched.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(fetched.content)).size == (1024, 1024)


def test_images_edit_multipart(oai):
    r = oai.images.edit(
        model="gpt-image-1",
        image=("input.png", png(1024, 1024), "image/png"),
        prompt="add a hat",
    )
    img = Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json)))
    assert img.size == (1024, 1024)
    assert r.usage.input_tokens_details.image_tokens == 765
    assert r.usage.input_tokens == 765 + rules.text_tokens("add a hat")
    assert r.usage.output_tokens == rules.GPT_IMAGE_OUTPUT_TOKENS["medium"]["1024x1024"]

    two = oai.images.edit(
        model="gpt-image-1",
        image=[("a.png", png(512, 512), "image/png"), ("b.png", png(512, 512), "image/png")],
        prompt="merge",
    )
    assert two.usage.input_tokens_details.image_tokens == 2 * 255


def test_models_list(oai):
    ids = {m.id for m in oai.models.list()}
    assert {"gpt-4o", "gpt-image-1", "text-embedding-3-small", "claude-3-5-sonnet-20241022"} <= ids


def test_async_client_chat_and_stream(sim):
    async def run():
        async with openai.AsyncOpenAI(api_key="sk-async", base_url=f"{sim.url}/v1", max_retries=0) as client:
            r = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            return r.choices[0].message.content, text

    whole, streamed = asyncio.run(run())
    assert whole == streamed


@pytest.mark.parametrize(
    ("base_path", "model"),
    [("/compatible-mode/v1", "qwen-plus"), ("/v1beta/openai", "gemini-2.0-flash"), ("/v1", "grok-3")],
)
def test_openai_compatible_vendor_paths(sim, base_path, model):
    with openai.OpenAI(api_key="vendor-key", base_url=sim.url + base_path, max_retries=0) as client:
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content.startswith(f"Simulated reply from {model}")
        assert r.usage.completion_tokens == 16
        chunks = list(
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    usage_chunks = [c for c in chunks if c.usage]
    assert len(usage_chunks) == 1
    if model.startswith("gemini"):
        # Gemini's compatible endpoint attaches usage to the finishing chunk
        assert usage_chunks[0].choices[0].finish_reason == "stop"
    else:
        assert usage_chunks[0].choices == []


def test_grok_reasoning_tokens_are_outside_completion_tokens(oai):
    msg = [{"role": "user", "content": "think [[sim reasoning=100]]"}]
    grok = oai.chat.completions.create(model="grok-3-mini", messages=msg)
    assert grok.usage.completion_tokens == 16
    assert grok.usage.completion_tokens_details.reasoning_tokens == 100
    assert grok.usage.total_tokens == grok.usage.prompt_tokens + 116
    o4 = oai.chat.completions.create(model="o4-mini", messages=msg)
    assert o4.usage.completion_tokens == 116
    assert o4.usage.total_tokens == o4.usage.prompt_tokens + 116


def test_openai_implicit_prefix_cache(oai):
    long_system = "x" * 4400  # 1100 tokens
    messages = [{"role": "system", "content": long_system}, {"role": "user", "content": "first"}]
    first = oai.chat.completions.create(model="gpt-4o", messages=messages)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    messages[-1]["content"] = "second question"
    second = oai.chat.completions.create(model="gpt-4o", messages=messages)
    assert second.usage.prompt_tokens_details.cached_tokens == 4 + 1100
