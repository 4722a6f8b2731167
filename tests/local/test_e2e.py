"""The issue's end-to-end test: a Pillow-rendered image with known text → the `openai` SDK →
the live gateway → the local OCR model → the known text back, and the org charged exactly the
catalogue price.

The gateway is the real one (tests/inference/conftest.py): the relay dispatches ``local``
channels to ``inference.local.adapter.open_local``.
"""

from __future__ import annotations

import base64

import pytest

from .conftest import render_png, require_rapidocr

INSTRUCTION = "Read the text in this image."  # 28 UTF-8 bytes → 7 tokens
KNOWN = "MODELGATE 2026"  # 14 bytes → 4 output tokens

# The catalogue price, by hand: 1 image × 1000 tokens × $1/1M (= $0.001 per image)
# + 7 text tokens × $1/1M + 4 output tokens × $0.10/1M, in nano-USD.
EXPECTED_UNITS = 1000 * 1_000 + 7 * 1_000 + 4 * 100
assert EXPECTED_UNITS == 1_007_400


@pytest.fixture
def local_gateway(gateway):
    require_rapidocr()
    from models_catalog.services import catalogue_changed, channels_sync_local

    channels_sync_local(enabled=True)
    catalogue_changed()
    return gateway


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def assert_charged_catalogue_price(gateway, before: int):
    (record,) = gateway.wait_settled(1)
    from models_catalog.models import Channel

    assert record.model == "local-ocr"
    assert record.channel_id == Channel.objects.get(name="local:ocr").pk  # not the simulator
    assert record.usage_source == "upstream"  # the adapter's usage, not an estimate
    assert record.cost_units == EXPECTED_UNITS
    assert before - gateway.balance() == EXPECTED_UNITS
    from billing.selectors import ledger_audit

    assert ledger_audit() == []


def test_openai_sdk_reads_the_known_text_and_pays_the_catalogue_price(local_gateway):
    import openai

    gateway = local_gateway
    before = gateway.balance()
    client = openai.OpenAI(api_key=gateway.secret, base_url=gateway.openai_base, max_retries=0, timeout=60)
    completion = client.chat.completions.create(
        model="local-ocr",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": INSTRUCTION},
                    {"type": "image_url", "image_url": {"url": data_url(render_png(KNOWN))}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == KNOWN
    assert completion.usage.prompt_tokens == 1007
    assert completion.usage.completion_tokens == 4
    assert_charged_catalogue_price(gateway, before)


def test_openai_sdk_stream_and_json_mode(local_gateway):
    import json

    import openai

    gateway = local_gateway
    client = openai.OpenAI(api_key=gateway.secret, base_url=gateway.openai_base, max_retries=0, timeout=60)
    stream = client.chat.completions.create(
        model="local-ocr",
        stream=True,
        response_format={"type": "json_object"},
        messages=[
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": data_url(render_png(KNOWN))}}],
            }
        ],
    )
    content = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    document = json.loads(content)
    assert [line["text"] for line in document["lines"]] == [KNOWN]
    assert len(document["lines"][0]["box"]) == 4
    gateway.wait_settled(1)
    # 1000 image tokens (no text part) + ceil(len(document) / 4) output tokens at $0.10/1M.
    expected = 1000 * 1_000 + -(-len(content.encode()) // 4) * 100
    assert 5_000_000_000 - gateway.balance() == expected


def test_anthropic_sdk_reads_the_known_text(local_gateway):
    import anthropic

    gateway = local_gateway
    before = gateway.balance()
    client = anthropic.Anthropic(api_key=gateway.secret, base_url=gateway.url, max_retries=0, timeout=60)
    image = base64.b64encode(render_png(KNOWN)).decode()
    message = client.messages.create(
        model="local-ocr",
        max_tokens=256,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
                    {"type": "text", "text": INSTRUCTION},
                ],
            }
        ],
    )
    assert message.content[0].text == KNOWN
    assert_charged_catalogue_price(gateway, before)


def test_text_only_request_is_refused_by_the_guard_before_any_money_moves(local_gateway):
    """local-ocr reads images only: a request without one is a capability mismatch, answered
    before a hold is placed, naming models that can answer it."""
    import anthropic
    import openai

    from billing.models import Hold

    gateway = local_gateway
    before = gateway.balance()
    client = openai.OpenAI(api_key=gateway.secret, base_url=gateway.openai_base, max_retries=0, timeout=60)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="local-ocr", messages=[{"role": "user", "content": "hello"}])
    error = info.value.body
    assert error["code"] == "model_capability_mismatch"
    assert error["message"].startswith("local-ocr reads the text in images; this request has no image.")
    assert error["models_that_can"]
    assert "local-ocr" not in error["models_that_can"]

    claude = anthropic.Anthropic(api_key=gateway.secret, base_url=gateway.url, max_retries=0, timeout=60)
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(
            model="local-ocr", max_tokens=50, messages=[{"role": "user", "content": "hello"}]
        )
    assert "this request has no image" in info.value.body["error"]["message"]

    assert not Hold.objects.filter(account__organization=gateway.org).exists()
    assert gateway.records() == []
    assert gateway.balance() == before
