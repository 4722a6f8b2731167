"""The seed article's samples, unchanged but for api_key and base_url, against a live gateway.

Each successful call must debit the organization exactly the catalogue price of the usage
the upstream (the simulator) reported — computed here by hand from list prices.
"""

from __future__ import annotations

import base64
import io
import math

import pytest
from anthropic import Anthropic
from openai import OpenAI
from PIL import Image, ImageDraw

pytestmark = pytest.mark.django_db(transaction=True)

# List prices in nano-USD per 1M tokens (see models_catalog/seed.py).
GPT_4O_IN, GPT_4O_OUT = 2_500_000_000, 10_000_000_000
SONNET_IN, SONNET_OUT = 3_000_000_000, 15_000_000_000


def _cost(*pairs: tuple[int, int]) -> int:
    """ceil(Σ tokens × price / 10⁶): one rounding per request."""
    return math.ceil(sum(tokens * price for tokens, price in pairs) / 1_000_000)


def _jpeg(tmp_path, size=(640, 480)) -> str:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle([40, 40, 300, 200], fill="red")
    path = tmp_path / "image.jpg"
    image.save(path, "JPEG")
    return str(path)


def analyze_image_with_gpt4o(api_key, base_url, image_url, prompt="请详细描述这张图片的内容"):
    """使用 gpt-4o 进行图像内容分析 — the article's function, with only key and base URL swapped."""
    client = OpenAI(api_key=api_key, base_url=base_url)
    response = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": image_url}},
                ],
            }
        ],
        max_tokens=1000,
    )
    return response


def analyze_image_with_claude(api_key, base_url, image_path, question="分析这张图片的详细内容"):
    """使用 Claude 进行图像分析 — the article's function, with only key and base URL swapped."""
    with open(image_path, "rb") as image_file:
        image_data = base64.b64encode(image_file.read()).decode("utf-8")
    client = Anthropic(api_key=api_key, base_url=base_url)
    response = client.messages.create(
        model="claude-3-5-sonnet-20241022",
        max_tokens=1000,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": image_data},
                    },
                    {"type": "text", "text": question},
                ],
            }
        ],
    )
    return response


def test_gpt4o_image_url_sample(gateway):
    before = gateway.balance()
    response = analyze_image_with_gpt4o(
        gateway.secret,
        gateway.openai_base,
        "https://example.com/image.jpg",
        "这张图片里有什么物体?请详细说明。",
    )
    assert response.choices[0].message.content
    usage = response.usage
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    assert cached == 0
    expected = _cost((usage.prompt_tokens, GPT_4O_IN), (usage.completion_tokens, GPT_4O_OUT))
    assert before - gateway.balance() == expected
    (record,) = gateway.records()
    assert (record.model, record.status, record.cost_units) == ("gpt-4o", "ok", expected)
    assert record.input_tokens == usage.prompt_tokens
    assert record.output_tokens == usage.completion_tokens


def test_claude_base64_sample_with_base_url_ending_in_v1(gateway, tmp_path):
    before = gateway.balance()
    # Exactly as the article: base_url ends in /v1, so the SDK posts to /v1/v1/messages.
    response = analyze_image_with_claude(
        gateway.secret, gateway.url + "/v1", _jpeg(tmp_path), "请分析这张图片的艺术风格和构图特点"
    )
    assert response.content[0].text
    usage = response.usage
    # The simulator counted the 640×480 image by Anthropic's rule: ceil(640×480/750) = 410 tokens.
    assert usage.input_tokens >= 410
    expected = _cost((usage.input_tokens, SONNET_IN), (usage.output_tokens, SONNET_OUT))
    assert before - gateway.balance() == expected
    (record,) = gateway.records()
    assert (record.model, record.wire_format, record.cost_units) == (
        "claude-3-5-sonnet-20241022",
        "anthropic",
        expected,
    )


def test_wrong_gpt_image_1_recognition_attempt_is_refused_without_charge(gateway):
    before = gateway.balance()
    upstream_calls = gateway.simulator.app._seq
    client = OpenAI(api_key=gateway.secret, base_url=gateway.openai_base)
    # The article's wrong call: images.generate takes no image input. The SDK itself refuses the
    # unknown keyword before any request is sent…
    with pytest.raises(TypeError):
        client.images.generate(
            model="gpt-image-1", prompt="识别这张图片的内容", image_input="https://example.com/a.jpg"
        )
    # …and sent anyway (as extra_body), the gateway refuses it and names models that can read images.
    import openai

    with pytest.raises(openai.BadRequestError) as excinfo:
        client.images.generate(
            model="gpt-image-1",
            prompt="识别这张图片的内容",
            extra_body={"image_input": "https://example.com/a.jpg"},
        )
    assert "gpt-image-1" in excinfo.value.message
    assert "cannot read" in excinfo.value.message
    # Asking gpt-image-1 to describe an image through chat is refused the same way.
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(
            model="gpt-image-1",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "请描述这张图片的内容"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                    ],
                }
            ],
        )
    error = excinfo.value.body
    assert error["code"] == "model_capability_mismatch"
    assert error["type"] == "invalid_request_error"
    assert len(error["models_that_can"]) == 3
    assert "gpt-image-1" not in error["models_that_can"]
    assert gateway.balance() == before
    assert gateway.records() == []
    assert gateway.simulator.app._seq == upstream_calls  # nothing reached the upstream


def test_image_data_url_hold_uses_real_pixels_and_charge_is_exact(gateway):
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 1024), "blue").save(buffer, "PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    before = gateway.balance()
    response = analyze_image_with_gpt4o(gateway.secret, gateway.openai_base, data_url, "describe")
    usage = response.usage
    # The simulator counted the image with OpenAI's tile rule: 85 + 170 × 4 = 765 tokens.
    assert usage.prompt_tokens > 765
    expected = _cost((usage.prompt_tokens, GPT_4O_IN), (usage.completion_tokens, GPT_4O_OUT))
    assert before - gateway.balance() == expected
