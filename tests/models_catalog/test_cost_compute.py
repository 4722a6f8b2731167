"""cost_compute against hand-computed costs. 1 unit = 1e-9 USD; prices per 1M tokens, so a
price of $2.50/1M = 2,500,000,000 units/1M = 2,500 units per token."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest

from models_catalog.errors import InvalidUsage
from models_catalog.info import Usage
from models_catalog.pricing import cost_compute, image_input_tokens, units_to_usd


def cost(model, **usage_and_kwargs):
    kwargs = {k: usage_and_kwargs.pop(k) for k in ("plan_multiplier", "batch", "at") if k in usage_and_kwargs}
    return cost_compute(model=model, usage=Usage(**usage_and_kwargs), **kwargs)


def test_gpt_4o_image_high_and_low_detail(resolve):
    gpt4o = resolve("gpt-4o")
    high = image_input_tokens(model=gpt4o, width=1024, height=1024, detail="high")  # 765
    low = image_input_tokens(model=gpt4o, width=1024, height=1024, detail="low")  # 85
    # high: 1000 × 2,500 + 765 × 2,500 + 500 × 10,000 = 2,500,000 + 1,912,500 + 5,000,000
    result = cost(gpt4o, input_tokens=1000, image_input_tokens=high, output_tokens=500)
    assert result.total_units == 9_412_500
    assert units_to_usd(result.total_units) == "0.0094125"
    assert [(line.item, line.quantity) for line in result.lines] == [
        ("input", 1000),
        ("image_input", 765),
        ("output", 500),
    ]
    # low: 2,500,000 + 85 × 2,500 (212,500) + 5,000,000
    assert cost(gpt4o, input_tokens=1000, image_input_tokens=low, output_tokens=500).total_units == 7_712_500


def test_claude_image(resolve):
    sonnet = resolve("claude-sonnet-4-5")
    image = image_input_tokens(model=sonnet, width=1024, height=1024)  # ceil(1,048,576 / 750) = 1399
    # $3 / $15 per 1M → 3,000 / 15,000 units per token:
    # 1000 × 3,000 + 1399 × 3,000 + 500 × 15,000 = 3,000,000 + 4,197,000 + 7,500,000
    assert (
        cost(sonnet, input_tokens=1000, image_input_tokens=image, output_tokens=500).total_units == 14_697_000
    )


def test_gpt_image_1_output_by_tokens(resolve):
    gpt_image = resolve("gpt-image-1")
    # one 1024×1024 high-quality image = 4160 output tokens at $40/1M (40,000 units/token)
    # = 166,400,000; the 50-token prompt at $5/1M = 50 × 5,000 = 250,000
    result = cost(
        gpt_image, input_tokens=50, images_generated=1, image_size="1024x1024", image_quality="high"
    )
    assert result.total_units == 166_650_000
    assert units_to_usd(result.total_units) == "0.16665"
    # reported tokens win over the size/quality table: 1056 (medium) × 40,000 = 42,240,000
    assert cost(gpt_image, image_output_tokens=1056).total_units == 42_240_000
    # an edit: input image tokens at the image input price, $10/1M = 10,000 units/token: 194 × 10,000
    assert cost(gpt_image, image_input_tokens=194).total_units == 1_940_000


def test_dall_e_3_per_image(resolve):
    dalle = resolve("dall-e-3")
    # HD 1024×1024 = $0.08 each → 2 × 80,000,000
    assert (
        cost(dalle, images_generated=2, image_size="1024x1024", image_quality="hd").total_units == 160_000_000
    )
    with pytest.raises(InvalidUsage):
        cost(dalle, images_generated=1, image_size="512x512", image_quality="standard")


def test_cached_tokens(resolve):
    gpt4o = resolve("gpt-4o")
    # 10,000 × 2,500 + 90,000 cached × 1,250 + 1,000 × 10,000 = 25,000,000 + 112,500,000 + 10,000,000
    result = cost(gpt4o, input_tokens=10_000, cached_input_tokens=90_000, output_tokens=1_000)
    assert result.total_units == 147_500_000
    sonnet = resolve("claude-sonnet-4-5")
    # cache write $3.75 → 3,750/token; cache read $0.30 → 300/token:
    # 2,000 × 3,750 + 8,000 × 300 + 100 × 3,000 = 7,500,000 + 2,400,000 + 300,000
    assert cost(
        sonnet, cache_write_tokens=2_000, cached_input_tokens=8_000, input_tokens=100
    ).total_units == (10_200_000)


def test_batch_discount(resolve):
    gpt4o = resolve("gpt-4o")
    # list: 1000 × 2,500 + 500 × 10,000 = 7,500,000; batch 50% → 3,750,000
    assert cost(gpt4o, input_tokens=1000, output_tokens=500).total_units == 7_500_000
    assert cost(gpt4o, input_tokens=1000, output_tokens=500, batch=True).total_units == 3_750_000
    # grok-2-vision has no batch discount in the catalogue: unchanged
    grok = resolve("grok-2-vision-1212")
    assert cost(grok, input_tokens=1000, batch=True).total_units == cost(grok, input_tokens=1000).total_units


def test_plan_multiplier(resolve):
    gpt4o = resolve("gpt-4o")
    # 7,500,000 × 3/2 = 11,250,000; with batch: 7,500,000 × 1/2 × 9/10 = 3,375,000
    assert (
        cost(gpt4o, input_tokens=1000, output_tokens=500, plan_multiplier=Fraction(3, 2)).total_units
        == 11_250_000
    )
    assert (
        cost(gpt4o, input_tokens=1000, output_tokens=500, batch=True, plan_multiplier="9/10").total_units
        == 3_375_000
    )
    with pytest.raises(InvalidUsage):
        cost(gpt4o, input_tokens=1, plan_multiplier=1.1)  # no floats near money
    with pytest.raises(InvalidUsage):
        cost(gpt4o, input_tokens=1, plan_multiplier=0)


def test_rounding_happens_once(catalogue):
    from models_catalog.models import AiModel
    from models_catalog.selectors import model_resolve
    from models_catalog.services import price_create

    AiModel.objects.create(
        model_id="tiny",
        display_name="Tiny",
        vendor="local",
        input_modalities=["text"],
        output_modalities=["text"],
    )
    # 0.4 units per token for input, cached input and output ($0.0004 per 1M tokens)
    price_create(
        model_id="tiny",
        effective_from=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        input_per_mtok=400_000,
        output_per_mtok=400_000,
        cached_input_per_mtok=400_000,
    )
    tiny = model_resolve("tiny")
    result = cost(tiny, input_tokens=1, cached_input_tokens=1, output_tokens=1)
    # exact: 0.4 + 0.4 + 0.4 = 1.2 units → ceil once = 2 (rounding each line would give 3)
    assert result.subtotal == Fraction(6, 5)
    assert result.total_units == 2
    # with a 2/3 plan: 1.2 × 2/3 = 0.8 → 1 (rounding before the multiplier would give ceil(2 × 2/3) = 2)
    assert (
        cost(tiny, input_tokens=1, cached_input_tokens=1, output_tokens=1, plan_multiplier="2/3").total_units
        == 1
    )


def test_usage_validation(resolve):
    with pytest.raises(InvalidUsage):
        cost(resolve("gpt-4o"), input_tokens=-1)
    assert cost(resolve("gpt-4o")).total_units == 0


def test_breakdown_renders_exact_amounts(resolve):
    data = cost(resolve("gpt-4o-mini"), input_tokens=3, output_tokens=1, batch=True).as_dict()
    # 3 × 150 + 1 × 600 = 1,050 units; × 1/2 = 525
    assert data["subtotal_units"] == "1050"
    assert data["batch_factor"] == "0.5"
    assert data["total_units"] == 525
    assert data["total_usd"] == "0.000000525"
    assert data["lines"][0] == {
        "item": "input",
        "quantity": 3,
        "unit": "1M tokens",
        "unit_price_units": 150_000_000,
        "unit_price_usd": "0.15",
        "amount_units": "450",
    }
