"""DRF exception handler: one error shape for ``/api/``.

``{"error": {"message": …, "code": …, "extra": {…}}}``
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.errors import ApplicationError


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            message = _first_message(value)
            return message if key == "non_field_errors" else f"{key}: {message}"
        return "Invalid input."
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid input."
    return str(detail)


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        response = Response(
            {"error": {"message": exc.message, "code": exc.code, "extra": exc.extra}}, status=exc.status
        )
        for name, value in exc.headers.items():
            response[name] = value
        return response
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        body = {"message": _first_message(exc.detail), "code": "invalid", "extra": {"fields": exc.detail}}
    else:
        codes = exc.get_codes() if isinstance(exc, drf_exceptions.APIException) else "error"
        body = {
            "message": _first_message(response.data.get("detail", response.data)),
            "code": codes if isinstance(codes, str) else "error",
            "extra": {},
        }
    response.data = {"error": body}
    return response
