"""API-key authentication for the ``/v1`` routes (relay, files, batches)."""

from __future__ import annotations

from accounts.authentication import api_key_check
from accounts.models import ApiKey
from accounts.selectors import api_key_lookup
from accounts.services import api_key_touch

from .errors import AuthenticationFailed


def v1_authenticate(secret: str | None) -> ApiKey:
    """The usable key for a presented secret, or ``AuthenticationFailed`` (401 in the caller's format)."""
    key = api_key_lookup(secret=secret) if secret else None
    problem = api_key_check(key) if secret else "Missing API key: send `Authorization: Bearer <key>`."
    if problem:
        raise AuthenticationFailed(problem)
    api_key_touch(key=key)
    return key
