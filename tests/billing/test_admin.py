"""Admin: money records are read-only, bonus rules editable, batches download their codes."""

from __future__ import annotations

import csv
import io

import pytest

from billing.models import BonusRule, RedemptionBatch, RedemptionCode
from billing.services import redemption_redeem

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser(email="root@example.com", password="pw-long-enough-1")
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", ["ledgerentry", "hold", "topup", "billingaccount", "stripeevent"])
def test_money_records_cannot_be_added_in_the_admin(staff_client, model):
    assert staff_client.get(f"/admin/billing/{model}/").status_code == 200
    assert staff_client.get(f"/admin/billing/{model}/add/").status_code == 403


def test_ledger_entry_cannot_be_changed_or_deleted(staff_client, org, grant):
    entry = grant(org.organization_id, 1000)
    page = staff_client.get(f"/admin/billing/ledgerentry/{entry.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # a view page, no save button
    assert (
        staff_client.post(f"/admin/billing/ledgerentry/{entry.pk}/change/", {"amount_units": 1}).status_code
        == 403
    )
    assert (
        staff_client.post(f"/admin/billing/ledgerentry/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )


def test_bonus_rules_are_editable(staff_client):
    rule = BonusRule.objects.get(percent_bp=500)
    response = staff_client.post(
        f"/admin/billing/bonusrule/{rule.pk}/change/",
        {
            "name": rule.name,
            "active": "on",
            "min_amount_units": rule.min_amount_units,
            "percent_bp": 700,
            "fixed_units": 0,
            "created_at_0": "2025-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content
    rule.refresh_from_db()
    assert rule.percent_bp == 700


def test_adding_a_batch_downloads_its_codes_once(staff_client, org):
    response = staff_client.post(
        "/admin/billing/redemptionbatch/add/",
        {"value_usd": "2.5", "number_of_codes": "3", "expires_in_days": "30", "note": "conference"},
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 3
    batch = RedemptionBatch.objects.get()
    assert (batch.value_units, batch.count, batch.note) == (2_500_000_000, 3, "conference")
    assert RedemptionCode.objects.filter(batch=batch).count() == 3
    entry = redemption_redeem(org_id=org.organization_id, code=rows[0]["code"])
    assert entry.amount_units == 2_500_000_000
    assert staff_client.get(f"/admin/billing/redemptionbatch/{batch.pk}/change/").status_code == 200
