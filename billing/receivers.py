"""Receivers for third-party extension points (allauth). Thin: call one service."""

from __future__ import annotations

import logging

from .services import signup_credit_grant

logger = logging.getLogger(__name__)


def grant_signup_credit_on_email_confirmed(sender, request, email_address, **kwargs) -> None:
    entry = signup_credit_grant(user=email_address.user, email=email_address.email)
    if entry is not None:
        logger.info("signup credit granted to account %s for %s", entry.account_id, email_address.email)
