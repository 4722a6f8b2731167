"""local-ocr in the catalogue: the fixed image rule, the price per image, the local channel."""

from __future__ import annotations

import datetime as dt

import pytest

from models_catalog.constants import ChannelSource, ImageRuleKind
from models_catalog.info import ModelInfo, PriceInfo, Usage
from models_catalog.pricing import cost_compute, image_input_tokens, max_image_input_tokens


def fixed_model(tokens: int) -> ModelInfo:
    return ModelInfo(
        id="m",
        display_name="m",
        vendor="local",
        status="active",
        replacement=None,
        input_modalities=frozenset({"text", "image"}),
        output_modalities=frozenset({"text"}),
        features=frozenset(),
        tasks=(),
        context_window=None,
        max_output_tokens=None,
        prices=(PriceInfo(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), 1_000_000_000, 100_000_000),),
        provider_hint="local",
        image_rule=ImageRuleKind.FIXED,
        image_rule_params=(("tokens", tokens),),
    )


def test_fixed_rule_is_the_same_for_every_size():
    model = fixed_model(1000)
    for width, height, detail in ((1, 1, "low"), (1024, 1024, "high"), (8000, 3000, "auto")):
        assert image_input_tokens(model=model, width=width, height=height, detail=detail) == 1000
    assert max_image_input_tokens(model) == 1000  # the hold is the charge


@pytest.mark.django_db
def test_local_ocr_from_the_migration(local_catalogue):
    from models_catalog.selectors import channels_for_model, model_resolve

    model = model_resolve("local-ocr")
    assert model.display_name == "Local OCR (RapidOCR, offline)"
    assert model.input_modalities == {"image"}  # text parts are accepted, not read
    assert model.output_modalities == {"text"}
    assert model.features == {"streaming", "json_mode"}
    assert (model.task_score("ocr_document"), model.task_score("chinese_documents")) == (70, 75)
    assert model.task_score("general_vision") == 10
    # One image = $0.001; 1M output tokens = $0.10.
    one_image = Usage(input_tokens=image_input_tokens(model=model, width=640, height=480))
    assert cost_compute(model=model, usage=one_image).total_units == 1_000_000
    assert cost_compute(model=model, usage=Usage(image_input_tokens=1000)).total_units == 1_000_000
    assert cost_compute(model=model, usage=Usage(output_tokens=1_000_000)).total_units == 100_000_000
    (channel,) = channels_for_model("local-ocr")
    assert (channel.name, channel.provider_type, channel.source) == (
        "local:ocr",
        "local",
        ChannelSource.LOCAL,
    )


@pytest.mark.django_db
def test_channels_sync_local_is_idempotent_and_follows_the_ocr_extra(monkeypatch):
    from models_catalog import services
    from models_catalog.models import Channel, Price

    assert services.channels_sync_local(enabled=True)["local:ocr"] == "created"
    assert services.channels_sync_local(enabled=True) == {"local:ocr": "unchanged"}
    monkeypatch.setattr(services, "local_ocr_installed", lambda: False)
    assert services.channels_sync_local()["local:ocr"] == "updated"
    assert not Channel.objects.get(name="local:ocr").enabled  # no extra: no channel to fail on
    monkeypatch.setattr(services, "local_ocr_installed", lambda: True)
    services.channels_sync_local()
    assert Channel.objects.get(name="local:ocr").enabled
    assert Price.objects.filter(model__model_id="local-ocr").count() == 1


@pytest.mark.django_db
def test_price_per_image_setting_appends_a_price(settings):
    from models_catalog import services
    from models_catalog.models import Price
    from models_catalog.selectors import model_resolve

    services.channels_sync_local(enabled=True)
    settings.LOCAL_OCR_PRICE_PER_IMAGE_USD = "0.0025"
    result = services.channels_sync_local(enabled=True)
    assert result["price"] == "0.0025 USD per image"
    services.channels_sync_local(enabled=True)  # unchanged setting: no new row
    prices = list(Price.objects.filter(model__model_id="local-ocr").order_by("effective_from"))
    assert len(prices) == 2
    assert prices[0].input_per_mtok == 1_000_000_000  # history kept
    assert prices[1].input_per_mtok == prices[1].image_input_per_mtok == 2_500_000_000
    model = model_resolve("local-ocr")
    assert cost_compute(model=model, usage=Usage(input_tokens=1000)).total_units == 2_500_000


def test_price_per_image_must_be_whole_nano_usd():
    from models_catalog.seed_local import local_ocr_price_units

    assert local_ocr_price_units("0.001") == 1_000_000_000
    with pytest.raises(ValueError):
        local_ocr_price_units("0.0000000000001")
