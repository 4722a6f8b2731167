"""Channel API keys at rest: Fernet tokens under ``settings.FIELD_ENCRYPTION_KEYS``.

The setting is a list, newest key first. Encryption always uses the newest key;
decryption tries every key (``MultiFernet``), so a new key can be prepended, every
stored token re-encrypted (``channel_keys_rotate``), and the old key dropped.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from config.errors import ApplicationError


class SecretDecryptionFailed(ApplicationError):
    code = "secret_decryption_failed"
    status = 500


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty.")
    try:
        return MultiFernet([Fernet(key.strip().encode()) for key in keys])
    except ValueError as exc:  # never echo the key itself
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS holds a malformed Fernet key.") from exc


def _fernet() -> MultiFernet:
    keys = settings.FIELD_ENCRYPTION_KEYS
    if isinstance(keys, str):
        keys = [k for k in keys.split(",") if k.strip()]
    return _fernet_for(tuple(keys))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionFailed(
            "A stored channel key cannot be decrypted with the configured FIELD_ENCRYPTION_KEYS."
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt ``token`` under the newest key (it may have been made with an older one)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionFailed("A stored channel key cannot be decrypted for rotation.") from None


def hint(plaintext: str) -> str:
    """The only part of a key ever shown: its last four characters."""
    return f"…{plaintext[-4:]}" if len(plaintext) >= 8 else "…"
