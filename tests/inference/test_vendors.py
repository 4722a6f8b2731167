"""OpenAI-compatible vendors (xAI Grok, Qwen, Gemini's compatible endpoint) through the simulator,
with their quirks, in both formats — each charged exactly the catalogue's list price."""

from __future__ import annotations

import base64
import io
import math

import anthropic
import httpx
import openai
import pytest
from PIL import Image

pytestmark = pytest.mark.django_db(transaction=True)

M = 1_000_000_000
PRICES = {  # (input, output) in units per 1M tokens
    "grok-2-vision-1212": (2 * M, 10 * M),
    "qwen-vl-max": (800_000_000, 3_200_000_000),
    "qwen-vl-plus": (210_000_000, 630_000_000),
    "gemini-2.5-flash": (300_000_000, 2_500_000_000),
    "gemini-2.5-pro": (1_250_000_000, 10 * M),
}
CACHED = {"gemini-2.5-flash": 30_000_000, "gemini-2.5-pro": 125_000_000}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


def _oa(gw) -> openai.OpenAI:
    return openai.OpenAI(api_key=gw.secret, base_url=gw.openai_base, max_retries=0)


def _an(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=gw.secret, base_url=gw.url, max_retries=0)


def _upstream(gw) -> list[dict]:
    return httpx.get(gw.simulator.url + "/_sim/requests?body=1", timeout=5).json()["requests"]


def _cost(model: str, usage: dict) -> int:
    """List price of an OpenAI-format usage as the vendor reported it (reasoning outside
    completion_tokens — Grok — is output too: it is in total_tokens)."""
    price_in, price_out = PRICES[model]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    output = usage["total_tokens"] - usage["prompt_tokens"]
    return math.ceil(
        (
            (usage["prompt_tokens"] - cached) * price_in
            + cached * CACHED.get(model, price_in)
            + output * price_out
        )
        / 1_000_000
    )


