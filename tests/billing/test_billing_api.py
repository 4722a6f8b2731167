"""The /api/ billing endpoints: roles, scoping to the current organization, shapes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from billing.models import LedgerEntry, TopUp
from billing.services import billing_account_for_org, hold_place, hold_settle

pytestmark = pytest.mark.django_db

USD = 1_000_000_000


def test_balance_shape_for_session_and_api_key(org, grant, session_client, key_client):
    grant(org.organization_id, 12 * USD + 345)
    hold_place(org_id=org.organization_id, amount_units=2 * USD, reference="r")
    expected = {
        "currency": "USD",
        "balance": "12.000000345",
        "balance_units": 12 * USD + 345,
        "held_units": 2 * USD,
        "available_units": 10 * USD + 345,
    }
    assert session_client(org).get("/api/balance").json() == expected
    assert key_client(org).get("/api/balance").json() == expected


def test_balance_of_an_org_without_account_is_zero(org, session_client, add_member):
    member = add_member(org.organization, "member")
    body = session_client(member).get("/api/balance").json()
    assert (body["balance"], body["balance_units"], body["available_units"]) == ("0.00", 0, 0)


def test_anonymous_is_refused():
    from rest_framework.test import APIClient

    assert APIClient().get("/api/balance").status_code in (401, 403)


def test_ledger_running_balance_filters_and_pagination(org, grant, session_client):
    grant(org.organization_id, 10 * USD, "first")
    for i in range(3):
        hold_id = hold_place(org_id=org.organization_id, amount_units=USD, reference=f"r{i}")
        hold_settle(hold_id=hold_id, actual_units=USD // 4, idempotency_key=f"k{i}")
    client = session_client(org)
    page = client.get("/api/ledger?limit=2").json()
    assert page["count"] == 4
    assert [e["balance_after_units"] for e in page["results"]] == [
        10 * USD - 3 * USD // 4,
        10 * USD - USD // 2,
    ]
    assert page["results"][0]["balance_after"] == "9.25"
    assert page["results"][0]["amount"] == "-0.25"
    assert page["next"]
    usage = client.get("/api/ledger?kind=usage").json()
    assert usage["count"] == 3
    assert {e["kind"] for e in usage["results"]} == {"usage"}
    both = client.get("/api/ledger?kind=usage,adjustment").json()
    assert both["count"] == 4
    LedgerEntry.objects.filter(kind="adjustment").update(created_at=timezone.now() - dt.timedelta(days=10))
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    recent = client.get("/api/ledger", {"since": since}).json()
    assert recent["count"] == 3
    old = client.get("/api/ledger", {"until": since}).json()
    assert [e["kind"] for e in old["results"]] == ["adjustment"]
    assert client.get("/api/ledger?kind=bogus").status_code == 400


def test_member_and_key_cannot_read_the_statement(org, add_member, session_client, key_client):
    member = add_member(org.organization, "member")
    assert session_client(member).get("/api/ledger").status_code == 403
    assert key_client(org).get("/api/ledger").status_code == 403
    assert session_client(member).get("/api/topups").status_code == 403


def test_other_orgs_objects_are_404(make_org, grant, session_client):
    a, b = make_org("A"), make_org("B")
    entry = grant(a.organization_id, USD)
    topup = TopUp.objects.create(account=billing_account_for_org(org_id=a.organization_id), amount_cents=500)
    client_a, client_b = session_client(a), session_client(b)
    assert client_a.get(f"/api/ledger/{entry.pk}").status_code == 200
    assert client_a.get(f"/api/topups/{topup.pk}").json()["amount_usd"] == "5.00"
    assert client_b.get(f"/api/ledger/{entry.pk}").status_code == 404
    assert client_b.get(f"/api/topups/{topup.pk}").status_code == 404
    assert client_b.get("/api/ledger").json()["count"] == 0
    assert client_b.get("/api/topups").json()["count"] == 0
    assert client_b.get("/api/balance").json()["balance_units"] == 0


def test_topup_list(org, session_client):
    account = billing_account_for_org(org_id=org.organization_id)
    TopUp.objects.create(account=account, amount_cents=1000)
    TopUp.objects.create(account=account, amount_cents=2000)
    body = session_client(org).get("/api/topups").json()
    assert [t["amount_usd"] for t in body["results"]] == ["20.00", "10.00"]
    assert body["results"][0]["status"] == "pending"


def test_topup_options(org, session_client, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.TOPUP_PRESETS_USD = ["10", "50"]
    body = session_client(org).get("/api/topups/options").json()
    assert body["presets_usd"] == ["10.00", "50.00"]
    assert (body["min_usd"], body["max_usd"], body["stripe_configured"]) == ("5.00", "2000.00", True)


def test_settings_threshold(org, add_member, session_client):
    client = session_client(org)
    response = client.patch("/api/billing/settings", {"low_balance_threshold_usd": "2.5"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "low_balance_threshold_usd": "2.50",
        "low_balance_threshold_units": 2_500_000_000,
    }
    assert client.get("/api/billing/settings").json()["low_balance_threshold_units"] == 2_500_000_000
    cleared = client.patch("/api/billing/settings", {"low_balance_threshold_usd": None}, format="json")
    assert cleared.json()["low_balance_threshold_units"] is None
    assert (
        client.patch("/api/billing/settings", {"low_balance_threshold_usd": "-1"}, format="json").status_code
        == 400
    )
    member = add_member(org.organization, "member")
    assert (
        session_client(member).patch(
            "/api/billing/settings", {"low_balance_threshold_usd": "1"}, format="json"
        )
    ).status_code == 403


def test_schema_builds(org, session_client):
    response = session_client(org).get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/topups/preview" in response.content
