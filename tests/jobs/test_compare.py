"""Compare jobs: one prompt + one image across several vision models, in parallel on real workers."""

from __future__ import annotations

import base64
import io
import time

import pytest
from PIL import Image
from rest_framework.test import APIClient

from inference.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

VISION = ["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash"]


def png_data_url(size=(64, 48)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def key_client(gateway) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {gateway.secret}")
    return client


def wait_compare(client, compare_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = client.get(f"/api/compare/{compare_id}").json()
        if data["status"] == "completed":
            return data
        time.sleep(0.1)
    raise AssertionError(f"compare {compare_id} not done: {data}")


def test_compare_three_vision_models_returns_three_answers_with_costs(gateway, worker):
    client = key_client(gateway)
    before = gateway.balance()
    r = client.post(
        "/api/compare",
        {
            "prompt": "What colour is this square?",
            "image": png_data_url(),
            "models": VISION,
            "max_tokens": 200,
        },
        format="json",
    )
    assert r.status_code == 202, r.content
    job = wait_compare(client, r.json()["id"])
    assert [res["model"] for res in job["results"]] == VISION
    records = {u.request_id: u for u in UsageRecord.objects.filter(organization=gateway.org)}
    for res in job["results"]:
        assert res["status"] == "succeeded", res
        assert res["output"].startswith(f"Simulated reply from {res['model']}")
        assert res["latency_ms"] is not None
        assert res["latency_ms"] >= 0
        assert res["input_tokens"] > 0
        assert res["output_tokens"] > 0
        assert res["cost_units"] > 0
        assert records[res["request_id"]].cost_units == res["cost_units"]
        assert records[res["request_id"]].image_input_tokens + records[res["request_id"]].input_tokens > 0
    assert job["total_cost_units"] == sum(res["cost_units"] for res in job["results"])
    assert before - gateway.balance() == job["total_cost_units"]


def test_models_that_cannot_take_the_input_are_refused_up_front(gateway):
    client = key_client(gateway)
    r = client.post(
        "/api/compare",
        {
            "prompt": "Read this",
            "image": png_data_url(),
            "models": ["gpt-4o", "text-embedding-3-small", "dall-e-3"],
        },
        format="json",
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "model_capability_mismatch"
    assert "text-embedding-3-small" in error["message"]
    assert "dall-e-3" in error["message"]
    assert {x["model"] for x in error["extra"]["refused"]} == {"text-embedding-3-small", "dall-e-3"}
    assert (
        client.post("/api/compare", {"prompt": "x", "models": ["gpt-4o"]}, format="json").status_code == 400
    )
    assert not UsageRecord.objects.exists()


def test_compare_is_scoped_to_the_organization_and_the_page_renders(
    gateway, worker, make_org, session_client
):
    client = key_client(gateway)
    r = client.post(
        "/api/compare", {"prompt": "Hello", "models": ["gpt-4o-mini", "qwen-vl-plus"]}, format="json"
    )
    assert r.status_code == 202
    job = wait_compare(client, r.json()["id"])
    other = session_client(make_org(name="Other"))
    assert other.get(f"/api/compare/{job['id']}").status_code == 404
    assert other.get(f"/compare/{job['id']}/").status_code == 404
    owner = session_client(gateway.owner)
    page = owner.get(f"/compare/{job['id']}/")
    assert page.status_code == 200
    for res in job["results"]:
        assert res["model"].encode() in page.content
        assert res["output"][:40].encode() in page.content
    form = owner.get("/compare/")
    assert form.status_code == 200
    assert b'name="models"' in form.content
    created = owner.post(
        "/compare/", {"prompt": "From the web", "models": ["gpt-4o-mini", "gpt-4o"], "max_tokens": "64"}
    )
    assert created.status_code == 302
    web_job = wait_compare(owner, created["Location"].rstrip("/").rsplit("/", 1)[-1])
    assert all(res["status"] == "succeeded" for res in web_job["results"])
    assert owner.get("/batches/").status_code == 200
