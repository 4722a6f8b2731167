"""Reads for the dashboard. Past days come from the daily roll-ups; today from the usage
records themselves (an indexed range on (organization, created_at)), so the overview costs a
fixed number of queries however many requests an organization makes."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, F, Q, QuerySet, Sum

from accounts.models import ApiKey, Organization
from billing.models import BillingAccount, TopUp
from billing.selectors import balance_for_org
from models_catalog.models import Channel

from ..models import UsageRecord
from ..models_rollups import ChannelDaily, UsageDaily
from ..rollups import ERROR_Q, day_bounds, utc_today

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "image_input_tokens",
    "image_output_tokens",
)
CHART_MODELS = 6  # series in the spend chart; the rest are summed as "other"
OTHER = "other"


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    cost_units: int = 0
    upstream_cost_units: int = 0

    def add(self, row: dict) -> None:
        self.requests += row["requests"] or 0
        self.errors += row["errors"] or 0
        self.tokens += sum(row[f] or 0 for f in TOKEN_FIELDS)
        self.cost_units += row["cost_units"] or 0
        self.upstream_cost_units += row.get("upstream_cost_units") or 0

    @property
    def error_rate_pct(self) -> str:
        if not self.requests:
            return "0"
        return f"{self.errors * 100 / self.requests:.1f}"

    @property
    def margin_units(self) -> int:
        return self.cost_units - self.upstream_cost_units


@dataclass
class Overview:
    balance_units: int
    held_units: int
    available_units: int
    today: Totals
    week: Totals
    month: Totals
    chart: dict
    top_models: list[tuple[str, Totals]]
    top_keys: list[tuple[dict, Totals]]
    has_usage: bool
    days: int = 30
    extra: dict = field(default_factory=dict)


def _usage_rows(org_id: int, since: dt.date, today: dt.date) -> list[dict]:
    """(day, model, api_key_id) rows with totals: roll-ups for past days, records for today."""
    sums = {f: Sum(f) for f in (*TOKEN_FIELDS, "cost_units")}
    rows = list(
        UsageDaily.objects.filter(organization_id=org_id, day__gte=since, day__lt=today)
        .values("day", "model", "api_key_id", "requests", "errors", *TOKEN_FIELDS, "cost_units")
        .order_by()
    )
    start, _end = day_bounds(today)
    live = (
        UsageRecord.objects.filter(organization_id=org_id, created_at__gte=start)
        .order_by()
        .values("model", "api_key_id")
        .annotate(requests=Count("id"), errors=Count("id", filter=ERROR_Q), **sums)
    )
    for row in live:
        row["day"] = today
        row["api_key_id"] = row["api_key_id"] or 0
        rows.append(row)
    return rows


def overview_for_org(*, org_id: int, today: dt.date | None = None, days: int = 30) -> Overview:
    today = today or utc_today()
    since = today - dt.timedelta(days=days - 1)
    balance = balance_for_org(org_id=org_id)
    rows = _usage_rows(org_id, since, today)

    periods = {"today": Totals(), "week": Totals(), "month": Totals()}
    per_model: dict[str, Totals] = defaultdict(Totals)
    per_key: dict[int, Totals] = defaultdict(Totals)
    spend: dict[tuple[dt.date, str], int] = defaultdict(int)
    for row in rows:
        periods["month"].add(row)
        if row["day"] > today - dt.timedelta(days=7):
            periods["week"].add(row)
        if row["day"] == today:
            periods["today"].add(row)
        per_model[row["model"]].add(row)
        per_key[row["api_key_id"]].add(row)
        spend[(row["day"], row["model"])] += row["cost_units"] or 0

    top_models = sorted(per_model.items(), key=lambda kv: (-kv[1].cost_units, -kv[1].requests, kv[0]))
    top_key_ids = sorted(per_key.items(), key=lambda kv: (-kv[1].cost_units, -kv[1].requests, kv[0]))[:5]
    names = {
        k["pk"]: k
        for k in ApiKey.objects.filter(organization_id=org_id, pk__in=[k for k, _t in top_key_ids]).values(
            "pk", "name", "prefix", "revoked_at"
        )
    }
    top_keys = [
        (names.get(key_id, {"pk": key_id, "name": "—", "prefix": "", "revoked_at": None}), totals)
        for key_id, totals in top_key_ids
    ]

    series_models = [m for m, _t in top_models[:CHART_MODELS]]
    labels = [since + dt.timedelta(days=n) for n in range(days)]
    datasets = []
    for model in series_models:
        datasets.append({"label": model, "data": [spend.get((d, model), 0) for d in labels]})
    if len(top_models) > CHART_MODELS:
        rest = {m for m, _t in top_models[CHART_MODELS:]}
        datasets.append(
            {
                "label": OTHER,
                "data": [sum(v for (d, m), v in spend.items() if d == day and m in rest) for day in labels],
            }
        )
    chart = {"labels": [d.isoformat() for d in labels], "datasets": datasets}
    return Overview(
        balance_units=balance.balance_units,
        held_units=balance.held_units,
        available_units=balance.available_units,
        today=periods["today"],
        week=periods["week"],
        month=periods["month"],
        chart=chart,
        top_models=top_models[:8],
        top_keys=top_keys,
        has_usage=bool(rows),
        days=days,
    )


# --- usage log ------------------------------------------------------------------------------

STATUS_FILTERS = ("ok", "error", "client_disconnected", "upstream_error")


@dataclass(frozen=True)
class UsageFilters:
    since: dt.date | None = None
    until: dt.date | None = None  # inclusive
    model: str = ""
    key_id: int | None = None
    status: str = ""


def usage_records_for_org(*, org_id: int, filters: UsageFilters) -> QuerySet[UsageRecord]:
    qs = UsageRecord.objects.filter(organization_id=org_id)
    if filters.since:
        qs = qs.filter(created_at__gte=day_bounds(filters.since)[0])
    if filters.until:
        qs = qs.filter(created_at__lt=day_bounds(filters.until)[1])
    if filters.model:
        qs = qs.filter(model=filters.model)
    if filters.key_id is not None:
        qs = qs.filter(api_key_id=filters.key_id)
    if filters.status == "ok":
        qs = qs.exclude(ERROR_Q)
    elif filters.status == "error":
        qs = qs.filter(ERROR_Q)
    elif filters.status in STATUS_FILTERS:
        qs = qs.filter(status=filters.status)
    return qs.order_by("-created_at", "-id")


def usage_record_get(*, org_id: int, request_id: str) -> UsageRecord | None:
    return UsageRecord.objects.filter(organization_id=org_id, request_id=request_id).first()


def usage_models_for_org(*, org_id: int, today: dt.date | None = None) -> list[str]:
    """Models the organization has used (for the filter): roll-ups plus today's records."""
    today = today or utc_today()
    seen = set(
        UsageDaily.objects.filter(organization_id=org_id)
        .order_by()
        .values_list("model", flat=True)
        .distinct()
    )
    seen |= set(
        UsageRecord.objects.filter(organization_id=org_id, created_at__gte=day_bounds(today)[0])
        .order_by()
        .values_list("model", flat=True)
        .distinct()
    )
    return sorted(seen)


