"""The webhook: verified over the raw body, stored, deduplicated, order-independent.

Payloads are signed exactly as Stripe signs them and go through the real endpoint."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from billing.models import (
    BillingAccount,
    EntryKind,
    LedgerEntry,
    StripeEvent,
    StripeEventStatus,
    TopUp,
    TopUpStatus,
)
from billing.services import billing_account_for_org
from tests.billing.stripe_support import (
    charge_refunded,
    checkout_completed,
    event,
    payment_intent_succeeded,
    sign,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_webhook_settings")]

USD = 1_000_000_000
CENT = USD // 100


def deliver(payload: str, signature: str | None = None):
    return Client().post(
        "/stripe/webhook/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload) if signature is None else signature,
    )


@pytest.fixture
def topup(org):
    account = billing_account_for_org(org_id=org.organization_id)
    return TopUp.objects.create(account=account, amount_cents=2000, checkout_session_id="cs_test_1")


def balance(org) -> int:
    return BillingAccount.objects.get(organization_id=org.organization_id).balance_units


def test_payment_intent_succeeded_credits_topup_and_first_topup_bonus(org, topup):
    response = deliver(payment_intent_succeeded(topup_id=topup.pk, pi="pi_1", cents=2000))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "processed"
    topup.refresh_from_db()
    assert (topup.status, topup.payment_intent_id, topup.credited_cents) == (
        TopUpStatus.CREDITED,
        "pi_1",
        2000,
    )
    assert topup.bonus_units == USD  # first top-up ≥ $5 → +$1
    kinds = dict(LedgerEntry.objects.values_list("kind", "amount_units"))
    assert kinds == {EntryKind.TOPUP: 20 * USD, EntryKind.BONUS: USD}
    assert balance(org) == 21 * USD


def test_checkout_completed_and_payment_intent_credit_once_whichever_first(org, topup):
    assert deliver(checkout_completed(topup_id=topup.pk, pi="pi_2", cents=2000)).status_code == 200
    assert deliver(payment_intent_succeeded(topup_id=topup.pk, pi="pi_2", cents=2000)).status_code == 200
    assert deliver(checkout_completed(topup_id=topup.pk, pi="pi_2", cents=2000)).status_code == 200
    assert balance(org) == 21 * USD
    assert LedgerEntry.objects.filter(kind=EntryKind.TOPUP).count() == 1


def test_unpaid_checkout_session_does_not_credit(org, topup):
    response = deliver(checkout_completed(topup_id=topup.pk, pi="pi_3", cents=2000, paid=False))
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert balance(org) == 0


def test_duplicate_event_is_processed_once(org, topup):
    payload = payment_intent_succeeded(topup_id=topup.pk, pi="pi_4", cents=2000)
    for _ in range(3):
        assert deliver(payload).status_code == 200
    assert StripeEvent.objects.count() == 1
    assert StripeEvent.objects.get().attempts == 1
    assert balance(org) == 21 * USD


def test_forged_signature_is_rejected_and_nothing_changes(org, topup):
    payload = payment_intent_succeeded(topup_id=topup.pk, pi="pi_5", cents=2000)
    assert deliver(payload, signature=sign(payload, secret="whsec_attacker")).status_code == 400
    assert deliver(payload, signature="").status_code == 400
    assert deliver(payload, signature="t=1,v1=deadbeef").status_code == 400
    # A genuine signature over another body does not cover this one.
    tampered = payload.replace('"amount_received": 2000', '"amount_received": 999999')
    assert deliver(tampered, signature=sign(payload)).status_code == 400
    assert not StripeEvent.objects.exists()
    assert not LedgerEntry.objects.exists()
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PENDING


def test_stale_timestamp_is_rejected(org, topup):
    payload = payment_intent_succeeded(topup_id=topup.pk, pi="pi_6", cents=2000)
    stale = sign(payload, timestamp=int(time.time()) - 301)
    assert deliver(payload, signature=stale).status_code == 400
    assert not StripeEvent.objects.exists()
    assert balance(org) == 0


def test_not_configured_secret_rejects(org, topup, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = payment_intent_succeeded(topup_id=topup.pk, pi="pi_7", cents=2000)
    assert deliver(payload).status_code == 400
    assert balance(org) == 0


def test_refund_debits_and_claws_back_bonus_proportionally(org, topup):
    deliver(payment_intent_succeeded(topup_id=topup.pk, pi="pi_8", cents=2000))
    deliver(charge_refunded(pi="pi_8", cents=2000, refunded_cents=500))  # 25 %
    topup.refresh_from_db()
    assert (topup.status, topup.refunded_cents) == (TopUpStatus.PARTIALLY_REFUNDED, 500)
    assert topup.bonus_clawed_back_units == USD // 4
    assert balance(org) == 21 * USD - 5 * USD - USD // 4
    # amount_refunded is cumulative: a later full refund debits only the rest.
    deliver(charge_refunded(pi="pi_8", cents=2000, refunded_cents=2000))
    topup.refresh_from_db()
    assert (topup.status, topup.refunded_cents, topup.bonus_clawed_back_units) == (
        TopUpStatus.REFUNDED,
        2000,
        USD,
    )
    assert balance(org) == 0


def test_partial_refund_events_out_of_order(org, topup):
    deliver(payment_intent_succeeded(topup_id=topup.pk, pi="pi_9", cents=2000))
    later = charge_refunded(pi="pi_9", cents=2000, refunded_cents=1500)
    earlier = charge_refunded(pi="pi_9", cents=2000, refunded_cents=500)
    deliver(later)
    deliver(earlier)  # stale: already covered by the cumulative 1500
    assert balance(org) == 21 * USD - 15 * USD - USD * 3 // 4


def test_refund_before_success_ends_correct(org, topup):
    response = deliver(charge_refunded(pi="pi_10", cents=2000, refunded_cents=2000))
    assert response.status_code == 200
    assert balance(org) == 0
    deliver(checkout_completed(topup_id=topup.pk, pi="pi_10", cents=2000))
    deliver(payment_intent_succeeded(topup_id=topup.pk, pi="pi_10", cents=2000))
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.REFUNDED
    assert balance(org) == 0
    kinds = sorted(LedgerEntry.objects.values_list("kind", "amount_units"))
    assert kinds == sorted(
        [
            (EntryKind.TOPUP, 20 * USD),
            (EntryKind.BONUS, USD),
            (EntryKind.REFUND, -20 * USD),
            (EntryKind.BONUS_CLAWBACK, -USD),
        ]
    )


def test_second_topup_gets_no_first_topup_bonus_but_percentage_rules(org):
    account = billing_account_for_org(org_id=org.organization_id)
    first = TopUp.objects.create(account=account, amount_cents=500)
    big = TopUp.objects.create(account=account, amount_cents=50_000)
    deliver(payment_intent_succeeded(topup_id=first.pk, pi="pi_a", cents=500))
    deliver(payment_intent_succeeded(topup_id=big.pk, pi="pi_b", cents=50_000))
    first.refresh_from_db()
    big.refresh_from_db()
    assert first.bonus_units == USD
    assert big.bonus_units == 50 * USD  # 10 % of $500, no first-top-up bonus
    assert balance(org) == 5 * USD + USD + 500 * USD + 50 * USD


def test_processing_error_is_recorded_nothing_changes_and_a_retry_works(org, topup):
    bad = payment_intent_succeeded(topup_id=topup.pk, pi="pi_eur", cents=2000, currency="eur")
    response = deliver(bad)
    assert response.status_code == 500
    stored = StripeEvent.objects.get()
    assert stored.status == StripeEventStatus.FAILED
    assert "unexpected amount" in stored.error
    assert stored.attempts == 1
    assert json.loads(stored.payload)["data"]["object"]["currency"] == "eur"
    assert balance(org) == 0
    assert deliver(bad).status_code == 500  # Stripe's redelivery is processed again
    assert StripeEvent.objects.get().attempts == 2


def test_events_of_other_types_or_unknown_topups_are_ignored(org):
    assert (
        deliver(event("customer.created", {"id": "cus_1", "object": "customer"})).json()["status"]
        == "ignored"
    )
    payload = payment_intent_succeeded(topup_id=987654, pi="pi_x", cents=2000)
    assert deliver(payload).json()["status"] == "ignored"
    assert not LedgerEntry.objects.exists()


def test_expired_checkout_session_expires_pending_topup(org, topup):
    deliver(event("checkout.session.expired", {"id": "cs_test_1", "object": "checkout.session"}))
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.EXPIRED
    # A payment that still succeeds is credited all the same: money received is never dropped.
    deliver(payment_intent_succeeded(topup_id=topup.pk, pi="pi_late", cents=2000))
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.CREDITED


def test_get_is_not_allowed():
    assert Client().get("/stripe/webhook/").status_code == 405
