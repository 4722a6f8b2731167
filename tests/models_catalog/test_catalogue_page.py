from __future__ import annotations

import pickle


def test_public_page_lists_models_with_prices(client, catalogue):
    response = client.get("/models/")
    assert response.status_code == 200
    html = response.content.decode()
    for model_id in ("gpt-4o", "gpt-image-1", "dall-e-3", "claude-sonnet-4-5", "qwen-vl-plus"):
        assert f'id="model-{model_id}"' in html
    assert "$2.50" in html
    assert "$10.00" in html
    assert "1024x1024 · standard</span> $0.04" in html  # dall-e-3 per image
    assert "General image recognition" in html  # "best for"


def test_page_filters(client, catalogue):
    html = client.get("/models/", {"input": "image"}).content.decode()
    assert 'id="model-gpt-4o"' in html
    assert 'id="model-claude-haiku-4-5"' in html
    assert 'id="model-gpt-image-1"' not in html
    assert 'id="model-dall-e-3"' not in html
    html = client.get("/models/", {"output": "image"}).content.decode()
    assert 'id="model-gpt-image-1"' in html
    assert 'id="model-gpt-4o"' not in html
    html = client.get("/models/", {"task": "chinese_documents"}).content.decode()
    assert html.index('id="model-qwen-vl-max"') < html.index('id="model-gpt-4o"')
    assert client.get("/models/", {"task": "nonsense"}).status_code == 400


def test_page_is_translatable(client, catalogue):
    response = client.get("/models/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200


def test_lookups_are_cached(catalogue, django_assert_num_queries):
    from models_catalog.selectors import channels_for_model, model_resolve, pricing_plan_multiplier

    model_resolve("gpt-4o")  # warm
    with django_assert_num_queries(0):
        model = model_resolve("gpt-4o")
        model_resolve("claude-3-5-sonnet-latest")
        channels_for_model("gpt-4o")
        pricing_plan_multiplier("standard")
    assert pickle.loads(pickle.dumps(model)) == model


def test_writes_invalidate_the_cache(catalogue):
    from models_catalog.selectors import model_resolve
    from models_catalog.services import model_status_set

    assert model_resolve("qwen-vl-plus").status == "active"
    model_status_set(model_id="qwen-vl-plus", status="deprecated", replacement_id="qwen-vl-max")
    info = model_resolve("qwen-vl-plus")
    assert info.status == "deprecated"
    assert info.replacement == "qwen-vl-max"


def test_resolve_by_alias_and_case(resolve):
    assert resolve("claude-sonnet-4-5-20250929").id == "claude-sonnet-4-5"
    assert resolve("GPT-4o").id == "gpt-4o"
    import pytest

    from models_catalog.errors import ModelNotFound

    with pytest.raises(ModelNotFound) as info:
        resolve("gpt-5-imaginary")
    assert info.value.code == "model_not_found"
    assert info.value.status == 404