# --- operator view ----------------------------------------------------------------------------


@dataclass
class OpsSummary:
    days: int
    revenue_cents: int
    topups_count: int
    recent_topups: list
    per_model: list[tuple[str, Totals]]
    per_channel: list[tuple[dict, Totals]]
    per_org: list[tuple[dict, Totals]]
    total: Totals
    channels: list
    low_balances: list


def ops_summary(*, days: int = 30, today: dt.date | None = None) -> OpsSummary:
    """Operator view over every organization, from the roll-ups (folded every few minutes)."""
    today = today or utc_today()
    since = today - dt.timedelta(days=days - 1)
    start = day_bounds(since)[0]
    credited = TopUp.objects.filter(credited_at__gte=start)
    revenue = credited.aggregate(c=Sum("credited_cents"), r=Sum("refunded_cents"), n=Count("id"))
    sums = {f: Sum(f) for f in ("requests", "errors", *TOKEN_FIELDS, "cost_units", "upstream_cost_units")}

    def grouped(model, by: str, **filters) -> list[tuple[object, Totals]]:
        out = []
        for row in model.objects.filter(day__gte=since, **filters).order_by().values(by).annotate(**sums):
            totals = Totals()
            totals.add(row)
            out.append((row[by], totals))
        return sorted(out, key=lambda kv: (-kv[1].cost_units, str(kv[0])))

    per_model = grouped(UsageDaily, "model")
    total = Totals()
    for _m, t in per_model:
        total.requests += t.requests
        total.errors += t.errors
        total.tokens += t.tokens
        total.cost_units += t.cost_units
        total.upstream_cost_units += t.upstream_cost_units
    per_org_raw = grouped(UsageDaily, "organization_id")[:20]
    orgs = {
        o["pk"]: o
        for o in Organization.objects.filter(pk__in=[k for k, _t in per_org_raw]).values("pk", "name", "slug")
    }
    per_channel_raw = grouped(ChannelDaily, "channel_id")
    channels = list(
        Channel.objects.order_by("-priority", "name").values(
            "pk",
            "name",
            "provider_type",
            "source",
            "enabled",
            "consecutive_failures",
            "cooldown_until",
            "last_error",
            "last_error_at",
        )
    )
    by_pk = {c["pk"]: c for c in channels}
    low = list(
        BillingAccount.objects.filter(
            Q(balance_units__lt=0)
            | Q(
                low_balance_threshold_units__isnull=False,
                low_balance_threshold_units__gt=F("balance_units") - F("held_units"),
            )
        )
        .select_related("organization")
        .order_by("balance_units")[:50]
    )
    return OpsSummary(
        days=days,
        revenue_cents=(revenue["c"] or 0) - (revenue["r"] or 0),
        topups_count=revenue["n"] or 0,
        recent_topups=list(TopUp.objects.select_related("account__organization").order_by("-pk")[:10]),
        per_model=per_model,
        per_channel=[
            (by_pk.get(k, {"pk": k, "name": "—" if k else "(none)"}), t) for k, t in per_channel_raw
        ],
        per_org=[(orgs.get(k, {"pk": k, "name": "—", "slug": ""}), t) for k, t in per_org_raw],
        total=total,
        channels=channels,
        low_balances=low,
    )


__all__ = [
    "Overview",
    "UsageFilters",
    "ops_summary",
    "overview_for_org",
    "usage_models_for_org",
    "usage_record_get",
    "usage_records_for_org",
]