def _png_data_url(w: int, h: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (0, 90, 0)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# --- Grok: reasoning tokens outside completion_tokens ------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_grok_reasoning_tokens_are_billed_as_output(gateway, stream):
    model = "grok-2-vision-1212"
    before = gateway.balance()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Think, then answer [[sim tokens=20 reasoning=7]]"},
                {"type": "image_url", "image_url": {"url": _png_data_url(512, 512)}},
            ],
        }
    ]
    if stream:
        chunks = list(
            _oa(gateway).chat.completions.create(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )
        usage = chunks[-1].usage
    else:
        usage = _oa(gateway).chat.completions.create(model=model, messages=messages).usage
    assert usage.completion_tokens == 20  # xAI leaves the 7 reasoning tokens out…
    assert usage.total_tokens == usage.prompt_tokens + 27  # …but counts them in the total
    (record,) = gateway.wait_settled(1)
    (upstream,) = _upstream(gateway)
    assert record.output_tokens == 27
    assert record.cost_units == _cost(model, upstream["usage"])
    assert record.cost_units == math.ceil((usage.prompt_tokens * 2 * M + 27 * 10 * M) / 1_000_000)
    assert before - gateway.balance() == record.cost_units


def test_grok_via_anthropic_sdk_reports_and_bills_reasoning_as_output(gateway):
    message = _an(gateway).messages.create(
        model="grok-2-vision-1212",
        max_tokens=100,
        messages=[{"role": "user", "content": "Hmm [[sim tokens=12 reasoning=5]]"}],
    )
    assert message.usage.output_tokens == 17
    (record,) = gateway.records()
    (upstream,) = _upstream(gateway)
    assert record.cost_units == _cost("grok-2-vision-1212", upstream["usage"])


# --- Gemini: usage on the finishing chunk, whole tool calls ----------------------------------------------


def test_gemini_stream_usage_on_the_finishing_chunk(gateway):
    before = gateway.balance()
    chunks = list(
        _oa(gateway).chat.completions.create(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "Hello [[sim tokens=24]]"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishing[0].usage is not None  # Gemini's quirk, passed through as is
    (record,) = gateway.wait_settled(1)
    (upstream,) = _upstream(gateway)
    assert finishing[0].usage.completion_tokens == record.output_tokens == 24
    assert record.cost_units == _cost("gemini-2.5-flash", upstream["usage"])
    assert before - gateway.balance() == record.cost_units


def test_gemini_stream_without_include_usage_hides_usage_but_charges(gateway):
    chunks = list(
        _oa(gateway).chat.completions.create(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "Hello [[sim tokens=10]]"}],
            stream=True,
        )
    )
    assert all(c.usage is None for c in chunks)
    (record,) = gateway.wait_settled(1)
    (upstream,) = _upstream(gateway)
    assert upstream["body"]["stream_options"] == {"include_usage": True}  # forced upstream
    assert record.output_tokens == 10
    assert record.usage_source == "upstream"


def test_gemini_pro_via_anthropic_sdk_stream_gets_usage_from_the_finishing_chunk(gateway):
    before = gateway.balance()
    with _an(gateway).messages.stream(
        model="gemini-2.5-pro",
        max_tokens=200,
        messages=[{"role": "user", "content": "Tell me [[sim tokens=18]]"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Simulated reply from gemini-2.5-pro")
    (record,) = gateway.wait_settled(1)
    (upstream,) = _upstream(gateway)
    assert final.usage.output_tokens == 18
    assert final.usage.input_tokens == upstream["usage"]["prompt_tokens"]
    assert record.cost_units == _cost("gemini-2.5-pro", upstream["usage"])
    assert before - gateway.balance() == record.cost_units


def test_gemini_streamed_tool_call_in_one_delta_both_formats(gateway):
    chunks = list(
        _oa(gateway).chat.completions.create(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "weather in Paris?"}],
            tools=[WEATHER],
            stream=True,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert len(calls) == 1
    assert calls[0].id.startswith("function-call-")
    assert calls[0].function.arguments == '{"location":"Paris"}'

    with _an(gateway).messages.stream(
        model="gemini-2.5-flash",
        max_tokens=100,
        tools=[{"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}],
        messages=[{"role": "user", "content": "weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    (tool_use,) = final.content
    assert (tool_use.type, tool_use.name, tool_use.input) == (
        "tool_use",
        "get_weather",
        {"location": "Paris"},
    )
    assert tool_use.id.startswith("function-call-")
    assert final.stop_reason == "tool_use"
    records = gateway.wait_settled(2)
    assert [r.cost_units for r in records] == [
        _cost("gemini-2.5-flash", u["usage"]) for u in _upstream(gateway)
    ]


# --- Qwen: explicit cache markers ------------------------------------------------------------------


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_qwen_cache_markers_are_kept_and_cache_tokens_recorded(gateway, sdk):
    model = "qwen-vl-max"
    manual = "Manual text. " * 80
    for question in ("One?", "Two?"):
        if sdk == "openai":
            _oa(gateway).chat.completions.create(
                model=model,
                messages=[
                    {
                        "role": "system",
                        "content": [{"type": "text", "text": manual, "cache_control": {"type": "ephemeral"}}],
                    },
                    {"role": "user", "content": question},
                ],
            )
        else:
            _an(gateway).messages.create(
                model=model,
                max_tokens=64,
                system=[{"type": "text", "text": manual, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": question}],
            )
    first, second = _upstream(gateway)
    assert first["body"]["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    written = first["usage"]["prompt_tokens_details"]["cache_creation_input_tokens"]
    read = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert written > 0
    assert read == written
    r1, r2 = gateway.records()
    assert (r1.cache_write_tokens, r1.cached_input_tokens) == (written, 0)
    assert (r2.cache_write_tokens, r2.cached_input_tokens) == (0, read)
    # Qwen has no separate cache prices here: every prompt token at the input price.
    assert r1.cost_units == _cost(model, {**first["usage"], "prompt_tokens_details": {}})
    assert r2.cost_units == _cost(model, {**second["usage"], "prompt_tokens_details": {}})


def test_qwen_vl_plus_stream_with_an_image(gateway):
    before = gateway.balance()
    chunks = list(
        _oa(gateway).chat.completions.create(
            model="qwen-vl-plus",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": _png_data_url(640, 480)}},
                        {"type": "text", "text": "Read it [[sim tokens=15]]"},
                    ],
                }
            ],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    (record,) = gateway.wait_settled(1)
    assert usage.completion_tokens == 15
    assert record.cost_units == _cost("qwen-vl-plus", usage.model_dump())
    assert before - gateway.balance() == record.cost_units
