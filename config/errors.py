"""The one error hierarchy every app raises.

Each error carries a stable ``code``, an HTTP ``status``, ``extra`` detail and
optional response headers (``Retry-After``). Renderers per wire format live next to
the code that speaks that format: DRF (``config.exceptions``), OpenAI and Anthropic
(``inference``).
"""

from __future__ import annotations


class ApplicationError(Exception):
    code = "error"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra or {}
        self.headers = headers or {}


class NotFound(ApplicationError):
    code = "not_found"
    status = 404


class PermissionDenied(ApplicationError):
    code = "permission_denied"
    status = 403


class ValidationFailed(ApplicationError):
    code = "invalid"
    status = 400


class Conflict(ApplicationError):
    code = "conflict"
    status = 409
