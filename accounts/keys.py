"""API-key secrets: generation, hashing and parsing of request headers."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "mg-"
SECRET_BYTES = 32
DISPLAY_PREFIX_LENGTH = 10  # "mg-" + 7 characters


def key_generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_display_prefix(secret: str) -> str:
    return secret[:DISPLAY_PREFIX_LENGTH]


def key_from_headers(headers) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``x-api-key: <key>``.

    ``headers`` is any case-insensitive mapping (``request.headers``).
    """
    authorization = headers.get("Authorization", "")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    value = headers.get("x-api-key", "").strip()
    return value or None


def looks_like_key(secret: str) -> bool:
    return secret.startswith(KEY_PREFIX) and 40 <= len(secret) <= 128
