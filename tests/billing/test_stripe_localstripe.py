"""End to end against the localstripe emulator: real PaymentIntents, real refunds and
real signed webhook deliveries to a live server; then a delivery storm."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request

import pytest
import stripe
from django.db import connection

from billing.models import BillingAccount, EntryKind, LedgerEntry, StripeEvent, TopUp, TopUpStatus
from tests.billing.stripe_support import LOCALSTRIPE_KEY, WEBHOOK_SECRET, checkout_completed, event, sign

pytestmark = pytest.mark.django_db(transaction=True)

USD = 1_000_000_000
DEAD_URL = "http://127.0.0.1:9/nowhere"


@pytest.fixture
def emulator(localstripe, live_server, settings):
    """localstripe delivering its webhooks to the live server (and nowhere after the test)."""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    localstripe.client = stripe.StripeClient(LOCALSTRIPE_KEY, base_addresses={"api": localstripe.url})
    localstripe.webhook_url = live_server.url + "/stripe/webhook/"
    yield localstripe
    localstripe.configure_webhook(DEAD_URL)


@pytest.fixture
def topup_via_api(org, session_client, fake_checkout):
    def create(usd: str) -> TopUp:
        response = session_client(org).post("/api/topups", {"amount_usd": usd}, format="json")
        assert response.status_code == 201, response.content
        return TopUp.objects.get(pk=response.json()["topup_id"])

    return create


def pay(emulator, topup: TopUp):
    """The customer pays: a real PaymentIntent, confirmed with Stripe's test card, carrying
    the metadata our Checkout Session asked Stripe to put on it."""
    return emulator.client.v1.payment_intents.create(
        params={
            "amount": topup.amount_cents,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"topup_id": str(topup.pk)},
        }
    )


def post(url: str, payload: str, signature: str) -> int:
    request = urllib.request.Request(url, data=payload.encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Stripe-Signature", signature)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def balance(org) -> int:
    return BillingAccount.objects.get(organization_id=org.organization_id).balance_units


def real_event_for(emulator, type_: str, object_id: str) -> str:
    events = emulator.get(f"/v1/events?type={type_}&limit=100")["data"]
    [found] = [e for e in events if e["data"]["object"]["id"] == object_id]
    return json.dumps(found)


def refunded_charge_event(emulator, pi_id: str) -> str:
    """localstripe records refunds but sends no ``charge.refunded``: sign one around the
    emulator's real charge object (``amount_refunded`` as it now stands)."""
    pi = emulator.get(f"/v1/payment_intents/{pi_id}")
    charge_id = pi["latest_charge"]["id"] if isinstance(pi["latest_charge"], dict) else pi["latest_charge"]
    charge = emulator.get(f"/v1/charges/{charge_id}")
    assert charge["payment_intent"] == pi_id
    return event("charge.refunded", charge)


def test_real_payment_is_credited_by_the_emulators_webhook(emulator, org, topup_via_api):
    emulator.configure_webhook(emulator.webhook_url)
    topup = topup_via_api("20")
    pi = pay(emulator, topup)
    assert pi.status == "succeeded"
    wait_for(lambda: TopUp.objects.get(pk=topup.pk).status == TopUpStatus.CREDITED)
    topup.refresh_from_db()
    assert topup.payment_intent_id == pi.id
    assert balance(org) == 21 * USD  # $20 + first-top-up bonus $1
    stored = StripeEvent.objects.get(type="payment_intent.succeeded")
    assert stored.status == "processed"

    # A real partial refund on the emulator, reported as Stripe reports it.
    refund = emulator.client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    assert refund.amount == 500
    payload = refunded_charge_event(emulator, pi.id)
    assert json.loads(payload)["data"]["object"]["amount_refunded"] == 500
    assert post(emulator.webhook_url, payload, sign(payload)) == 200
    assert balance(org) == 21 * USD - 5 * USD - USD // 4


def test_declined_card_credits_nothing(emulator, org, topup_via_api):
    emulator.configure_webhook(emulator.webhook_url)
    topup = topup_via_api("20")
    with pytest.raises(stripe.CardError):
        emulator.client.v1.payment_intents.create(
            params={
                "amount": topup.amount_cents,
                "currency": "usd",
                "payment_method": "pm_card_chargeCustomerFail",
                "confirm": True,
                "metadata": {"topup_id": str(topup.pk)},
            }
        )
    time.sleep(1.5)  # the emulator sends payment_intent.payment_failed after ~1 s
    assert TopUp.objects.get(pk=topup.pk).status == TopUpStatus.PENDING
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize("order", ["refund_first", "refund_last", "shuffled"])
def test_success_delivered_three_times_concurrently_and_out_of_order_with_its_refund(
    emulator, org, topup_via_api, order
):
    emulator.configure_webhook(DEAD_URL)  # we deliver, concurrently, ourselves
    topup = topup_via_api("20")
    pi = pay(emulator, topup)
    emulator.client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 800})
    success = real_event_for(emulator, "payment_intent.succeeded", pi.id)
    refund = refunded_charge_event(emulator, pi.id)
    session = checkout_completed(
        topup_id=topup.pk, pi=pi.id, cents=2000, session_id=topup.checkout_session_id
    )
    deliveries = [success, success, success, session, refund, refund]
    if order == "refund_first":
        deliveries = [refund, refund, success, success, success, session]
    elif order == "shuffled":
        random.shuffle(deliveries)
    barrier = threading.Barrier(len(deliveries))
    statuses: list[int] = []

    def deliver(payload: str, delay: float) -> None:
        try:
            barrier.wait()
            time.sleep(delay)  # keeps the intended order loosely while still overlapping
            statuses.append(post(emulator.webhook_url, payload, sign(payload)))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=deliver, args=(payload, i * 0.005)) for i, payload in enumerate(deliveries)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * len(deliveries)
    # $20 + $1 bonus − $8 refund − 40 % of the bonus.
    assert balance(org) == 21 * USD - 8 * USD - USD * 2 // 5
    topup.refresh_from_db()
    assert (topup.status, topup.refunded_cents) == (TopUpStatus.PARTIALLY_REFUNDED, 800)
    assert LedgerEntry.objects.filter(kind=EntryKind.TOPUP).count() == 1
    assert LedgerEntry.objects.filter(kind=EntryKind.REFUND).count() == 1
    assert StripeEvent.objects.count() == 3  # success, session, refund: each stored once
