"""Thin Celery tasks for inference jobs: take ids, call one service, safe to run twice.

Every task is ``acks_late`` (settings: reject_on_worker_lost, prefetch 1) and idempotent:
batch lines and compare results carry fixed request ids (= ledger idempotency keys) and
their results commit with their charges, so a redelivered or resumed task never charges
twice. See docs/jobs.md.
"""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from .jobs import batches, compare

_RETRY = {
    "autoretry_for": (DatabaseError, ConnectionError, TimeoutError),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 8,
}


@shared_task(acks_late=True, **_RETRY)
def batch_validate_task(batch_id: int) -> str:
    """validating → in_progress | failed."""
    return batches.batch_validate(batch_id=batch_id)


@shared_task(acks_late=True, **_RETRY)
def batch_run_task(batch_id: int, token: str) -> str:
    """Run the next chunk of a batch's lines (the service enqueues the following one)."""
    return batches.batch_run(batch_id=batch_id, token=token)


@shared_task(acks_late=True, **_RETRY)
def batches_resume_task() -> int:
    """Restart active batches whose worker died (periodic)."""
    return batches.batches_resume()


@shared_task(acks_late=True, **_RETRY)
def compare_model_task(result_id: int) -> str:
    """One model of a compare job (a Celery group runs them in parallel)."""
    return compare.compare_model_run(result_id=result_id)
