"""Charging a relayed request: admit (hold) before the upstream call, finish (settle) after.

Synchronous functions: the async relay calls each in one ``config.asyncdb.db_call`` hop. No
database transaction is open while the upstream is called.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

from django.conf import settings
from django.db import connection, transaction

from accounts.models import ApiKey
from accounts.services import api_key_add_spend, api_key_spend_reserve
from billing.errors import InsufficientBalance
from billing.services import billing_account_for_org, hold_place, hold_release, hold_settle
from models_catalog.errors import InvalidUsage
from models_catalog.info import ChannelInfo, ModelInfo, Usage
from models_catalog.pricing import cost_compute

from .errors import InvalidRequest, SpendCapReached
from .models import UsageRecord, UsageSource, UsageStatus
from .wire import RequestPlan


@dataclass
class Admission:
    request_id: str
    hold_id: int
    hold_units: int
    reserved_spend: int  # counted against the key's spend cap (capped keys only)
    output_cap: int | None  # max_tokens the gateway sets upstream (None = leave the request alone)


def _output_tokens_for_hold(plan: RequestPlan, model: ModelInfo) -> int:
    if plan.needs.output != "text":
        return 0
    limit = model.max_output_tokens
    if plan.max_output_tokens is not None:
        if limit and plan.max_output_tokens > limit:
            raise InvalidRequest(
                f"max_tokens is {plan.max_output_tokens}; {model.id} writes at most {limit} tokens.",
                code="max_tokens_too_large",
                extra={"param": "max_tokens"},
            )
        return plan.max_output_tokens
    return limit or settings.RELAY_DEFAULT_MAX_OUTPUT_TOKENS


def _affordable_output(plan: RequestPlan, model: ModelInfo, multiplier: Fraction, available: int) -> int:
    """The most output tokens the available balance covers on top of the input (0 if none)."""
    base = cost_compute(model=model, usage=plan.hold_usage(model, 0), plan_multiplier=multiplier).total_units
    per_token = Fraction(model.price_at().output_per_mtok, 1_000_000) * multiplier
    if available <= base or per_token <= 0:
        return 0
    n = int((available - base) / per_token)
    while (
        n > 0
        and cost_compute(model=model, usage=plan.hold_usage(model, n), plan_multiplier=multiplier).total_units
        > available
    ):
        n -= 1
    return n


def request_admit(
    *,
    org_id: int,
    key: ApiKey,
    plan: RequestPlan,
    model: ModelInfo,
    multiplier: Fraction,
    request_id: str,
    batch: bool = False,
) -> Admission:
    """Reserve the worst-case cost of a request: spend cap first, then the balance hold.

    Without ``max_tokens`` the hold covers the model's maximum output. When the balance
    can't cover that, the request goes ahead with ``max_tokens`` lowered to what the
    available balance covers (at least RELAY_MIN_OUTPUT_TOKENS), else 402.
    """
    output_tokens = _output_tokens_for_hold(plan, model)
    hold_units = cost_compute(
        model=model, usage=plan.hold_usage(model, output_tokens), plan_multiplier=multiplier, batch=batch
    ).total_units
    output_cap = None
    reserved = 0
    if key.spend_cap_units is not None:
        if not api_key_spend_reserve(key_id=key.pk, amount_units=hold_units):
            raise SpendCapReached(
                "This API key has reached its spend cap.", extra={"spend_cap_units": key.spend_cap_units}
            )
        reserved = hold_units
    try:
        try:
            hold_id = hold_place(org_id=org_id, amount_units=hold_units, reference=request_id)
        except InsufficientBalance:
            if plan.max_output_tokens is not None or plan.needs.output != "text":
                raise
            available = billing_account_for_org(org_id=org_id).available_units
            affordable = _affordable_output(plan, model, multiplier, available)
            if affordable < settings.RELAY_MIN_OUTPUT_TOKENS:
                raise
            new_units = cost_compute(
                model=model, usage=plan.hold_usage(model, affordable), plan_multiplier=multiplier
            ).total_units
            hold_id = hold_place(org_id=org_id, amount_units=new_units, reference=request_id)
            if reserved:
                api_key_add_spend(key_id=key.pk, amount_units=new_units - reserved)
                reserved = new_units
            hold_units, output_cap = new_units, affordable
    except Exception:
        if reserved:
            api_key_add_spend(key_id=key.pk, amount_units=-reserved)
        raise
    return Admission(
        request_id=request_id,
        hold_id=hold_id,
        hold_units=hold_units,
        reserved_spend=reserved,
        output_cap=output_cap,
    )


def _priced(model: ModelInfo, usage: Usage, multiplier: Fraction, batch: bool) -> tuple[int, dict]:
    breakdown = cost_compute(model=model, usage=usage, plan_multiplier=multiplier, batch=batch)
    return breakdown.total_units, breakdown.as_dict()


def _upstream_cost(model: ModelInfo, usage: Usage, channel: ChannelInfo | None, batch: bool) -> int:
    breakdown = cost_compute(model=model, usage=usage, batch=batch)
    cost = breakdown.subtotal * breakdown.batch_factor
    if channel is not None and channel.cost_multiplier:
        numerator, denominator = channel.cost_multiplier
        cost = cost * Fraction(numerator, denominator)
    return -(-cost.numerator // cost.denominator)


@dataclass
class Outcome:
    status: str
    http_status: int = 200
    usage: Usage | None = None
    usage_source: str = UsageSource.UPSTREAM
    error_code: str = ""
    latency_ms: int = 0
    ttft_ms: int | None = None
    body: bytes = b""  # the response body (non-streaming), for on_settled hooks


def request_finish(
    *,
    admission: Admission,
    org_id: int,
    key_id: int,
    model: ModelInfo,
    multiplier: Fraction,
    channel: ChannelInfo | None,
    endpoint: str,
    wire_format: str,
    stream: bool,
    outcome: Outcome,
    batch: bool = False,
    on_settled=None,
    response_status: int = 200,
    response_body: bytes = b"",
) -> UsageRecord:
    """Settle (or release) the hold and write the usage record, in one transaction.

    ``on_settled(record, status, body)`` runs inside that transaction (batch lines store
    their result there, so a result and its charge commit together or not at all)."""
    usage = outcome.usage
    cost = upstream_cost = 0
    detail: dict = {}
    if usage is not None:
        try:
            cost, detail = _priced(model, usage, multiplier, batch)
            upstream_cost = _upstream_cost(model, usage, channel, batch)
        except InvalidUsage:
            usage, cost, detail = None, 0, {}
    with transaction.atomic():
        if cost > 0:
            hold_settle(
                hold_id=admission.hold_id,
                actual_units=cost,
                idempotency_key=f"usage:{admission.request_id}",
                description=f"{model.id} ({endpoint})",
                metadata={"request_id": admission.request_id, "model": model.id, "key_id": key_id},
                savepoint=False,
            )
        else:
            hold_release(hold_id=admission.hold_id)
        usage = usage or Usage()
        record = UsageRecord(
            organization_id=org_id,
            api_key_id=key_id,
            request_id=admission.request_id,
            endpoint=endpoint,
            wire_format=wire_format,
            model=model.id,
            channel_id=channel.id if channel else None,
            stream=stream,
            status=outcome.status,
            http_status=outcome.http_status,
            error_code=outcome.error_code[:64],
            usage_source=outcome.usage_source if cost or outcome.usage else UsageSource.NONE,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            image_input_tokens=usage.image_input_tokens,
            image_output_tokens=usage.image_output_tokens,
            images_generated=usage.images_generated,
            cost_units=cost,
            upstream_cost_units=upstream_cost,
            latency_ms=outcome.latency_ms,
            ttft_ms=outcome.ttft_ms,
            cost_detail=detail,
        )
        _record_insert(record, key_id=key_id, spend_delta=cost - admission.reserved_spend)
        if on_settled is not None:
            on_settled(record, response_status, response_body)
        return record


def request_finished(*, request_id: str) -> bool:
    """Whether the request was already settled (its usage record exists): a settlement retried
    after its connection broke must not run twice."""
    return UsageRecord.objects.filter(request_id=request_id).exists()


_RECORD_FIELDS = [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]


@functools.cache
def _record_sql(with_spend: bool) -> str:
    """The INSERT for ``_RECORD_FIELDS`` — identifiers from the models' own metadata, values bound."""
    q = connection.ops.quote_name
    table, pk, keys = q(UsageRecord._meta.db_table), q(UsageRecord._meta.pk.column), q(ApiKey._meta.db_table)
    columns = ", ".join(q(f.column) for f in _RECORD_FIELDS)
    values = ", ".join(["%s"] * len(_RECORD_FIELDS))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING {pk}"  # noqa: S608
    if with_spend:  # PostgreSQL: a data-modifying CTE, the same round trip
        sql = f"WITH spend AS (UPDATE {keys} SET spent_units = spent_units + %s WHERE id = %s) {sql}"  # noqa: S608
    return sql


def _record_insert(record: UsageRecord, *, key_id: int, spend_delta: int) -> None:
    """Insert the usage record and add ``spend_delta`` to the key's running spend.

    On PostgreSQL one statement; elsewhere two. Raw SQL because this runs once per relayed
    request and the ORM's insert compiler costs more than the statement itself; columns and
    values come from the model's own fields (``get_db_prep_save``, as the ORM does)."""
    params = [f.get_db_prep_save(f.pre_save(record, True), connection) for f in _RECORD_FIELDS]
    with_spend = bool(spend_delta) and connection.vendor == "postgresql"
    if with_spend:
        params = [spend_delta, key_id, *params]
    elif spend_delta:
        api_key_add_spend(key_id=key_id, amount_units=spend_delta)
    with connection.cursor() as cursor:
        cursor.execute(_record_sql(with_spend), params)
        record.pk = cursor.fetchone()[0]
    record._state.adding = False
    record._state.db = connection.alias


__all__ = ["Admission", "Outcome", "UsageStatus", "request_admit", "request_finish", "request_finished"]
