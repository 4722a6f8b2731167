"""Relay errors and their rendering in the caller's wire format.

OpenAI: ``{"error": {"message", "type", "code", "param"}}``.
Anthropic: ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import orjson
from django.http import HttpResponse

from config.errors import ApplicationError


class InvalidRequest(ApplicationError):
    code = "invalid_request"
    status = 400


class AuthenticationFailed(ApplicationError):
    code = "invalid_api_key"
    status = 401


class ModelNotAllowed(ApplicationError):
    code = "model_not_allowed"
    status = 403


class SpendCapReached(ApplicationError):
    code = "spend_cap_reached"
    status = 402


class UpstreamError(ApplicationError):
    """The upstream failed before any output reached the client."""

    code = "upstream_error"
    status = 502


class ServiceUnavailable(ApplicationError):
    """The gateway itself can't serve the request right now (its database is unreachable)."""

    code = "service_unavailable"
    status = 503


class NoChannel(ApplicationError):
    code = "no_channel_available"
    status = 503


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    410: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    410: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def _response(body: dict, exc: ApplicationError, request_id: str | None) -> HttpResponse:
    response = HttpResponse(orjson.dumps(body), status=exc.status, content_type="application/json")
    for name, value in exc.headers.items():
        response[name] = value
    if request_id:
        response["x-request-id"] = request_id
    return response


def openai_error(exc: ApplicationError, request_id: str | None = None) -> HttpResponse:
    error_type = _OPENAI_TYPES.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
    code = "insufficient_quota" if exc.status == 402 else exc.code
    body = {
        "error": {
            "message": exc.message,
            "type": error_type,
            "code": code,
            "param": exc.extra.get("param"),
        }
    }
    if exc.extra.get("models_that_can"):
        body["error"]["models_that_can"] = exc.extra["models_that_can"]
    return _response(body, exc, request_id)


def anthropic_error(exc: ApplicationError, request_id: str | None = None) -> HttpResponse:
    error_type = _ANTHROPIC_TYPES.get(
        exc.status, "api_error" if exc.status >= 500 else "invalid_request_error"
    )
    body = {"type": "error", "error": {"type": error_type, "message": exc.message}}
    if request_id:
        body["request_id"] = request_id
    return _response(body, exc, request_id)
