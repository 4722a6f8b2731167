"""The capability guard, for every capability pair the seed article calls out."""

from __future__ import annotations

import pytest

from models_catalog.errors import CapabilityMismatch, ModelRetired
from models_catalog.guard import deprecation_notice, guard_check, models_that_can
from models_catalog.info import RequestNeeds
from models_catalog.pricing import reference_cost
from models_catalog.selectors import models_list

IMAGE_CHAT = RequestNeeds(input_modalities=frozenset({"text", "image"}), output="text", image_count=1)
TEXT_CHAT = RequestNeeds()
IMAGE_GENERATION = RequestNeeds(output="image")
IMAGE_EDIT = RequestNeeds(input_modalities=frozenset({"text", "image"}), output="image", image_count=1)
EMBEDDING = RequestNeeds(output="embedding")


def refused(resolve, model_id, needs) -> CapabilityMismatch:
    with pytest.raises(CapabilityMismatch) as info:
        guard_check(model=resolve(model_id), needs=needs)
    assert info.value.status == 400
    assert info.value.code == "model_capability_mismatch"
    return info.value


@pytest.mark.parametrize("model_id", ["gpt-image-1", "gpt-4o-image", "dall-e-3"])
def test_image_generators_cannot_read_images(resolve, model_id):
    error = refused(resolve, model_id, IMAGE_CHAT)
    able = error.extra["models_that_can"]
    assert error.extra["missing"][0] == "image_input"
    name = resolve(model_id).id
    assert error.message.startswith(f"{name} generates images; it cannot read them. Models that can: ")
    assert error.message.endswith(", ".join(able))
    assert len(able) == 3
    # every suggestion reads images, is active, and they come cheapest first for such a request
    for other in able:
        assert resolve(other).reads_images
        assert resolve(other).status == "active"
    costs = [reference_cost(resolve(m), IMAGE_CHAT) for m in able]
    assert costs == sorted(costs)
    # Suggestions are general image readers: a special-purpose reader (local OCR) is not one.
    cheapest_vision = sorted(
        (reference_cost(m, IMAGE_CHAT), m.id)
        for m in models_list(input="image")
        if m.status == "active" and m.task_score("general_vision") >= 50
    )
    assert able == [m for _, m in cheapest_vision[:3]]
    assert "local-ocr" not in able


def test_chat_to_an_image_generator(resolve):
    error = refused(resolve, "dall-e-3", TEXT_CHAT)
    assert error.extra["missing"] == ["text_output"]
    assert "dall-e-3 generates images; it cannot answer chat requests." in error.message
    assert all("text" in resolve(m).output_modalities for m in error.extra["models_that_can"])


def test_image_generation_to_a_chat_model(resolve):
    error = refused(resolve, "gpt-4o", IMAGE_GENERATION)
    assert error.extra["missing"] == ["image_output"]
    assert error.message.startswith(
        "gpt-4o cannot generate images; it reads text and images and writes text."
    )
    # dall-e-3 standard 1024² = $0.04 (40,000,000 units); gpt-image-1 medium = 100 × 5,000 + 1056 × 40,000
    # = 42,740,000 units → dall-e-3 first
    assert error.extra["models_that_can"] == ["dall-e-3", "gpt-image-1"]


def test_image_edit_needs_an_editor(resolve):
    error = refused(resolve, "dall-e-3", IMAGE_EDIT)
    assert error.extra["missing"] == ["image_editing"]
    assert error.extra["models_that_can"] == ["gpt-image-1"]
    guard_check(model=resolve("gpt-image-1"), needs=IMAGE_EDIT)  # an edit is fine on gpt-image-1
    guard_check(model=resolve("gpt-image-1"), needs=IMAGE_GENERATION)


def test_embeddings(resolve):
    error = refused(resolve, "gpt-4o", EMBEDDING)
    assert error.extra["missing"] == ["embedding_output"]
    assert error.extra["models_that_can"] == ["text-embedding-3-small"]
    error = refused(resolve, "text-embedding-3-small", TEXT_CHAT)
    assert "text-embedding-3-small produces embeddings; it cannot answer chat requests." in error.message
    error = refused(resolve, "text-embedding-3-small", IMAGE_CHAT)
    assert error.extra["missing"] == ["image_input", "text_output"]
    guard_check(model=resolve("text-embedding-3-small"), needs=EMBEDDING)


