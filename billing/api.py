"""Billing management API (``/api/``): balance, statement, top-ups, redemption, settings.

Every view works on the organization from ``api_context(request)``; another
organization's objects are 404.
"""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_context import HasOrgPermission, api_context
from accounts.permissions import Perm
from config.pagination import page_of, paginated_response

from . import payments, selectors, services
from .errors import InvalidAmount
from .models import EntryKind
from .money import format_usd, usd_to_units


class UsdField(serializers.DecimalField):
    """A USD amount as a decimal string (never a float)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 18)
        kwargs.setdefault("decimal_places", 9)
        kwargs.setdefault("coerce_to_string", True)
        super().__init__(**kwargs)


def _usd(units: int) -> str:
    return format_usd(units)


class BalanceGetApi(APIView):
    permission_classes = [HasOrgPermission.of(Perm.BALANCE_VIEW)]

    class OutputSerializer(serializers.Serializer):
        currency = serializers.CharField()
        balance = serializers.CharField(help_text="USD, decimal string.")
        balance_units = serializers.IntegerField(help_text="nano-USD (10⁻⁹ USD).")
        held_units = serializers.IntegerField()
        available_units = serializers.IntegerField()

    @extend_schema(responses=OutputSerializer, operation_id="balance_get")
    def get(self, request):
        balance = selectors.balance_for_org(org_id=api_context(request).org.pk)
        return Response(
            self.OutputSerializer(
                {
                    "currency": "USD",
                    "balance": _usd(balance.balance_units),
                    "balance_units": balance.balance_units,
                    "held_units": balance.held_units,
                    "available_units": balance.available_units,
                }
            ).data
        )


class _EntryOut(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = serializers.CharField()
    amount_units = serializers.IntegerField()
    amount = serializers.SerializerMethodField()
    balance_after_units = serializers.IntegerField(help_text="Running balance after this entry.")
    balance_after = serializers.SerializerMethodField()
    description = serializers.CharField()
    reference = serializers.CharField()
    topup_id = serializers.IntegerField(allow_null=True)

    def get_amount(self, obj) -> str:
        return _usd(obj.amount_units)

    def get_balance_after(self, obj) -> str:
        return _usd(obj.balance_after_units)


class LedgerListApi(APIView):
    permission_classes = [HasOrgPermission.of(Perm.BILLING_VIEW)]

    class FilterSerializer(serializers.Serializer):
        kind = serializers.MultipleChoiceField(choices=EntryKind.choices, required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    class OutputSerializer(_EntryOut):
        pass

    @extend_schema(
        parameters=[FilterSerializer], responses=page_of(OutputSerializer), operation_id="ledger_list"
    )
    def get(self, request):
        ctx = api_context(request)
        query = request.query_params.copy()
        if "kind" in query:  # accept kind=a,b as well as kind=a&kind=b
            query.setlist("kind", [k for v in query.getlist("kind") for k in v.split(",") if k])
        filters = self.FilterSerializer(data=query)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        qs = selectors.ledger_for_org(
            org_id=ctx.org.pk,
            kinds=sorted(data.get("kind", [])) or None,
            since=data.get("since"),
            until=data.get("until"),
        )
        return paginated_response(request, self, qs, self.OutputSerializer)


class LedgerEntryDetailApi(APIView):
    permission_classes = [HasOrgPermission.of(Perm.BILLING_VIEW)]

    class OutputSerializer(_EntryOut):
        metadata = serializers.JSONField()

    @extend_schema(responses=OutputSerializer, operation_id="ledger_entry_get")
    def get(self, request, entry_id: int):
        entry = selectors.ledger_entry_get(org_id=api_context(request).org.pk, entry_id=entry_id)
        return Response(self.OutputSerializer(entry).data)


class _TopUpOut(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    status = serializers.CharField()
    amount_usd = serializers.SerializerMethodField()
    amount_cents = serializers.IntegerField()
    bonus_units = serializers.IntegerField()
    refunded_cents = serializers.IntegerField()
    credited_at = serializers.DateTimeField(allow_null=True)
    checkout_url = serializers.CharField()

    def get_amount_usd(self, obj) -> str:
        return f"{Decimal(obj.amount_cents) / 100:.2f}"


class TopUpListCreateApi(APIView):
    def get_permissions(self):
        perm = Perm.BILLING_TOPUP if self.request.method == "POST" else Perm.BILLING_VIEW
        return [HasOrgPermission.of(perm)()]

    class InputSerializer(serializers.Serializer):
        amount_usd = serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=True)

    class OutputSerializer(_TopUpOut):
        pass

    class CreatedSerializer(serializers.Serializer):
        topup_id = serializers.IntegerField()
        checkout_url = serializers.CharField()

    @extend_schema(responses=page_of(OutputSerializer), operation_id="topup_list")
    def get(self, request):
        qs = selectors.topups_for_org(org_id=api_context(request).org.pk)
        return paginated_response(request, self, qs, self.OutputSerializer)

    @extend_schema(request=InputSerializer, responses={201: CreatedSerializer}, operation_id="topup_create")
    def post(self, request):
        ctx = api_context(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        topup = payments.topup_checkout_create(
            org_id=ctx.org.pk, amount_usd=data.validated_data["amount_usd"], acting_user=request.user
        )
        return Response(
            self.CreatedSerializer({"topup_id": topup.pk, "checkout_url": topup.checkout_url}).data,
            status=status.HTTP_201_CREATED,
        )


class TopUpDetailApi(APIView):
    permission_classes = [HasOrgPermission.of(Perm.BILLING_VIEW)]

    class OutputSerializer(_TopUpOut):
        pass

    @extend_schema(responses=OutputSerializer, operation_id="topup_get")
    def get(self, request, topup_id: int):
        topup = selectors.topup_get(org_id=api_context(request).org.pk, topup_id=topup_id)
        return Response(self.OutputSerializer(topup).data)


class TopUpPreviewApi(APIView):
    permission_classes = [HasOrgPermission.of(Perm.BILLING_VIEW)]

    class InputSerializer(serializers.Serializer):
        amount_usd = serializers.DecimalField(max_digits=12, decimal_places=2)

    class OutputSerializer(serializers.Serializer):
        amount_usd = serializers.CharField()
        bonus_usd = serializers.CharField()
        total_usd = serializers.CharField()
        amount_units = serializers.IntegerField()
        bonus_units = serializers.IntegerField()
        total_units = serializers.IntegerField()
        first_topup = serializers.BooleanField()
        rules = serializers.ListField(child=serializers.CharField())

    @extend_schema(parameters=[InputSerializer], responses=OutputSerializer, operation_id="topup_preview")
    def get(self, request):
        ctx = api_context(request)
        data = self.InputSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        amount = data.validated_data["amount_usd"]
        if amount <= 0:
            raise InvalidAmount("amount_usd must be positive.")
        preview = selectors.bonus_preview(org_id=ctx.org.pk, amount_units=usd_to_units(amount))
        return Response(
            self.OutputSerializer(
                {
                    "amount_usd": _usd(preview.amount_units),
                    "bonus_usd": _usd(preview.bonus_units),
                    "total_usd": _usd(preview.total_units),
                    "amount_units": preview.amount_units,
                    "bonus_units": preview.bonus_units,
                    "total_units": preview.total_units,
                    "first_topup": preview.is_first_topup,
                    "rules": list(preview.rules),
                }
            ).data
        )


class TopUpOptionsApi(APIView):
    permission_classes = [HasOrgPermission.of(Perm.BILLING_VIEW)]

    class OutputSerializer(serializers.Serializer):
        currency = serializers.CharField()
        min_usd = serializers.DecimalField(max_digits=12, decimal_places=2)
        max_usd = serializers.DecimalField(max_digits=12, decimal_places=2)
        presets_usd = serializers.ListField(child=serializers.DecimalField(max_digits=12, decimal_places=2))
        payment_methods = serializers.ListField(child=serializers.CharField())
        stripe_configured = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer, operation_id="topup_options")
    def get(self, request):
        return Response(self.OutputSerializer(payments.topup_options()).data)


class RedemptionRedeemApi(APIView):
    permission_classes = [HasOrgPermission.of(Perm.BILLING_TOPUP)]

    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(max_length=64)

    class OutputSerializer(serializers.Serializer):
        credited_units = serializers.IntegerField()
        credited = serializers.CharField()
        balance_units = serializers.IntegerField()
        entry_id = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer, operation_id="redeem")
    def post(self, request):
        ctx = api_context(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = services.redemption_redeem(
            org_id=ctx.org.pk, code=data.validated_data["code"], acting_user=ctx.require_membership().user
        )
        return Response(
            self.OutputSerializer(
                {
                    "credited_units": entry.amount_units,
                    "credited": _usd(entry.amount_units),
                    "balance_units": entry.balance_after_units,
                    "entry_id": entry.pk,
                }
            ).data
        )


class BillingSettingsApi(APIView):
    def get_permissions(self):
        perm = Perm.BILLING_TOPUP if self.request.method == "PATCH" else Perm.BILLING_VIEW
        return [HasOrgPermission.of(perm)()]

    class InputSerializer(serializers.Serializer):
        low_balance_threshold_usd = UsdField(allow_null=True, min_value=Decimal(0))

    class OutputSerializer(serializers.Serializer):
        low_balance_threshold_usd = serializers.CharField(allow_null=True)
        low_balance_threshold_units = serializers.IntegerField(allow_null=True)

    def _render(self, account):
        units = account.low_balance_threshold_units
        return self.OutputSerializer(
            {
                "low_balance_threshold_usd": None if units is None else _usd(units),
                "low_balance_threshold_units": units,
            }
        ).data

    @extend_schema(responses=OutputSerializer, operation_id="billing_settings_get")
    def get(self, request):
        return Response(self._render(services.billing_account_for_org(org_id=api_context(request).org.pk)))

    @extend_schema(
        request=InputSerializer, responses=OutputSerializer, operation_id="billing_settings_update"
    )
    def patch(self, request):
        ctx = api_context(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        value = data.validated_data["low_balance_threshold_usd"]
        account = services.billing_settings_update(
            org_id=ctx.org.pk, low_balance_threshold_units=None if value is None else usd_to_units(value)
        )
        return Response(self._render(account))
