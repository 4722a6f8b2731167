"""Raw usage records are pruned after USAGE_RETENTION_DAYS; daily roll-ups are kept."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from inference.models import UsageRecord
from inference.models_rollups import UsageDaily
from inference.retention import usage_records_prune
from inference.rollups import usage_rollup_rebuild

pytestmark = pytest.mark.django_db


def _record(org, *, days_ago: int, n: int) -> UsageRecord:
    return UsageRecord.objects.create(
        organization=org,
        request_id=f"req_retention_{n}",
        # Noon UTC of the day ``days_ago`` back: records of one test never straddle midnight.
        created_at=dt.datetime.combine(
            timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=days_ago), dt.time(12), tzinfo=dt.UTC
        ),
        endpoint="chat.completions",
        wire_format="openai",
        model="gpt-4o",
        status="ok",
        input_tokens=10,
        output_tokens=5,
        cost_units=1000,
    )


def test_prune_deletes_only_old_records_and_keeps_rollups(make_org, settings):
    settings.USAGE_RETENTION_DAYS = 30
    org = make_org().organization
    old = _record(org, days_ago=45, n=1)
    _record(org, days_ago=45, n=2)
    recent = _record(org, days_ago=2, n=3)
    old_day = old.created_at.astimezone(dt.UTC).date()
    usage_rollup_rebuild(day=old_day)
    rollup = UsageDaily.objects.get(organization=org, day=old_day)
    assert rollup.requests == 2

    assert usage_records_prune() == 2
    assert list(UsageRecord.objects.filter(organization=org)) == [recent]
    rollup.refresh_from_db()
    assert (rollup.requests, rollup.cost_units) == (2, 2000)  # history survives
    assert usage_records_prune() == 0  # idempotent


def test_prune_works_in_batches(make_org):
    org = make_org().organization
    for n in range(5):
        _record(org, days_ago=500, n=n)
    assert usage_records_prune(days=400, batch_size=2) == 5
    assert not UsageRecord.objects.exists()


def test_retention_inside_the_rollup_window_is_refused():
    with pytest.raises(ValueError, match="at least"):
        usage_records_prune(days=1)


def test_the_task_is_scheduled(settings):
    from inference.tasks_retention import usage_records_prune_task

    entry = settings.CELERY_BEAT_SCHEDULE["inference-usage-retention"]
    assert entry["task"] == usage_records_prune_task.name == "inference.usage_records_prune"
    assert "inference.tasks_retention" in settings.CELERY_IMPORTS
