"""Public /api/models/recommend and /api/models/estimate (anonymous)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def api(catalogue):
    return APIClient(enforce_csrf_checks=True)


def recommend(api, **params):
    response = api.get("/api/models/recommend", params)
    assert response.status_code == 200, response.content
    return response.json()


# The seed article's scenario table; claude-3-5-sonnet-20241022 is deprecated, so its
# replacement (claude-sonnet-4-5) stands in for it. "—" / "a dedicated … model" rows: None.
SCENARIOS = [
    ("general_vision", "gpt-4o", "claude-sonnet-4-5", "qwen-vl-max"),
    ("ocr_document", "gemini-2.5-pro", "gpt-4o", None),
    ("art_analysis", "claude-sonnet-4-5", "gpt-4o", "qwen-vl-plus"),
    ("medical_imaging", "gpt-4o", "claude-sonnet-4-5", None),
    ("traffic_realtime", "grok-2-vision-1212", "gpt-4o", None),
    ("product_recognition", "gpt-4o", "qwen-vl-max", None),
]


@pytest.mark.parametrize(("task", "best", "alternative", "economical"), SCENARIOS)
def test_recommendations_follow_the_seed_scenarios(api, resolve, task, best, alternative, economical):
    body = recommend(api, task=task)
    assert body["best"]["id"] == best
    assert body["alternative"]["id"] == alternative
    assert body["alternative"]["vendor"] != body["best"]["vendor"]
    if economical:
        assert body["economical"]["id"] == economical
    if body["economical"]:
        assert body["economical"]["reference_cost_units"] < body["best"]["reference_cost_units"]
        assert body["economical"]["score"] >= 75
    assert body["best"]["reason"].startswith("Highest strength")
    assert all(resolve(c["id"]).reads_images for c in body["ranked"])


def test_seed_claude_is_represented_by_its_replacement(api, resolve):
    assert resolve("claude-3-5-sonnet-20241022").replacement == recommend(api, task="art")["best"]["id"]


def test_recommend_image_generation_and_max_price(api):
    body = recommend(api, task="image_generation")
    assert body["best"]["id"] == "gpt-image-1"
    assert body["economical"]["id"] == "dall-e-3"
    assert body["price_basis"] == "USD per image (1024×1024)"
    cheap = recommend(api, task="general_vision", max_price="1.00")
    assert cheap["ranked"]
    assert all(r["pricing"]["units"]["input"] <= 1_000_000_000 for r in cheap["ranked"])
    assert cheap["best"]["id"] == "qwen-vl-max"  # strongest under $1/1M input (80 vs Haiku 80 — cheaper)


def test_recommend_bad_input(api):
    response = api.get("/api/models/recommend", {"task": "astrology"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "general_vision" in response.json()["error"]["extra"]["tasks"]
    assert api.get("/api/models/recommend", {"task": "ocr", "max_price": "cheap"}).status_code == 400


def estimate(api, payload, status=200):
    response = api.post("/api/models/estimate", payload, format="json")
    assert response.status_code == status, response.content
    return response.json()


def test_estimate_gpt_4o_image_high_and_low(api):
    payload = {
        "model": "gpt-4o",
        "input_tokens": 1000,
        "images": [{"width": 1024, "height": 1024, "detail": "high"}],
        "output_tokens": 500,
    }
    body = estimate(api, payload)
    # 1000 × 2,500 + 765 × 2,500 + 500 × 10,000 = 9,412,500 units
    assert body["image_tokens"] == [765]
    assert body["total_units"] == 9_412_500
    assert body["total_usd"] == "0.0094125"
    assert [line["item"] for line in body["lines"]] == ["input", "image_input", "output"]
    payload["images"][0]["detail"] = "low"
    # 2,500,000 + 85 × 2,500 + 5,000,000
    assert estimate(api, payload)["total_units"] == 7_712_500


def test_estimate_claude_image(api):
    body = estimate(
        api,
        {
            "model": "claude-sonnet-4-5",
            "input_tokens": 1000,
            "images": [{"width": 1024, "height": 1024}],
            "output_tokens": 500,
        },
    )
    # ceil(1024 × 1024 / 750) = 1399; 1000 × 3,000 + 1399 × 3,000 + 500 × 15,000 = 14,697,000
    assert body["image_tokens"] == [1399]
    assert body["total_units"] == 14_697_000


def test_estimate_gpt_image_1_output(api):
    body = estimate(
        api,
        {
            "model": "gpt-image-1",
            "input_tokens": 50,
            "generate_images": {"size": "1024x1024", "quality": "high"},
        },
    )
    # 50 × 5,000 + 4160 × 40,000 = 250,000 + 166,400,000
    assert body["total_units"] == 166_650_000
    assert body["total_usd"] == "0.16665"
    assert body["lines"][-1]["item"] == "image_output"
    assert body["lines"][-1]["quantity"] == 4160


def test_estimate_batch_plan_and_cache(api):
    from models_catalog.services import pricing_plan_upsert

    pricing_plan_upsert(slug="partner", name="Partner", numerator=9, denominator=10)
    body = estimate(
        api, {"model": "gpt-4o", "input_tokens": 1000, "output_tokens": 500, "batch": True, "plan": "partner"}
    )
    # 7,500,000 × 1/2 × 9/10 = 3,375,000
    assert body["total_units"] == 3_375_000
    assert body["batch_factor"] == "0.5"
    assert body["plan_multiplier"] == "0.9"
    body = estimate(api, {"model": "gpt-4o", "input_tokens": 10_000, "cached_input_tokens": 90_000})
    # 10,000 × 2,500 + 90,000 × 1,250 = 137,500,000
    assert body["total_units"] == 137_500_000
    assert (
        estimate(api, {"model": "gpt-4o", "plan": "nope"}, status=404)["error"]["code"]
        == "pricing_plan_not_found"
    )


def test_estimate_text_is_estimated(api):
    body = estimate(api, {"model": "gpt-4o-mini", "text": "abcdefgh你好", "output_tokens": 0})
    # 8 ASCII chars → 2 tokens, 2 CJK chars → 2 tokens = 4 tokens × 150 = 600 units
    assert body["usage"]["input_tokens"] == 4
    assert body["total_units"] == 600
    assert body["text_tokens_estimated"] is True


def test_estimate_refuses_what_the_model_cannot_do(api):
    body = estimate(
        api, {"model": "dall-e-3", "images": [{"width": 512, "height": 512}], "output_tokens": 10}, status=400
    )
    assert body["error"]["code"] == "model_capability_mismatch"
    assert body["error"]["message"].startswith("dall-e-3 generates images; it cannot read them.")
    assert estimate(api, {"model": "nope"}, status=404)["error"]["code"] == "model_not_found"
    notes = estimate(api, {"model": "claude-3-5-sonnet", "input_tokens": 10})["notes"]
    assert notes == ["claude-3-5-sonnet-20241022 is deprecated; use claude-sonnet-4-5 instead."]
