"""Periodic pruning of raw usage records (roll-ups kept). Thin: call one service; idempotent."""

from __future__ import annotations

from celery import shared_task

from .retention import usage_records_prune


@shared_task(
    name="inference.usage_records_prune",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_kwargs={"max_retries": 5},
)
def usage_records_prune_task() -> int:
    return usage_records_prune()
