"""Usage records made directly (the relay is tested elsewhere)."""

from __future__ import annotations

import datetime as dt
import itertools

from django.utils import timezone

_ids = itertools.count(1)


def usage_record(
    org, *, key=None, model="gpt-4o-mini", when=None, cost=1_000, status="ok", http=200, **extra
):
    from inference.models import UsageRecord

    fields = {
        "organization": org,
        "api_key": key,
        "request_id": f"req_test_{next(_ids)}_{org.pk}",
        "created_at": when or timezone.now(),
        "endpoint": "chat.completions",
        "wire_format": "openai",
        "model": model,
        "channel_id": 7,
        "status": status,
        "http_status": http,
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_units": cost,
        "upstream_cost_units": cost // 2,
        "latency_ms": 100,
        "ttft_ms": 40,
    }
    fields.update(extra)
    return UsageRecord.objects.create(**fields)


def days_ago(n: int, hour: int = 12) -> dt.datetime:
    today = timezone.now().astimezone(dt.UTC).date()
    return dt.datetime.combine(today - dt.timedelta(days=n), dt.time(hour), tzinfo=dt.UTC)
