"""Models answered by the upstream simulator are labelled as such in the catalogue (API and page)."""

import httpx
import pytest
from openai import OpenAI

pytestmark = pytest.mark.django_db(transaction=True)


def test_catalogue_labels_simulated_models(gateway):
    models = {m.id: m for m in OpenAI(api_key="x", base_url=gateway.openai_base).models.list()}
    assert models["gpt-4o"].model_extra["simulated"] is True
    page = httpx.get(gateway.url + "/models/")
    assert "Demo mode" in page.text
    assert "simulator" in page.text
    assert "upstream simulator" in httpx.get(gateway.url + "/").text  # every page says so


def test_real_channels_are_not_labelled(gateway):
    from models_catalog.constants import ChannelSource
    from models_catalog.models import Channel
    from models_catalog.services import catalogue_changed, channel_create

    Channel.objects.filter(source=ChannelSource.SIMULATOR).update(enabled=False)
    channel_create(
        name="real-openai",
        provider_type="openai",
        base_url="https://api.openai.com/v1",
        api_key="sk-real",
        model_ids=["gpt-4o"],
    )
    catalogue_changed()
    entry = httpx.get(gateway.openai_base + "/models/gpt-4o").json()
    assert entry["simulated"] is False
    assert "Demo mode" not in httpx.get(gateway.url + "/models/").text
