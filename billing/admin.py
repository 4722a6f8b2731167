"""Operators' view of the ledger. Money records are read-only; bonus rules are editable;
redemption batches are created here (the codes are downloaded once, as CSV)."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils import timezone

from . import payments, services
from .models import (
    BillingAccount,
    BonusRule,
    Hold,
    LedgerEntry,
    RedemptionBatch,
    RedemptionCode,
    SignupCreditClaim,
    StripeEvent,
    StripePayment,
    TopUp,
)
from .money import format_usd, usd_to_units


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BillingAccount)
class BillingAccountAdmin(ReadOnlyAdmin):
    list_display = ["organization", "balance_usd", "held_units", "low_balance_threshold_units", "created_at"]
    search_fields = ["organization__slug", "organization__name"]
    list_select_related = ["organization"]

    @admin.display(description="balance (USD)")
    def balance_usd(self, obj) -> str:
        return format_usd(obj.balance_units)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "created_at",
        "account",
        "kind",
        "amount_units",
        "balance_after_units",
        "description",
    ]
    list_filter = ["kind"]
    search_fields = ["account__organization__slug", "idempotency_key", "reference"]
    list_select_related = ["account"]
    date_hierarchy = "created_at"


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ["pk", "account", "amount_units", "status", "reference", "created_at", "expires_at"]
    list_filter = ["status"]
    search_fields = ["reference"]


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = ["pk", "account", "amount_cents", "status", "bonus_units", "refunded_cents", "created_at"]
    list_filter = ["status"]
    search_fields = ["checkout_session_id", "payment_intent_id", "account__organization__slug"]


@admin.register(StripePayment)
class StripePaymentAdmin(ReadOnlyAdmin):
    list_display = ["payment_intent_id", "topup", "amount_refunded_cents", "created_at"]
    search_fields = ["payment_intent_id"]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "status", "attempts", "received_at", "processed_at"]
    list_filter = ["status", "type"]
    search_fields = ["event_id"]
    actions = ["reprocess"]

    @admin.action(description="Process the selected failed events again")
    def reprocess(self, request, queryset):
        results = [payments.stripe_event_process(event_id=pk) for pk in queryset.values_list("pk", flat=True)]
        self.message_user(request, f"Results: {', '.join(results) or 'none'}", messages.INFO)

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SignupCreditClaim)
class SignupCreditClaimAdmin(ReadOnlyAdmin):
    list_display = ["email", "user", "account", "amount_units", "created_at"]
    search_fields = ["email"]


@admin.register(BonusRule)
class BonusRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "active", "min_amount_units", "percent_bp", "fixed_units", "first_topup_only"]
    list_editable = ["active"]


class RedemptionBatchForm(forms.ModelForm):
    value_usd = forms.DecimalField(max_digits=12, decimal_places=9, min_value=Decimal("0.000000001"))
    number_of_codes = forms.IntegerField(min_value=1, max_value=10_000)
    expires_in_days = forms.IntegerField(min_value=1, required=False)

    class Meta:
        model = RedemptionBatch
        fields = ["note"]


class RedemptionCodeInline(admin.TabularInline):
    model = RedemptionCode
    fields = ["prefix", "redeemed_at", "redeemed_account", "redeemed_by"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RedemptionBatch)
class RedemptionBatchAdmin(admin.ModelAdmin):
    """Adding a batch generates its codes and downloads them once as CSV."""

    list_display = ["pk", "value_usd", "count", "redeemed", "expires_at", "note", "created_by", "created_at"]
    inlines = [RedemptionCodeInline]

    @admin.display(description="value (USD)")
    def value_usd(self, obj) -> str:
        return format_usd(obj.value_units)

    @admin.display(description="redeemed")
    def redeemed(self, obj) -> int:
        return obj.codes.filter(redeemed_at__isnull=False).count()

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = RedemptionBatchForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ["value_units", "count", "expires_at", "created_by", "created_at"] if obj else []

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["note"])
            return
        days = form.cleaned_data.get("expires_in_days")
        batch, codes = services.redemption_batch_create(
            count=form.cleaned_data["number_of_codes"],
            value_units=usd_to_units(form.cleaned_data["value_usd"]),
            expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
            note=form.cleaned_data.get("note", ""),
            acting_user=request.user,
        )
        obj.pk = batch.pk
        obj._state.adding = False
        request._billing_new_codes = (batch, codes)

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def response_add(self, request, obj, post_url_continue=None):
        batch, codes = request._billing_new_codes
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="redemption-batch-{batch.pk}.csv"'
        writer = csv.writer(response)
        writer.writerow(["code", "value_usd", "expires_at", "batch"])
        for code in codes:
            writer.writerow([code, format_usd(batch.value_units), batch.expires_at or "", batch.pk])
        return response
