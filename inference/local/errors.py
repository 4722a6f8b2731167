"""Errors of the local provider, shaped so the relay needs no special case.

``LocalModelError`` is an ``ApplicationError`` (an ``InvalidRequest`` by default: code,
status, message, extra — what our renderers read) *and* an ``openai.APIStatusError`` — the
class the relay's failover already catches around ``open_stream``. So, unchanged, the relay
treats a local refusal like an upstream's: a 4xx is not retried and reaches the caller as
a 400 in its own wire format, the hold is released and nothing is charged; a 5xx
(``local_model_unavailable``) is retried on the next channel and counts towards the
channel's cooldown.
"""

from __future__ import annotations

import httpx2
import openai

from ..errors import InvalidRequest

_REQUEST = httpx2.Request("POST", "http://local.invalid/")


class LocalModelError(InvalidRequest, openai.APIStatusError):
    def __init__(
        self, message: str, *, code: str = "invalid_request", status: int = 400, extra: dict | None = None
    ) -> None:
        extra = extra or {}
        error_type = "invalid_request_error" if status < 500 else "api_error"
        body = {"message": message, "type": error_type, "code": code, "param": extra.get("param")}
        response = httpx2.Response(status, request=_REQUEST, json={"error": body})
        # Not ApplicationError.__init__: its super() call would reach APIStatusError's.
        openai.APIStatusError.__init__(self, message, response=response, body=body)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra
        self.headers = {}


class LocalModelUnavailable(LocalModelError):
    """The ``ocr`` extra is not installed (or the model failed to load) in this process."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="local_model_unavailable", status=503)
