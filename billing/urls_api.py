from django.urls import path

from . import api

urlpatterns = [
    path("balance", api.BalanceGetApi.as_view(), name="api-balance"),
    path("ledger", api.LedgerListApi.as_view(), name="api-ledger"),
    path("ledger/<int:entry_id>", api.LedgerEntryDetailApi.as_view(), name="api-ledger-entry"),
    path("topups", api.TopUpListCreateApi.as_view(), name="api-topups"),
    path("topups/preview", api.TopUpPreviewApi.as_view(), name="api-topups-preview"),
    path("topups/options", api.TopUpOptionsApi.as_view(), name="api-topups-options"),
    path("topups/<int:topup_id>", api.TopUpDetailApi.as_view(), name="api-topup-detail"),
    path("redeem", api.RedemptionRedeemApi.as_view(), name="api-redeem"),
    path("billing/settings", api.BillingSettingsApi.as_view(), name="api-billing-settings"),
]
