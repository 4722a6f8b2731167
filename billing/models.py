"""The ledger: accounts, append-only entries, holds, top-ups, Stripe events, bonus rules,
redemption codes and signup-credit claims.

Data and constraints only. Every amount is an integer of nano-USD (10⁻⁹ USD); Stripe
amounts in cents are kept in fields whose name says ``_cents``. Every write goes
through ``billing.services`` / ``billing.payments``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class BillingAccount(models.Model):
    """One per organization. ``balance_units`` == Σ entries; ``held_units`` == Σ open holds."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.PROTECT, related_name="billing_account"
    )
    balance_units = models.BigIntegerField(default=0)
    held_units = models.BigIntegerField(default=0)
    low_balance_threshold_units = models.BigIntegerField(
        null=True, blank=True, help_text="Alert owners/admins when the available balance falls below this."
    )
    # Set when the alert has been sent; cleared (re-armed) by any credit.
    low_balance_alerted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(condition=Q(held_units__gte=0), name="billing_account_held_non_negative"),
            models.CheckConstraint(
                condition=Q(low_balance_threshold_units__isnull=True) | Q(low_balance_threshold_units__gte=0),
                name="billing_account_threshold_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"account of org {self.organization_id}"

    @property
    def available_units(self) -> int:
        return self.balance_units - self.held_units


class EntryKind(models.TextChoices):
    SIGNUP_CREDIT = "signup_credit", _("Signup credit")
    TOPUP = "topup", _("Top-up")
    BONUS = "bonus", _("Top-up bonus")
    REDEMPTION = "redemption", _("Redemption code")
    USAGE = "usage", _("Usage")
    REFUND = "refund", _("Refund")
    BONUS_CLAWBACK = "bonus_clawback", _("Bonus clawback")
    ADJUSTMENT = "adjustment", _("Adjustment")


class LedgerEntry(models.Model):
    """Append-only. A correction is a new (reversing) entry, never an update."""

    account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=24, choices=EntryKind.choices)
    amount_units = models.BigIntegerField()
    balance_after_units = models.BigIntegerField()
    idempotency_key = models.CharField(max_length=200, unique=True)
    reference = models.CharField(max_length=200, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    hold = models.ForeignKey("Hold", null=True, blank=True, on_delete=models.PROTECT, related_name="entries")
    topup = models.ForeignKey(
        "TopUp", null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-pk"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["account", "-id"], name="billing_entry_account_id"),
            models.Index(fields=["account", "kind", "-id"], name="billing_entry_account_kind"),
            models.Index(fields=["account", "created_at"], name="billing_entry_account_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.amount_units}"


class HoldStatus(models.TextChoices):
    OPEN = "open", _("Open")
    SETTLED = "settled", _("Settled")
    RELEASED = "released", _("Released")
    EXPIRED = "expired", _("Expired")


class Hold(models.Model):
    """Money reserved for a request in flight. Leaves ``open`` exactly once."""

    account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="holds")
    amount_units = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=HoldStatus.choices, default=HoldStatus.OPEN)
    reference = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # What was charged for it (settled, or charged late after expiry).
    settled_units = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_units__gte=0), name="billing_hold_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(status="open", ended_at__isnull=True)
                | (~Q(status="open") & Q(ended_at__isnull=False)),
                name="billing_hold_ended_iff_not_open",
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="billing_hold_status_expiry")]

    def __str__(self) -> str:
        return f"hold #{self.pk} {self.amount_units} {self.status}"


class TopUpStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for payment")
    CREDITED = "credited", _("Credited")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")
    EXPIRED = "expired", _("Expired")
    FAILED = "failed", _("Failed")


class TopUp(models.Model):
    """A Stripe Checkout payment of ``amount_cents`` US cents."""

    account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="topups")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=24, choices=TopUpStatus.choices, default=TopUpStatus.PENDING)
    checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    checkout_url = models.TextField(blank=True, default="")
    payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    credited_cents = models.PositiveIntegerField(default=0)
    bonus_units = models.BigIntegerField(default=0)
    refunded_cents = models.PositiveIntegerField(default=0)
    bonus_clawed_back_units = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    credited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="billing_topup_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_cents__lte=models.F("credited_cents")),
                name="billing_topup_refund_le_credit",
            ),
        ]

    def __str__(self) -> str:
        return f"top-up #{self.pk} {self.amount_cents}¢ {self.status}"


class StripePayment(models.Model):
    """What we know about one PaymentIntent, whichever event told us first.

    The row is the lock that serializes crediting and refunding one payment, so the
    outcome does not depend on delivery order: a refund that arrives before the
    payment's success is remembered here and applied when the credit lands.
    """

    payment_intent_id = models.CharField(max_length=255, unique=True)
    topup = models.OneToOneField(
        TopUp, null=True, blank=True, on_delete=models.PROTECT, related_name="payment"
    )
    # The highest cumulative ``charge.amount_refunded`` seen.
    amount_refunded_cents = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.payment_intent_id


class StripeEventStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Ignored")
    FAILED = "failed", _("Failed")


class StripeEvent(models.Model):
    """A verified webhook event, stored raw before it is processed; unique by event id."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=128)
    livemode = models.BooleanField(default=False)
    created = models.DateTimeField(null=True, blank=True, help_text="When Stripe created the event.")
    payload = models.TextField(help_text="The raw request body, as signed.")
    status = models.CharField(
        max_length=16, choices=StripeEventStatus.choices, default=StripeEventStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["status", "received_at"], name="billing_event_status")]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} {self.status}"


class BonusRule(models.Model):
    """Top-up bonus, editable in the admin.

    A rule applies to a top-up of at least ``min_amount_units`` (and only to the
    organization's first credited top-up when ``first_topup_only``). The bonus of a
    top-up is the best applicable percentage plus the best applicable fixed amount.
    """

    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    min_amount_units = models.BigIntegerField(default=0)
    percent_bp = models.PositiveIntegerField(default=0, help_text="Basis points: 500 = 5%.")
    fixed_units = models.BigIntegerField(default=0)
    first_topup_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["min_amount_units", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_amount_units__gte=0), name="billing_bonus_min_non_negative"
            ),
            models.CheckConstraint(condition=Q(fixed_units__gte=0), name="billing_bonus_fixed_non_negative"),
            models.CheckConstraint(condition=Q(percent_bp__lte=10_000), name="billing_bonus_percent_le_100"),
        ]

    def __str__(self) -> str:
        return self.name


class SignupCreditClaim(models.Model):
    """The signup credit is granted once per verified e-mail address, ever (and once per user)."""

    email = models.CharField(max_length=254, unique=True, help_text="Normalized address.")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="+")
    amount_units = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.email


class RedemptionBatch(models.Model):
    value_units = models.BigIntegerField()
    count = models.PositiveIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-pk"]
        verbose_name_plural = "redemption batches"
        constraints = [
            models.CheckConstraint(condition=Q(value_units__gt=0), name="billing_batch_value_positive"),
        ]

    def __str__(self) -> str:
        return f"batch #{self.pk} ({self.count} × {self.value_units})"


class RedemptionCode(models.Model):
    """A single-use code. Only its SHA-256 and a display prefix are stored."""

    batch = models.ForeignKey(RedemptionBatch, on_delete=models.PROTECT, related_name="codes")
    code_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_account = models.ForeignKey(
        BillingAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.prefix}…"
