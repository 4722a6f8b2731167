"""Stripe: Checkout Sessions for top-ups, and the webhook events that credit them.

Flow: ``topup_checkout_create`` stores a pending ``TopUp`` and asks Stripe for a
Checkout Session (mode ``payment``; the top-up id travels in the session's and the
PaymentIntent's metadata). The customer pays on Stripe; Stripe sends signed events:

* ``checkout.session.completed`` with ``payment_status=paid`` (or
  ``checkout.session.async_payment_succeeded``) and ``payment_intent.succeeded`` —
  whichever comes first credits the top-up and its bonus in one transaction; the
  others find it credited (deduplicated by the PaymentIntent id);
* ``charge.refunded`` — debits the newly refunded part (``amount_refunded`` is
  cumulative, so only the increase counts) and claws back the bonus proportionally.
  If it arrives before the payment was credited, it is remembered on the
  ``StripePayment`` row and applied when the credit lands;
* ``checkout.session.expired`` — a pending top-up becomes expired.

Every event is verified over the raw body, stored (unique by event id) and then
processed in one transaction holding the stored event's row lock.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback
from decimal import Decimal, InvalidOperation

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .bonus import bonus_compute
from .errors import InvalidAmount, StripeError, StripeNotConfigured
from .models import (
    BillingAccount,
    BonusRule,
    EntryKind,
    StripeEvent,
    StripeEventStatus,
    StripePayment,
    TopUp,
    TopUpStatus,
)
from .money import UNITS_PER_CENT, cents_to_units, format_usd
from .services import _alert_check, _post_entry, billing_account_for_org

logger = logging.getLogger(__name__)


class WebhookRejected(Exception):
    """The request is not a genuine, fresh Stripe event (HTTP 400)."""


# --- configuration -------------------------------------------------------------------------


def stripe_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def _usd_setting(value) -> Decimal:
    return Decimal(str(value))


def topup_options() -> dict:
    return {
        "currency": "USD",
        "min_usd": _usd_setting(settings.TOPUP_MIN_USD),
        "max_usd": _usd_setting(settings.TOPUP_MAX_USD),
        "presets_usd": [_usd_setting(p) for p in settings.TOPUP_PRESETS_USD],
        "payment_methods": list(settings.STRIPE_CHECKOUT_PAYMENT_METHODS),
        "stripe_configured": stripe_configured(),
    }


def topup_amount_cents(amount_usd) -> int:
    """Validate a top-up amount in USD (whole cents, within the configured bounds)."""
    try:
        amount = Decimal(str(amount_usd).strip())
    except (InvalidOperation, ValueError):
        raise InvalidAmount(_("Enter an amount in US dollars, e.g. 25 or 25.50.")) from None
    low, high = _usd_setting(settings.TOPUP_MIN_USD), _usd_setting(settings.TOPUP_MAX_USD)
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise InvalidAmount(_("Amounts are in whole cents."))
    if not low <= amount <= high:
        raise InvalidAmount(
            _("Top-ups are between %(low)s and %(high)s USD.") % {"low": low, "high": high},
            extra={"min_usd": str(low), "max_usd": str(high)},
        )
    return int(amount * 100)


def _stripe_client() -> stripe.StripeClient:
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else {}
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, base_addresses=base, max_network_retries=2)


# --- checkout ---------------------------------------------------------------------------------


def _checkout_params(topup: TopUp, *, customer_email: str | None) -> dict:
    base = settings.MODELGATE_PUBLIC_URL.rstrip("/")
    metadata = {"topup_id": str(topup.pk), "org_id": str(topup.account.organization_id)}
    methods = list(settings.STRIPE_CHECKOUT_PAYMENT_METHODS)
    params: dict = {
        "mode": "payment",
        "payment_method_types": methods,
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": topup.amount_cents,
                    "product_data": {"name": _("Modelgate credit")},
                },
            }
        ],
        "client_reference_id": str(topup.pk),
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "success_url": f"{base}/billing/?topup={topup.pk}&checkout=success",
        "cancel_url": f"{base}/billing/?topup={topup.pk}&checkout=cancel",
    }
    if "wechat_pay" in methods:
        params["payment_method_options"] = {"wechat_pay": {"client": "web"}}
    if customer_email:
        params["customer_email"] = customer_email
    return params


def topup_checkout_create(*, org_id: int, amount_usd, acting_user=None) -> TopUp:
    """Create a pending top-up and its Stripe Checkout Session; the customer pays at
    ``topup.checkout_url``. No database transaction is open during the Stripe call."""
    if not stripe_configured():
        raise StripeNotConfigured(
            _(
                "Card payments are not configured on this deployment. "
                "Ask your operator for a redemption code and redeem it instead."
            ),
            extra={"redeem_url": "/api/redeem"},
        )
    cents = topup_amount_cents(amount_usd)
    account = billing_account_for_org(org_id=org_id)
    topup = TopUp.objects.create(account=account, created_by=acting_user, amount_cents=cents)
    topup.account = account
    params = _checkout_params(topup, customer_email=getattr(acting_user, "email", None))
    try:
        session = _stripe_client().v1.checkout.sessions.create(
            params=params, options={"idempotency_key": f"modelgate-topup-{topup.pk}"}
        )
    except stripe.StripeError as exc:
        logger.warning("stripe checkout session for top-up %s failed: %s", topup.pk, exc)
        TopUp.objects.filter(pk=topup.pk).update(status=TopUpStatus.FAILED, error=str(exc)[:2000])
        raise StripeError(
            _("The payment provider did not accept the request. Please try again later."),
            extra={"topup_id": topup.pk},
        ) from exc
    TopUp.objects.filter(pk=topup.pk).update(checkout_session_id=session.id, checkout_url=session.url or "")
    topup.refresh_from_db()
    return topup


# --- webhook: verify, store, process ----------------------------------------------------------


def stripe_event_verify(*, payload: bytes, signature: str) -> dict:
    """Verify the ``Stripe-Signature`` over the raw body (and its timestamp's freshness)."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise WebhookRejected("STRIPE_WEBHOOK_SECRET is not configured")
    try:
        stripe.Webhook.construct_event(
            payload, signature, secret, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
        )
        data = json.loads(payload)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(f"bad signature: {exc.user_message or exc}") from None
    except ValueError as exc:
        raise WebhookRejected(f"bad payload: {exc}") from None
    if not isinstance(data, dict) or not data.get("id") or not data.get("type"):
        raise WebhookRejected("not an event")
    return data


def stripe_event_store(*, data: dict, payload: str) -> StripeEvent:
    """Store the raw event once; a concurrent duplicate gets the existing row."""
    created = data.get("created")
    try:
        with transaction.atomic():
            return StripeEvent.objects.create(
                event_id=str(data["id"])[:255],
                type=str(data["type"])[:128],
                livemode=bool(data.get("livemode")),
                created=dt.datetime.fromtimestamp(created, tz=dt.UTC) if isinstance(created, int) else None,
                payload=payload,
            )
    except IntegrityError:
        return StripeEvent.objects.get(event_id=str(data["id"])[:255])


def stripe_event_process(*, event_id: int) -> str:
    """Apply one stored event, at most once. Returns the event's final status.

    Runs in one transaction holding the event's row lock, so concurrent duplicates
    wait and then find it processed. A failure rolls everything back and is recorded
    on the event (status ``failed``, the error, attempts) for a retry."""
    try:
        with transaction.atomic(durable=True):
            event = StripeEvent.objects.select_for_update().get(pk=event_id)
            if event.status in (StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED):
                return event.status
            applied, note = _dispatch(json.loads(event.payload))
            event.status = StripeEventStatus.PROCESSED if applied else StripeEventStatus.IGNORED
            event.error = note
            event.attempts += 1
            event.processed_at = timezone.now()
            event.save(update_fields=["status", "error", "attempts", "processed_at"])
            return event.status
    except Exception:
        logger.exception("stripe event %s failed", event_id)
        StripeEvent.objects.filter(pk=event_id).exclude(
            status__in=[StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED]
        ).update(
            status=StripeEventStatus.FAILED, attempts=F("attempts") + 1, error=traceback.format_exc()[-4000:]
        )
        return StripeEventStatus.FAILED


def stripe_webhook_receive(*, payload: bytes, signature: str) -> tuple[StripeEvent, str]:
    """Verify → store → process. Raises ``WebhookRejected`` before anything is written."""
    data = stripe_event_verify(payload=payload, signature=signature)
    event = stripe_event_store(data=data, payload=payload.decode("utf-8"))
    return event, stripe_event_process(event_id=event.pk)


def stripe_events_retry_failed(*, limit: int = 100) -> int:
    """Process again events whose processing failed (periodic task and admin action)."""
    ids = list(
        StripeEvent.objects.filter(status__in=[StripeEventStatus.FAILED, StripeEventStatus.PENDING])
        .filter(received_at__lte=timezone.now() - dt.timedelta(seconds=30))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(stripe_event_process(event_id=pk) == StripeEventStatus.PROCESSED for pk in ids)


# --- event handlers ---------------------------------------------------------------------------


def _id_of(value) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _topup_id_of(obj: dict) -> int | None:
    raw = (obj.get("metadata") or {}).get("topup_id") or obj.get("client_reference_id")
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _dispatch(event: dict) -> tuple[bool, str]:
    """(applied, note). ``applied`` False means the event was valid but not for us."""
    kind = event.get("type")
    obj = (event.get("data") or {}).get("object") or {}
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        if obj.get("mode") not in (None, "payment"):
            return False, "not a payment-mode session"
        if obj.get("payment_status") != "paid":
            return False, f"payment_status={obj.get('payment_status')}: waiting for the payment"
        return _topup_credit(
            topup_id=_topup_id_of(obj),
            payment_key=_id_of(obj.get("payment_intent")) or obj["id"],
            amount_cents=obj.get("amount_total"),
            currency=obj.get("currency"),
            session_id=obj.get("id"),
        )
    if kind == "payment_intent.succeeded":
        amount = obj.get("amount_received")
        return _topup_credit(
            topup_id=_topup_id_of(obj),
            payment_key=obj["id"],
            amount_cents=amount if amount else obj.get("amount"),
            currency=obj.get("currency"),
        )
    if kind == "charge.refunded":
        payment_key = _id_of(obj.get("payment_intent"))
        if not payment_key:
            return False, "charge without a PaymentIntent"
        return _topup_refund_record(
            payment_key=payment_key, amount_refunded_cents=int(obj.get("amount_refunded") or 0)
        )
    if kind == "checkout.session.expired":
        n = TopUp.objects.filter(checkout_session_id=obj.get("id"), status=TopUpStatus.PENDING).update(
            status=TopUpStatus.EXPIRED
        )
        return bool(n), "" if n else "no pending top-up for this session"
    return False, f"event type {kind} is not handled"


def _payment_lock(payment_key: str) -> StripePayment:
    """The row that serializes everything about one payment (created by the first event)."""
    payment, _created = StripePayment.objects.get_or_create(payment_intent_id=payment_key)
    return StripePayment.objects.select_for_update().get(pk=payment.pk)


def _topup_credit(
    *, topup_id: int | None, payment_key: str, amount_cents, currency, session_id: str | None = None
) -> tuple[bool, str]:
    if topup_id is None:
        return False, "no top-up id in the metadata"
    payment = _payment_lock(payment_key)
    topup = TopUp.objects.select_for_update().filter(pk=topup_id).first()
    if topup is None:
        return False, f"no top-up {topup_id}"
    if topup.credited_at is not None:
        if topup.payment_intent_id != payment_key:
            raise ValueError(f"top-up {topup.pk} was already paid by {topup.payment_intent_id}")
        return True, "already credited"
    if payment.topup_id is not None and payment.topup_id != topup.pk:
        raise ValueError(f"payment {payment_key} already credited top-up {payment.topup_id}")
    if (currency or "").lower() != "usd" or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise ValueError(f"unexpected amount {amount_cents!r} {currency!r}")
    account = BillingAccount.objects.select_for_update().get(pk=topup.account_id)
    amount_units = cents_to_units(amount_cents)
    preview = bonus_compute(
        rules=BonusRule.objects.filter(active=True),
        amount_units=amount_units,
        is_first_topup=not TopUp.objects.filter(account=account, credited_at__isnull=False).exists(),
    )
    reference = f"stripe:{payment_key}"
    _post_entry(
        account_id=account.pk,
        kind=EntryKind.TOPUP,
        amount_units=amount_units,
        idempotency_key=f"topup:{topup.pk}",
        reference=reference,
        description=_("Top-up %(usd)s USD") % {"usd": format_usd(amount_units)},
        metadata={"payment_intent": payment_key, "amount_cents": amount_cents},
        acting_user=topup.created_by,
        topup_id=topup.pk,
    )
    if preview.bonus_units:
        _post_entry(
            account_id=account.pk,
            kind=EntryKind.BONUS,
            amount_units=preview.bonus_units,
            idempotency_key=f"topup-bonus:{topup.pk}",
            reference=reference,
            description=_("Bonus: %(rules)s") % {"rules": ", ".join(preview.rules)},
            metadata={"rules": list(preview.rules), "first_topup": preview.is_first_topup},
            topup_id=topup.pk,
        )
    topup.status = TopUpStatus.CREDITED
    topup.credited_at = timezone.now()
    topup.credited_cents = amount_cents
    topup.bonus_units = preview.bonus_units
    topup.payment_intent_id = payment_key
    if session_id and not topup.checkout_session_id:
        topup.checkout_session_id = session_id
    topup.error = (
        "" if amount_cents == topup.amount_cents else f"paid {amount_cents}¢, asked {topup.amount_cents}¢"
    )
    topup.save(
        update_fields=[
            "status",
            "credited_at",
            "credited_cents",
            "bonus_units",
            "payment_intent_id",
            "checkout_session_id",
            "error",
        ]
    )
    payment.topup = topup
    payment.save(update_fields=["topup"])
    if payment.amount_refunded_cents:
        _topup_apply_refund(topup=topup, payment=payment)
    return True, ""


def _topup_refund_record(*, payment_key: str, amount_refunded_cents: int) -> tuple[bool, str]:
    payment = _payment_lock(payment_key)
    if amount_refunded_cents > payment.amount_refunded_cents:
        payment.amount_refunded_cents = amount_refunded_cents
        payment.save(update_fields=["amount_refunded_cents"])
    if payment.topup_id is None:
        return True, "refund recorded; applied when the payment is credited"
    topup = TopUp.objects.select_for_update().get(pk=payment.topup_id)
    BillingAccount.objects.select_for_update().filter(pk=topup.account_id).values_list("pk").get()
    applied = _topup_apply_refund(topup=topup, payment=payment)
    return True, "" if applied else "refund already applied"


def _topup_apply_refund(*, topup: TopUp, payment: StripePayment) -> bool:
    """Bring the top-up's refunded amount up to what Stripe says, with the bonus
    clawed back in proportion (cumulative arithmetic: no rounding drift)."""
    target = min(payment.amount_refunded_cents, topup.credited_cents)
    if target <= topup.refunded_cents:
        return False
    delta_cents = target - topup.refunded_cents
    reference = f"stripe:{payment.payment_intent_id}"
    _post_entry(
        account_id=topup.account_id,
        kind=EntryKind.REFUND,
        amount_units=-delta_cents * UNITS_PER_CENT,
        idempotency_key=f"refund:{topup.pk}:{target}",
        reference=reference,
        description=_("Refund of %(usd)s USD") % {"usd": format_usd(delta_cents * UNITS_PER_CENT)},
        metadata={"refunded_cents_total": target},
        topup_id=topup.pk,
    )
    clawed_total = topup.bonus_units * target // topup.credited_cents
    claw = clawed_total - topup.bonus_clawed_back_units
    if claw > 0:
        _post_entry(
            account_id=topup.account_id,
            kind=EntryKind.BONUS_CLAWBACK,
            amount_units=-claw,
            idempotency_key=f"refund-bonus:{topup.pk}:{target}",
            reference=reference,
            description=_("Bonus returned with the refund"),
            metadata={"refunded_cents_total": target},
            topup_id=topup.pk,
        )
    topup.refunded_cents = target
    topup.bonus_clawed_back_units = clawed_total
    topup.status = TopUpStatus.REFUNDED if target == topup.credited_cents else TopUpStatus.PARTIALLY_REFUNDED
    topup.save(update_fields=["refunded_cents", "bonus_clawed_back_units", "status"])
    _alert_check(topup.account_id)
    return True
