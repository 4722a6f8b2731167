"""GET /v1/models in the OpenAI list shape, exercised with the official ``openai`` SDK."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

SEED_IDS = {
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-image-1",
    "dall-e-3",
    "text-embedding-3-small",
    "claude-3-5-sonnet-20241022",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "grok-2-vision-1212",
    "qwen-vl-max",
    "qwen-vl-plus",
}


@pytest.fixture
def seeded_live_server(transactional_db, live_server):
    from models_catalog.services import catalogue_changed, catalogue_seed

    catalogue_seed()  # a transactional test starts from whatever the last flush left
    catalogue_changed()
    return live_server


@pytest.mark.django_db(transaction=True)
def test_openai_sdk_lists_and_filters_models(seeded_live_server):
    # Closing the client ends its keep-alive connection, so the server thread lets go of the DB.
    with OpenAI(base_url=seeded_live_server.url + "/v1", api_key="x", max_retries=0) as client:
        models = list(client.models.list())
        assert {m.id for m in models} >= SEED_IDS
        gpt4o = next(m for m in models if m.id == "gpt-4o")
        assert gpt4o.object == "model"
        assert gpt4o.owned_by == "openai"
        assert gpt4o.created > 0
        extra = gpt4o.to_dict()
        assert extra["input_modalities"] == ["image", "text"]
        assert extra["pricing"]["input"] == "2.50"
        assert extra["pricing"]["units"]["input"] == 2_500_000_000
        assert extra["context_length"] == 128_000

        readers = {m.id for m in client.models.list(extra_query={"input": "image"})}
        assert {"gpt-4o", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-sonnet-20241022"} <= readers
        assert not readers & {"gpt-image-1", "dall-e-3", "text-embedding-3-small"}

        painters = {m.id for m in client.models.list(extra_query={"output": "image"})}
        assert painters == {"gpt-image-1", "dall-e-3"}

        detail = client.models.retrieve("claude-sonnet-4-5")
        assert detail.id == "claude-sonnet-4-5"
        assert detail.owned_by == "anthropic"
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve("no-such-model")
        assert info.value.code == "model_not_found"


def test_filters_and_shapes(client, catalogue):
    body = client.get("/v1/models", {"task": "ocr"}).json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids[0] == "gemini-2.5-pro"  # strongest for document OCR first
    assert "gpt-image-1" not in ids
    scores = [m["tasks"]["ocr_document"] for m in body["data"]]
    assert scores == sorted(scores, reverse=True)

    gpt_image = client.get("/v1/models/gpt-image-1").json()
    assert gpt_image["input_modalities"] == ["text"]
    assert gpt_image["output_modalities"] == ["image"]
    assert "vision" not in gpt_image["capabilities"]
    assert "image_editing" in gpt_image["capabilities"]
    # per-image prices derived from output tokens: 4160 × $40/1M = $0.1664
    assert gpt_image["pricing"]["per_image"]["1024x1024:high"] == "0.1664"
    assert client.get("/v1/models/gpt-4o-image").json()["id"] == "gpt-image-1"  # alias

    dalle = client.get("/v1/models/dall-e-3").json()
    assert dalle["pricing"]["per_image"]["1024x1024:standard"] == "0.04"

    embeddings = client.get("/v1/models", {"output": "embedding"}).json()["data"]
    assert [m["id"] for m in embeddings] == ["text-embedding-3-small"]


def test_errors_use_the_openai_shape(client, catalogue):
    response = client.get("/v1/models/nope")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "The model 'nope' does not exist.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    response = client.get("/v1/models", {"input": "video"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"
    assert client.get("/v1/models", {"task": "astrology"}).status_code == 400


def test_retired_models_are_not_listed(client, catalogue):
    from models_catalog.services import model_status_set

    model_status_set(model_id="qwen-vl-plus", status="retired", replacement_id="qwen-vl-max")
    ids = {m["id"] for m in client.get("/v1/models").json()["data"]}
    assert "qwen-vl-plus" not in ids
    assert "qwen-vl-max" in ids
    assert client.get("/v1/models/qwen-vl-plus").json()["status"] == "retired"
