"""Bonus rules are data; the preview shows what a top-up would get."""

from __future__ import annotations

import pytest
from django.test import Client

from billing.bonus import bonus_compute
from billing.models import BonusRule, TopUp
from billing.selectors import bonus_preview
from billing.services import billing_account_for_org
from tests.billing.stripe_support import payment_intent_succeeded, sign

pytestmark = pytest.mark.django_db

USD = 1_000_000_000


def seeded() -> list[BonusRule]:
    return list(BonusRule.objects.all())


@pytest.mark.parametrize(
    ("usd", "first", "bonus"),
    [
        (4, True, 0),
        (5, True, USD),  # first top-up ≥ $5 → +$1
        (5, False, 0),
        (99, False, 0),
        (100, False, 5 * USD),  # ≥ $100 → +5 %
        (100, True, 5 * USD + USD),  # + the first-top-up $1
        (499, False, 499 * USD * 5 // 100),
        (500, False, 50 * USD),  # ≥ $500 → +10 % (not 15 %: the best percentage wins)
        (500, True, 51 * USD),
    ],
)
def test_seeded_rules_combine_best_percentage_plus_best_fixed(usd, first, bonus):
    assert bonus_compute(rules=seeded(), amount_units=usd * USD, is_first_topup=first).bonus_units == bonus


def test_inactive_rules_do_not_apply_and_rules_are_editable():
    BonusRule.objects.filter(percent_bp=1000).update(active=False)
    assert bonus_compute(rules=seeded(), amount_units=500 * USD, is_first_topup=False).bonus_units == 25 * USD
    BonusRule.objects.create(name="Launch week: +20% from $50", min_amount_units=50 * USD, percent_bp=2000)
    assert bonus_compute(rules=seeded(), amount_units=50 * USD, is_first_topup=False).bonus_units == 10 * USD


def test_percentage_rounds_down_to_a_nano_dollar():
    rule = BonusRule(name="3.33%", percent_bp=333, min_amount_units=0)
    assert bonus_compute(rules=[rule], amount_units=7, is_first_topup=False).bonus_units == 0
    assert bonus_compute(rules=[rule], amount_units=10_001, is_first_topup=False).bonus_units == 333


def test_preview_knows_whether_it_is_the_first_topup(org, session_client, stripe_webhook_settings):
    client = session_client(org)
    first = client.get("/api/topups/preview", {"amount_usd": "100"}).json()
    assert first == {
        "amount_usd": "100.00",
        "bonus_usd": "6.00",
        "total_usd": "106.00",
        "amount_units": 100 * USD,
        "bonus_units": 6 * USD,
        "total_units": 106 * USD,
        "first_topup": True,
        "rules": ["Top-up of $100 or more: +5%", "First top-up of $5 or more: +$1"],
    }
    topup = TopUp.objects.create(
        account=billing_account_for_org(org_id=org.organization_id), amount_cents=500
    )
    payload = payment_intent_succeeded(topup_id=topup.pk, pi="pi_first", cents=500)
    Client().post(
        "/stripe/webhook/", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload)
    )
    topup.refresh_from_db()
    assert topup.bonus_units == USD
    assert bonus_preview(org_id=org.organization_id, amount_units=100 * USD).bonus_units == 5 * USD
    assert client.get("/api/topups/preview", {"amount_usd": "0"}).status_code == 400
    assert client.get("/api/topups/preview", {"amount_usd": "x"}).status_code == 400
