"""Stable error codes of the billing app (one enum, as in saleor's ``error_codes.py``)."""

from enum import StrEnum


class BillingErrorCode(StrEnum):
    INSUFFICIENT_QUOTA = "insufficient_quota"
    HOLD_NOT_FOUND = "hold_not_found"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    INVALID_AMOUNT = "invalid_amount"
    STRIPE_NOT_CONFIGURED = "stripe_not_configured"
    STRIPE_ERROR = "stripe_error"
    REDEMPTION_CODE_INVALID = "redemption_code_invalid"
    REDEMPTION_CODE_USED = "redemption_code_used"
    REDEMPTION_CODE_EXPIRED = "redemption_code_expired"
    REDEMPTION_RATE_LIMITED = "redemption_rate_limited"
