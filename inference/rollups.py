"""Daily usage roll-ups: rebuild a day from the usage records (idempotent), fold recent days
(the periodic task) and add one record incrementally (a hook for the relay).

Days are UTC days. A roll-up row is derived data: ``usage_rollup_rebuild`` replaces every row
of a day with sums recomputed from ``UsageRecord``, so running it twice changes nothing and
it corrects any drift from ``usage_rollup_add``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from accounts.models import Organization

from .models import UsageRecord, UsageStatus
from .models_rollups import ChannelDaily, UsageDaily

# Fields summed from UsageRecord into a roll-up row (record field → roll-up field).
SUMMED = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cached_input_tokens": "cached_input_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "image_input_tokens": "image_input_tokens",
    "image_output_tokens": "image_output_tokens",
    "images_generated": "images_generated",
    "cost_units": "cost_units",
    "upstream_cost_units": "upstream_cost_units",
    "latency_ms": "latency_ms_sum",
}
TOTAL_FIELDS = ("requests", "errors", *SUMMED.values())

# A request counts as an error when the caller did not get a successful answer.
ERROR_Q = Q(http_status__gte=400) | Q(status__in=[UsageStatus.UPSTREAM_ERROR, UsageStatus.REFUSED])


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def utc_today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def record_is_error(record: UsageRecord) -> bool:
    return record.http_status >= 400 or record.status in (UsageStatus.UPSTREAM_ERROR, UsageStatus.REFUSED)


def _aggregate_org_day(org_id: int, day: dt.date) -> list[dict]:
    """One row per (model, key, channel) for one organization's day: an indexed range scan
    on (organization, created_at)."""
    start, end = day_bounds(day)
    return list(
        UsageRecord.objects.filter(organization_id=org_id, created_at__gte=start, created_at__lt=end)
        .order_by()
        .values("model", "api_key_id", "channel_id")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=ERROR_Q),
            **{target: Sum(source) for source, target in SUMMED.items()},
        )
    )


def _add_into(bucket: dict, row: dict) -> None:
    for field in TOTAL_FIELDS:
        bucket[field] += row[field] or 0


@transaction.atomic
def _replace_org_day(org_id: int, day: dt.date, rows: list[dict], now: dt.datetime) -> int:
    per_key: dict[tuple[str, int], dict] = defaultdict(lambda: dict.fromkeys(TOTAL_FIELDS, 0))
    for row in rows:
        _add_into(per_key[(row["model"], row["api_key_id"] or 0)], row)
    UsageDaily.objects.filter(organization_id=org_id, day=day).delete()
    UsageDaily.objects.bulk_create(
        [
            UsageDaily(
                organization_id=org_id, day=day, model=model, api_key_id=key_id, updated_at=now, **totals
            )
            for (model, key_id), totals in sorted(per_key.items())
        ]
    )
    return len(per_key)


def usage_rollup_rebuild(*, day: dt.date, org_id: int | None = None) -> int:
    """Recompute the roll-ups of ``day`` from the usage records; returns the rows written.

    With ``org_id`` only that organization's ``UsageDaily`` rows are rebuilt; without it every
    organization's, and the day's ``ChannelDaily`` rows too. Idempotent."""
    now = timezone.now()
    org_ids = (
        [org_id]
        if org_id is not None
        else list(Organization.objects.order_by("pk").values_list("pk", flat=True))
    )
    per_channel: dict[tuple[int, str], dict] = defaultdict(lambda: dict.fromkeys(TOTAL_FIELDS, 0))
    written = 0
    for oid in org_ids:
        rows = _aggregate_org_day(oid, day)
        for row in rows:
            _add_into(per_channel[(row["channel_id"] or 0, row["model"])], row)
        for attempt in range(2):  # a concurrent rebuild of the same day may insert first
            try:
                written += _replace_org_day(oid, day, rows, now)
                break
            except IntegrityError:
                if attempt:
                    raise
    if org_id is None:
        with transaction.atomic():
            ChannelDaily.objects.filter(day=day).delete()
            ChannelDaily.objects.bulk_create(
                [
                    ChannelDaily(day=day, channel_id=channel_id, model=model, updated_at=now, **totals)
                    for (channel_id, model), totals in sorted(per_channel.items())
                ]
            )
        written += len(per_channel)
    return written


def usage_rollups_fold(*, days: int = 2, today: dt.date | None = None) -> int:
    """Rebuild the last ``days`` UTC days (today included): what the periodic task runs.
    Yesterday is folded again so that requests settling after midnight are counted."""
    today = today or utc_today()
    return sum(usage_rollup_rebuild(day=today - dt.timedelta(days=n)) for n in range(days))


def _increment(model, lookup: dict, deltas: dict) -> None:
    updates = {field: F(field) + value for field, value in deltas.items()}
    if model.objects.filter(**lookup).update(updated_at=timezone.now(), **updates):
        return
    try:
        with transaction.atomic():
            model.objects.create(**lookup, **deltas)
    except IntegrityError:  # created concurrently: add to it
        model.objects.filter(**lookup).update(updated_at=timezone.now(), **updates)


def usage_rollup_add(*, record: UsageRecord) -> None:
    """Add one settled usage record to its day's roll-ups (conditional UPDATEs, no
    read-modify-write). Meant to run right after the record is committed; a rebuild of the
    day later recomputes the same sums from the records, so a missed or repeated call is
    corrected at the next fold."""
    day = record.created_at.astimezone(dt.UTC).date()
    deltas = {"requests": 1, "errors": 1 if record_is_error(record) else 0}
    for source, target in SUMMED.items():
        deltas[target] = getattr(record, source) or 0
    _increment(
        UsageDaily,
        {
            "organization_id": record.organization_id,
            "day": day,
            "model": record.model,
            "api_key_id": record.api_key_id or 0,
        },
        deltas,
    )
    _increment(
        ChannelDaily, {"day": day, "channel_id": record.channel_id or 0, "model": record.model}, deltas
    )
