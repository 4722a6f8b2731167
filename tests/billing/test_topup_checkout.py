"""Creating a top-up: a Stripe Checkout Session, checked against a local endpoint that
records exactly what the SDK sent."""

from __future__ import annotations

import pytest

from billing.models import TopUp, TopUpStatus
from tests.billing.stripe_support import FakeCheckout

pytestmark = pytest.mark.django_db


def test_owner_gets_a_checkout_url_and_stripe_gets_the_topup_in_metadata(org, session_client, fake_checkout):
    response = session_client(org).post("/api/topups", {"amount_usd": "25.50"}, format="json")
    assert response.status_code == 201, response.content
    topup = TopUp.objects.get()
    assert response.json() == {"topup_id": topup.pk, "checkout_url": topup.checkout_url}
    assert topup.checkout_url.startswith("https://checkout.stripe.com/c/pay/cs_test_")
    assert (topup.amount_cents, topup.status) == (2550, TopUpStatus.PENDING)
    assert topup.checkout_session_id.startswith("cs_test_")
    [request] = fake_checkout.requests
    assert request["path"] == "/v1/checkout/sessions"
    assert request["headers"]["Authorization"] == "Bearer sk_test_fake"
    assert request["headers"]["Idempotency-Key"] == f"modelgate-topup-{topup.pk}"
    form = request["form"]
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["line_items[0][price_data][unit_amount]"] == "2550"
    assert form["line_items[0][quantity]"] == "1"
    assert form["payment_intent_data[metadata][topup_id]"] == str(topup.pk)
    assert form["metadata[topup_id]"] == str(topup.pk)
    assert form["client_reference_id"] == str(topup.pk)
    assert form["payment_method_types[0]"] == "card"
    assert form["customer_email"] == org.user.email
    assert "/billing/?topup=" in form["success_url"]


def test_payment_methods_are_configurable(org, session_client, fake_checkout, settings):
    settings.STRIPE_CHECKOUT_PAYMENT_METHODS = ["card", "alipay", "wechat_pay"]
    assert session_client(org).post("/api/topups", {"amount_usd": "10"}, format="json").status_code == 201
    form = fake_checkout.requests[0]["form"]
    methods = [form[f"payment_method_types[{i}]"] for i in range(3)]
    assert methods == ["card", "alipay", "wechat_pay"]
    assert form["payment_method_options[wechat_pay][client]"] == "web"


@pytest.mark.parametrize("amount", ["4.99", "2000.01", "10.001", "-5", "abc"])
def test_amount_outside_bounds_or_not_whole_cents_is_refused(org, session_client, fake_checkout, amount):
    response = session_client(org).post("/api/topups", {"amount_usd": amount}, format="json")
    assert response.status_code == 400
    assert fake_checkout.requests == []
    assert not TopUp.objects.exists()


def test_without_stripe_keys_the_error_points_to_redemption_codes(org, session_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    response = session_client(org).post("/api/topups", {"amount_usd": "10"}, format="json")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "stripe_not_configured"
    assert "redemption code" in error["message"]
    assert error["extra"]["redeem_url"] == "/api/redeem"
    options = session_client(org).get("/api/topups/options").json()
    assert options["stripe_configured"] is False


def test_stripe_refusing_the_session_marks_the_topup_failed(org, session_client, settings):
    server = FakeCheckout(fail=True)
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_API_BASE = server.url
    try:
        response = session_client(org).post("/api/topups", {"amount_usd": "10"}, format="json")
    finally:
        server.stop()
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "stripe_error"
    topup = TopUp.objects.get()
    assert topup.status == TopUpStatus.FAILED
    assert "No such thing" in topup.error


def test_member_cannot_top_up_and_a_key_cannot_either(
    org, add_member, session_client, key_client, fake_checkout
):
    member = add_member(org.organization, "member")
    response = session_client(member).post("/api/topups", {"amount_usd": "10"}, format="json")
    assert response.status_code == 403
    assert key_client(org).post("/api/topups", {"amount_usd": "10"}, format="json").status_code == 403
    assert fake_checkout.requests == []


def test_admin_can_top_up(org, add_member, session_client, fake_checkout):
    admin = add_member(org.organization, "admin")
    assert session_client(admin).post("/api/topups", {"amount_usd": "10"}, format="json").status_code == 201


def test_topup_page_without_stripe_says_so(org, settings, client):
    settings.STRIPE_SECRET_KEY = ""
    client.force_login(org.user)
    page = client.get("/billing/")
    assert page.status_code == 200
    assert b"Card payments are not configured" in page.content
    assert b"Redeem a code" in page.content


def test_topup_page_form_redirects_to_checkout(org, client, fake_checkout):
    client.force_login(org.user)
    page = client.get("/billing/")
    assert b"Pay with Stripe" in page.content
    response = client.post("/billing/topup/", {"amount_usd": "10"})
    assert response.status_code == 302
    assert response["Location"] == TopUp.objects.get().checkout_url


def test_billing_page_for_a_member_shows_the_balance_but_no_payment_forms(org, add_member, client, grant):
    grant(org.organization_id, 1_250_000_000)
    member = add_member(org.organization, "member")
    client.force_login(member.user)
    page = client.get("/billing/")
    assert page.status_code == 200
    assert b"1.25 USD" in page.content
    assert b"Redeem a code" not in page.content
    assert client.post("/billing/topup/", {"amount_usd": "10"}).status_code == 403
    assert client.post("/billing/redeem/", {"code": "x"}).status_code == 403


def test_redeem_form_on_the_billing_page(org, client):
    from billing.services import redemption_batch_create

    _batch, [code] = redemption_batch_create(count=1, value_units=2_000_000_000)
    client.force_login(org.user)
    response = client.post("/billing/redeem/", {"code": code}, follow=True)
    assert b"2.00 USD credited." in response.content
