"""DRF authentication with an API key (``Authorization: Bearer`` or ``x-api-key``)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions

from .keys import key_from_headers
from .models import ApiKey
from .selectors import api_key_lookup
from .services import api_key_touch


def api_key_check(key: ApiKey | None) -> str | None:
    """Why this key can't be used, or None when it can."""
    if key is None:
        return _("Invalid API key.")
    if key.revoked_at is not None:
        return _("This API key has been revoked.")
    if not key.is_active:
        return _("This API key has expired.")
    return None


class ApiKeyUser:
    """The principal of a key-authenticated request: it is no person."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False
    pk = None
    id = None

    def __init__(self, key: ApiKey) -> None:
        self.api_key = key

    def __str__(self) -> str:
        return f"api-key {self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        secret = key_from_headers(request.headers)
        if secret is None:
            return None
        key = api_key_lookup(secret=secret)
        problem = api_key_check(key)
        if problem:
            raise exceptions.AuthenticationFailed(problem)
        api_key_touch(key=key)
        return ApiKeyUser(key), key

    def authenticate_header(self, request) -> str:
        return self.keyword
