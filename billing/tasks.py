"""Thin Celery tasks: take ids, call one service, safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task

from . import payments, selectors, services

logger = logging.getLogger(__name__)

_RETRY = {"autoretry_for": (Exception,), "retry_backoff": True, "retry_backoff_max": 600, "max_retries": 8}


@shared_task(acks_late=True, **_RETRY)
def holds_expire_task() -> int:
    """Expire open holds past their ``expires_at`` (periodic)."""
    return services.holds_expire()


@shared_task(acks_late=True, **_RETRY)
def low_balance_alert_task(account_id: int) -> bool:
    """Send the low-balance e-mail once (the service claims the alert atomically)."""
    return services.low_balance_alert_send(account_id=account_id)


@shared_task(acks_late=True, **_RETRY)
def stripe_events_retry_task() -> int:
    """Process again Stripe events whose processing failed (periodic)."""
    return payments.stripe_events_retry_failed()


@shared_task(acks_late=True)
def billing_audit_task() -> int:
    """Check every ledger invariant (periodic); logs an error per problem found."""
    problems = selectors.ledger_audit()
    for problem in problems:
        logger.error("billing audit: %s", problem)
    return len(problems)
