"""Periodic roll-up of usage into daily rows. Thin: call one service; idempotent."""

from __future__ import annotations

from celery import shared_task

from .rollups import usage_rollups_fold


@shared_task(
    name="inference.usage_rollups_fold",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_kwargs={"max_retries": 5},
)
def usage_rollups_fold_task(days: int = 2) -> int:
    return usage_rollups_fold(days=days)
