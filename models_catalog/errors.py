"""Catalogue errors, all ``config.errors.ApplicationError`` with stable codes."""

from __future__ import annotations

from config.errors import ApplicationError, NotFound, ValidationFailed


class ModelNotFound(NotFound):
    code = "model_not_found"
    status = 404


class ModelRetired(ApplicationError):
    code = "model_retired"
    status = 410


class CapabilityMismatch(ApplicationError):
    code = "model_capability_mismatch"
    status = 400


class PriceNotAvailable(ApplicationError):
    code = "price_not_available"
    status = 422


class PricingPlanNotFound(NotFound):
    code = "pricing_plan_not_found"


class InvalidUsage(ValidationFailed):
    code = "invalid_usage"


class ChannelNotFound(NotFound):
    code = "channel_not_found"
