"""Overview, usage log (filters, detail, CSV export) and the operator view. Thin: parse,
call one selector, render."""

from __future__ import annotations

import csv
import datetime as dt

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from accounts.permissions import Perm, role_has
from accounts.selectors import api_keys_for_org
from accounts.views import membership_required
from billing.money import format_usd

from . import selectors
from .selectors import STATUS_FILTERS, UsageFilters


@membership_required(Perm.USAGE_VIEW)
def overview(request):
    membership = request.membership
    data = selectors.overview_for_org(org_id=membership.organization_id)
    chart = {
        "labels": data.chart["labels"],
        "datasets": [
            {**ds, "label": _("other models") if ds["label"] == selectors.OTHER else ds["label"]}
            for ds in data.chart["datasets"]
        ],
    }
    context = {
        "membership": membership,
        "o": data,
        "chart": chart,
        "can_topup": role_has(membership.role, Perm.BILLING_TOPUP),
        "low_balance": data.available_units <= 0,
    }
    return render(request, "dashboard/overview.html", context)


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value.strip()) if value and value.strip() else None
    except ValueError:
        return None


def _filters(params) -> UsageFilters:
    key = (params.get("key") or "").strip()
    status = (params.get("status") or "").strip()
    return UsageFilters(
        since=_date(params.get("since", "")),
        until=_date(params.get("until", "")),
        model=(params.get("model") or "").strip()[:128],
        key_id=int(key) if key.isdigit() else None,
        status=status if status in STATUS_FILTERS else "",
    )


@membership_required(Perm.USAGE_VIEW)
def usage_list(request):
    membership = request.membership
    org_id = membership.organization_id
    filters = _filters(request.GET)
    size = settings.DASHBOARD_PAGE_SIZE
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    qs = selectors.usage_records_for_org(org_id=org_id, filters=filters)
    # No COUNT(*) over a large log: fetch one row more than a page to know if there is a next one.
    rows = list(qs.select_related("api_key")[(page - 1) * size : page * size + 1])
    has_next = len(rows) > size
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "membership": membership,
        "records": rows[:size],
        "page": page,
        "has_next": has_next,
        "has_prev": page > 1,
        "query": params.urlencode(),
        "filters": filters,
        "models": selectors.usage_models_for_org(org_id=org_id),
        "keys": list(api_keys_for_org(org=membership.organization).values("pk", "name", "prefix")),
        "statuses": [
            ("ok", _("Succeeded")),
            ("error", _("Failed")),
            ("client_disconnected", _("Client disconnected")),
            ("upstream_error", _("Upstream error")),
        ],
        "filtered": any([filters.since, filters.until, filters.model, filters.key_id, filters.status]),
    }
    return render(request, "dashboard/usage.html", context)


@membership_required(Perm.USAGE_VIEW)
@require_safe
def usage_detail(request, request_id: str):
    record = selectors.usage_record_get(org_id=request.membership.organization_id, request_id=request_id)
    if record is None:
        raise Http404(_("No such request."))
    tokens = [
        (_("Input"), record.input_tokens),
        (_("Cached input"), record.cached_input_tokens),
        (_("Cache write"), record.cache_write_tokens),
        (_("Image input"), record.image_input_tokens),
        (_("Output"), record.output_tokens),
        (_("Image output"), record.image_output_tokens),
    ]
    detail = record.cost_detail or {}
    context = {
        "membership": request.membership,
        "r": record,
        "tokens": tokens,
        "lines": detail.get("lines", []),
        "detail": detail,
        "cost": format_usd(record.cost_units),
        "key": api_keys_for_org(org=request.membership.organization).filter(pk=record.api_key_id).first(),
    }
    return render(request, "dashboard/usage_detail.html", context)


class _Echo:
    def write(self, value):
        return value


CSV_HEADER = [
    "created_at",
    "request_id",
    "endpoint",
    "wire_format",
    "model",
    "api_key",
    "stream",
    "status",
    "http_status",
    "error_code",
    "usage_source",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "image_input_tokens",
    "output_tokens",
    "image_output_tokens",
    "images_generated",
    "cost_usd",
    "cost_units",
    "latency_ms",
    "ttft_ms",
]


def _csv_rows(qs, keys: dict[int, str]):
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    fields = [
        "created_at",
        "request_id",
        "endpoint",
        "wire_format",
        "model",
        "api_key_id",
        "stream",
        "status",
        "http_status",
        "error_code",
        "usage_source",
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "image_input_tokens",
        "output_tokens",
        "image_output_tokens",
        "images_generated",
        "cost_units",
        "latency_ms",
        "ttft_ms",
    ]
    for row in qs.values_list(*fields).iterator(chunk_size=2000):
        values = dict(zip(fields, row, strict=True))
        yield writer.writerow(
            [
                values["created_at"].isoformat(),
                values["request_id"],
                values["endpoint"],
                values["wire_format"],
                values["model"],
                keys.get(values["api_key_id"], ""),
                "true" if values["stream"] else "false",
                values["status"],
                values["http_status"],
                values["error_code"],
                values["usage_source"],
                values["input_tokens"],
                values["cached_input_tokens"],
                values["cache_write_tokens"],
                values["image_input_tokens"],
                values["output_tokens"],
                values["image_output_tokens"],
                values["images_generated"],
                format_usd(values["cost_units"]),
                values["cost_units"],
                values["latency_ms"],
                "" if values["ttft_ms"] is None else values["ttft_ms"],
            ]
        )


@membership_required(Perm.USAGE_VIEW)
def usage_csv(request):
    """The filtered log as CSV, streamed row by row (no channel, no upstream cost)."""
    membership = request.membership
    qs = selectors.usage_records_for_org(org_id=membership.organization_id, filters=_filters(request.GET))
    keys = {
        k["pk"]: f"{k['name']} ({k['prefix']}…)"
        for k in api_keys_for_org(org=membership.organization).values("pk", "name", "prefix")
    }
    response = StreamingHttpResponse(_csv_rows(qs, keys), content_type="text/csv; charset=utf-8")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = (
        f'attachment; filename="usage-{membership.organization.slug}-{stamp}.csv"'
    )
    return response


@login_required
def ops(request):
    """Operators only (``is_staff``); anyone else gets a 404, not a hint that it exists."""
    if not request.user.is_staff:
        raise Http404
    return render(request, "dashboard/ops.html", {"s": selectors.ops_summary(), "now": timezone.now()})
