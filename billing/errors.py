"""Billing errors: subclasses of the one ``ApplicationError`` hierarchy."""

from __future__ import annotations

from config.errors import ApplicationError, Conflict, NotFound, ValidationFailed

from .error_codes import BillingErrorCode


class InsufficientBalance(ApplicationError):
    """The available balance (balance − open holds) does not cover the amount."""

    code = BillingErrorCode.INSUFFICIENT_QUOTA
    status = 402


class HoldNotFound(NotFound):
    code = BillingErrorCode.HOLD_NOT_FOUND


class IdempotencyConflict(Conflict):
    code = BillingErrorCode.IDEMPOTENCY_CONFLICT


class InvalidAmount(ValidationFailed):
    code = BillingErrorCode.INVALID_AMOUNT


class StripeNotConfigured(ApplicationError):
    code = BillingErrorCode.STRIPE_NOT_CONFIGURED
    status = 503


class StripeError(ApplicationError):
    code = BillingErrorCode.STRIPE_ERROR
    status = 502


class RedemptionCodeInvalid(ApplicationError):
    code = BillingErrorCode.REDEMPTION_CODE_INVALID
    status = 400


class RedemptionRateLimited(ApplicationError):
    code = BillingErrorCode.REDEMPTION_RATE_LIMITED
    status = 429