def test_text_only_model_cannot_read_images(catalogue):
    from models_catalog.models import AiModel
    from models_catalog.selectors import model_resolve

    AiModel.objects.create(
        model_id="text-only",
        display_name="T",
        vendor="local",
        input_modalities=["text"],
        output_modalities=["text"],
        features=["streaming"],
    )
    from models_catalog.services import catalogue_changed

    catalogue_changed()
    with pytest.raises(CapabilityMismatch) as info:
        guard_check(model=model_resolve("text-only"), needs=IMAGE_CHAT)
    assert info.value.message.startswith("text-only cannot read images; it reads text only.")


def test_tools_where_unsupported(resolve):
    needs = RequestNeeds(input_modalities=frozenset({"text", "image"}), tools=True, image_count=1)
    error = refused(resolve, "qwen-vl-max", needs)
    assert error.extra["missing"] == ["tools"]
    assert error.message.startswith("qwen-vl-max does not support tools (function calling).")
    for other in error.extra["models_that_can"]:
        assert resolve(other).has_feature("tools")
        assert resolve(other).reads_images
    guard_check(model=resolve("gpt-4o"), needs=needs)


def test_json_mode_where_unsupported(resolve):
    error = refused(resolve, "claude-sonnet-4-5", RequestNeeds(json_mode=True))
    assert error.extra["missing"] == ["json_mode"]
    assert "claude-sonnet-4-5" not in error.extra["models_that_can"]
    guard_check(
        model=resolve("gemini-2.5-flash"), needs=RequestNeeds(json_mode=True, tools=True, streaming=True)
    )


def test_streaming_where_unsupported(resolve):
    error = refused(resolve, "dall-e-3", RequestNeeds(output="image", streaming=True))
    assert error.extra["missing"] == ["streaming"]


def test_vision_models_accept_image_chat(resolve):
    vision = models_list(input="image")
    assert {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "qwen-vl-max"} <= {
        m.id for m in vision
    }
    for model in vision:
        guard_check(model=model, needs=IMAGE_CHAT)


def test_an_image_only_reader_needs_an_image(resolve):
    """local-ocr reads images only: text alone is refused, naming text models; with an image
    (text parts alongside are fine) it passes; it is never suggested for text-only requests."""
    error = refused(resolve, "local-ocr", TEXT_CHAT)
    assert error.extra["missing"] == ["image_required"]
    assert error.message.startswith("local-ocr reads the text in images; this request has no image. ")
    able = error.extra["models_that_can"]
    assert able
    assert all("text" in resolve(m).input_modalities for m in able)
    guard_check(model=resolve("local-ocr"), needs=IMAGE_CHAT)
    assert "local-ocr" not in models_that_can(TEXT_CHAT, limit=100)
    # Models that read text are untouched by the rule.
    guard_check(model=resolve("gpt-4o"), needs=TEXT_CHAT)


def test_deprecated_model_is_served_with_its_replacement_hinted(resolve):
    old = resolve("claude-3-5-sonnet-20241022")
    guard_check(model=old, needs=IMAGE_CHAT)  # still served
    assert (
        deprecation_notice(old) == "claude-3-5-sonnet-20241022 is deprecated; use claude-sonnet-4-5 instead."
    )
    error = refused(resolve, "claude-3-5-sonnet-20241022", RequestNeeds(json_mode=True))
    assert error.extra["replacement"] == "claude-sonnet-4-5"
    assert error.message.endswith(
        "(claude-3-5-sonnet-20241022 is deprecated; use claude-sonnet-4-5 instead.)"
    )
    # deprecated models are never suggested
    assert "claude-3-5-sonnet-20241022" not in models_that_can(IMAGE_CHAT, limit=50)


def test_retired_model_is_refused_with_its_replacement(resolve):
    from models_catalog.services import model_status_set

    model_status_set(
        model_id="claude-3-5-sonnet-20241022", status="retired", replacement_id="claude-sonnet-4-5"
    )
    with pytest.raises(ModelRetired) as info:
        guard_check(model=resolve("claude-3-5-sonnet"), needs=TEXT_CHAT)
    assert info.value.status == 410
    assert info.value.extra["replacement"] == "claude-sonnet-4-5"
    assert "Use claude-sonnet-4-5 instead." in info.value.message
