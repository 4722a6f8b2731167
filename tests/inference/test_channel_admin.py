"""Channel health is visible to operators in the admin."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_channel_changelist_shows_health(client, django_user_model, catalogue):
    from models_catalog.services import channel_create, channel_record_failure

    user = django_user_model.objects.create_superuser(email="ops@example.com", password="pw-123456789")
    client.force_login(user)
    sick = channel_create(
        name="sick", provider_type="openai", base_url="https://up.example/v1", api_key="sk-x1234"
    )
    channel_create(name="fine", provider_type="openai", base_url="https://up.example/v1", api_key="sk-y1234")
    channel_record_failure(channel_id=sick.pk, error="503: Overloaded (simulated)", cooldown_seconds=60)

    html = client.get("/admin/models_catalog/channel/").content.decode()
    for column in ("Health", "Consecutive failures", "Cooldown until", "Last error"):
        assert column in html
    assert "cooling down" in html
    assert "503: Overloaded (simulated)" in html

    cooling = client.get("/admin/models_catalog/channel/?health=cooling").content.decode()
    assert "sick" in cooling
    assert ">fine<" not in cooling
    healthy = client.get("/admin/models_catalog/channel/?health=healthy").content.decode()
    assert ">fine<" in healthy
