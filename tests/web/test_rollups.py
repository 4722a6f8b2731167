"""Daily roll-ups: rebuild is idempotent and equals the incremental path; the overview
reads roll-ups for past days and live records for today."""

from __future__ import annotations

import datetime as dt

import pytest

from inference.models import ChannelDaily, UsageDaily
from inference.rollups import usage_rollup_add, usage_rollup_rebuild, usage_rollups_fold, utc_today
from tests.web.helpers import days_ago, usage_record

pytestmark = pytest.mark.django_db


def _snapshot(model):
    fields = [f.name for f in model._meta.fields if f.name not in ("id", "updated_at")]
    return sorted(tuple(row) for row in model.objects.values_list(*fields))


def test_rebuild_is_idempotent_and_matches_incremental(make_org):
    from accounts.services import api_key_create

    owner = make_org()
    org = owner.organization
    key, _secret = api_key_create(actor=owner, name="k")
    day = utc_today() - dt.timedelta(days=1)
    records = [
        usage_record(org, key=key, when=days_ago(1, 3), cost=100),
        usage_record(org, key=key, when=days_ago(1, 4), cost=250, model="claude-sonnet-4-5"),
        usage_record(org, key=None, when=days_ago(1, 5), cost=0, status="upstream_error", http=502),
        usage_record(org, key=key, when=days_ago(1, 23), cost=7, image_input_tokens=3),
        usage_record(org, key=key, when=days_ago(2, 23), cost=999),  # another day: not counted
    ]
    for record in records[:4]:
        usage_rollup_add(record=record)
    incremental = (_snapshot(UsageDaily), _snapshot(ChannelDaily))

    usage_rollup_rebuild(day=day)
    rebuilt = (_snapshot(UsageDaily), _snapshot(ChannelDaily))
    usage_rollup_rebuild(day=day)
    assert (_snapshot(UsageDaily), _snapshot(ChannelDaily)) == rebuilt == incremental

    row = UsageDaily.objects.get(day=day, model="gpt-4o-mini", api_key_id=key.pk)
    assert (row.requests, row.errors, row.cost_units, row.image_input_tokens) == (2, 0, 107, 3)
    failed = UsageDaily.objects.get(day=day, api_key_id=0)
    assert (failed.requests, failed.errors) == (1, 1)
    assert ChannelDaily.objects.get(day=day, model="gpt-4o-mini").upstream_cost_units == 50 + 3


def test_fold_rebuilds_today_and_yesterday_only(make_org):
    org = make_org().organization
    usage_record(org, when=days_ago(0, 0), cost=1)
    usage_record(org, when=days_ago(1), cost=2)
    usage_record(org, when=days_ago(5), cost=4)
    usage_rollups_fold(days=2)
    assert sorted(UsageDaily.objects.values_list("cost_units", flat=True)) == [1, 2]


def test_overview_combines_rollups_and_live_today(make_org):
    from inference.dashboard.selectors import overview_for_org

    org = make_org().organization
    usage_record(org, when=days_ago(3), cost=1_000)
    usage_record(org, when=days_ago(10), cost=20_000, model="claude-sonnet-4-5")
    usage_record(org, when=days_ago(40), cost=5)  # outside 30 days
    usage_rollups_fold(days=45)
    usage_record(org, when=days_ago(0, 0), cost=300)  # today: not rolled up yet
    usage_record(org, when=days_ago(0, 0), cost=0, status="upstream_error", http=502)

    o = overview_for_org(org_id=org.pk)
    assert (o.today.cost_units, o.today.requests, o.today.errors) == (300, 2, 1)
    assert o.week.cost_units == 1_300
    assert o.month.cost_units == 21_300
    assert o.month.requests == 4
    assert [m for m, _t in o.top_models] == ["claude-sonnet-4-5", "gpt-4o-mini"]
    by_label = {ds["label"]: ds["data"] for ds in o.chart["datasets"]}
    assert by_label["gpt-4o-mini"][-1] == 300
    assert by_label["gpt-4o-mini"][-4] == 1_000
    assert sum(by_label["claude-sonnet-4-5"]) == 20_000
    assert len(o.chart["labels"]) == 30
