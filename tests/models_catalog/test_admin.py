from __future__ import annotations

import pytest


@pytest.fixture
def admin_client_(client, django_user_model, catalogue):
    user = django_user_model.objects.create_superuser(email="boss@example.com", password="pw-123456789")
    client.force_login(user)
    return client


@pytest.mark.parametrize("name", ["aimodel", "taskscore", "price", "pricingplan", "channel"])
def test_admin_pages_render(admin_client_, name):
    assert admin_client_.get(f"/admin/models_catalog/{name}/").status_code == 200
    assert admin_client_.get(f"/admin/models_catalog/{name}/add/").status_code == 200


def test_model_change_page_shows_price_history_read_only(admin_client_):
    from models_catalog.models import AiModel

    pk = AiModel.objects.get(model_id="gpt-4o").pk
    html = admin_client_.get(f"/admin/models_catalog/aimodel/{pk}/change/").content.decode()
    assert "2500000000" in html  # the seed price, displayed
    assert 'name="prices-0-input_per_mtok"' not in html  # but not editable
