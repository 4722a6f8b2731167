"""Data retention: raw usage records are pruned after ``USAGE_RETENTION_DAYS``.

The daily roll-ups (``UsageDaily``, ``ChannelDaily``) are kept: they are separate rows,
folded from the records long before these are pruned (the fold rebuilds only the last two
days), so the dashboard's history and totals survive the pruning. The ledger is never
touched: it is the source of truth for money and is append-only.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from .models import UsageRecord

# The roll-up fold rebuilds the last two days from the records: never prune inside that window.
MIN_RETENTION_DAYS = 3


def usage_retention_cutoff(*, days: int, now: dt.datetime | None = None) -> dt.datetime:
    """Start of the UTC day ``days`` days ago: records created before it are pruned (whole days)."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    day = now.date() - dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def usage_records_prune(
    *, days: int | None = None, batch_size: int = 5000, now: dt.datetime | None = None
) -> int:
    """Delete usage records older than the retention period, in batches; returns how many.

    Idempotent and safe to interrupt: each batch is its own short statement."""
    days = settings.USAGE_RETENTION_DAYS if days is None else days
    if days < MIN_RETENTION_DAYS:
        raise ValueError(f"USAGE_RETENTION_DAYS must be at least {MIN_RETENTION_DAYS} (got {days}).")
    cutoff = usage_retention_cutoff(days=days, now=now)
    total = 0
    while True:
        ids = list(
            UsageRecord.objects.filter(created_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return total
        deleted, _ = UsageRecord.objects.filter(pk__in=ids).delete()
        total += deleted
