"""Compare jobs: one prompt (optionally one image) across 2–6 models, in parallel on workers.

Each model's call goes through the same relay as live traffic (``relay_call``), at list
price, with its own hold and settlement; the result (output, latency, tokens, cost from the
UsageRecord) is stored inside the settlement transaction.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import partial

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from accounts.models import ApiKey, Organization
from config.errors import ApplicationError
from models_catalog.guard import guard_check
from models_catalog.selectors import channels_for_model, model_resolve

from .. import endpoints
from ..errors import InvalidRequest, ModelNotAllowed
from ..metrics import jobs_observe_compare
from ..models_jobs import CompareJob, CompareResult, CompareStatus
from ..upstream import OPENAI_TYPES
from ..wire import openai_chat_plan
from .errors import JobNotFound, LineAlreadyDone

MIN_MODELS, MAX_MODELS = 2, 6


def compares_for_org(*, org_id: int):
    return CompareJob.objects.filter(organization_id=org_id)


def compare_get(*, org_id: int, public_id: str) -> CompareJob:
    found = compares_for_org(org_id=org_id).filter(public_id=public_id).prefetch_related("results").first()
    if found is None:
        raise JobNotFound(f"No such compare job: {public_id}")
    return found


def compare_status(job: CompareJob) -> str:
    results = list(job.results.all())
    return "completed" if all(r.status != CompareStatus.PENDING for r in results) else "running"


def _openai_body(model: str, prompt: str, image: str, max_tokens: int) -> dict:
    content: list[dict] = [{"type": "text", "text": prompt}]
    if image:
        content.append({"type": "image_url", "image_url": {"url": image}})
    return {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": content}]}


def _anthropic_body(model: str, prompt: str, image: str, max_tokens: int) -> dict:
    content: list[dict] = []
    if image:
        header, _, data = image.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        content.append(
            {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
        )
    content.append({"type": "text", "text": prompt})
    return {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": content}]}


def _endpoint_for(model_id: str):
    """OpenAI format when a channel speaks it, else Anthropic's (until the relay translates formats)."""
    channels = channels_for_model(model_id)
    if not channels or any(c.provider_type in OPENAI_TYPES for c in channels):
        return endpoints.CHAT_COMPLETIONS, _openai_body
    return endpoints.MESSAGES, _anthropic_body


@transaction.atomic
def compare_create(
    *,
    org: Organization,
    models: list[str],
    prompt: str,
    image: str = "",
    max_tokens: int | None = None,
    api_key: ApiKey | None = None,
    user=None,
) -> CompareJob:
    """Check every model up front (guard: image input, retired, allowlist), then run all in parallel."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt is required.", extra={"param": "prompt"})
    models = [m.strip() for m in models if isinstance(m, str) and m.strip()]
    if len(set(models)) != len(models):
        raise InvalidRequest("Each model may be named once.", extra={"param": "models"})
    if not MIN_MODELS <= len(models) <= MAX_MODELS:
        raise InvalidRequest(
            f"Compare {MIN_MODELS} to {MAX_MODELS} models ({len(models)} given).", extra={"param": "models"}
        )
    image = (image or "").strip()
    if image and not image.startswith("data:image/"):
        raise InvalidRequest("image must be a data:image/…;base64 URL.", extra={"param": "image"})
    max_tokens = max_tokens or settings.COMPARE_MAX_TOKENS
    plan = openai_chat_plan(_openai_body(models[0], prompt, image, max_tokens))  # validates the image
    refused: list[dict] = []
    resolved: list[str] = []
    for name in models:
        try:
            info = model_resolve(name)
            if api_key is not None and api_key.allowed_models and info.id not in api_key.allowed_models:
                raise ModelNotAllowed(f"This API key may not use {info.id}.")
            guard_check(model=info, needs=plan.needs)
        except ApplicationError as exc:
            refused.append({"model": name, "code": exc.code, "message": exc.message, **exc.extra})
            continue
        resolved.append(info.id)
    if refused:
        names = ", ".join(r["model"] for r in refused)
        raise InvalidRequest(
            f"These models cannot take this input: {names}. " + " ".join(r["message"] for r in refused),
            code="model_capability_mismatch",
            extra={"param": "models", "refused": refused},
        )
    job = CompareJob.objects.create(
        public_id="cmp_" + secrets.token_hex(12),
        organization=org,
        created_by=user if getattr(user, "pk", None) else None,
        api_key=api_key,
        prompt=prompt,
        image=image,
        max_tokens=max_tokens,
    )
    results = CompareResult.objects.bulk_create(
        [
            CompareResult(job=job, position=i, model=model_id, request_id=f"{job.public_id}_{i}")
            for i, model_id in enumerate(resolved)
        ]
    )
    ids = (
        [r.pk for r in results]
        if all(r.pk for r in results)
        else list(CompareResult.objects.filter(job=job).order_by("position").values_list("pk", flat=True))
    )

    def dispatch():
        from celery import group

        from ..tasks import compare_model_task

        group(compare_model_task.s(pk) for pk in ids).apply_async()

    transaction.on_commit(dispatch)
    return job


def _output_text(body: dict) -> str:
    if "choices" in body:
        return "".join(
            (c.get("message") or {}).get("content") or ""
            for c in body.get("choices") or ()
            if isinstance(c, dict)
        )
    return "".join(b.get("text") or "" for b in body.get("content") or () if b.get("type") == "text")


def _result_settled(result_pk: int, record, status: int, body: bytes) -> None:
    import orjson

    ok = 200 <= status < 300
    output = ""
    if ok and body:
        try:
            output = _output_text(orjson.loads(body))
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            output = ""
    updated = CompareResult.objects.filter(pk=result_pk, status=CompareStatus.PENDING).update(
        status=CompareStatus.SUCCEEDED if ok else CompareStatus.FAILED,
        status_code=status,
        output=output,
        latency_ms=record.latency_ms,
        input_tokens=record.input_tokens + record.cached_input_tokens + record.image_input_tokens,
        output_tokens=record.output_tokens,
        cost_units=record.cost_units,
        usage_record_id=record.pk,
        finished_at=timezone.now(),
    )
    if not updated:
        raise LineAlreadyDone(result_pk)


def _web_console_key(org: Organization) -> ApiKey:
    """A session user's run has no API key: an unsaved key of the organization (no caps, no
    allowlist) — the UsageRecord's api_key stays empty."""
    return ApiKey(organization=org, name="web console", prefix="", allowed_models=[])


def compare_model_run(*, result_id: int) -> str:
    """Run one model of a compare job. Idempotent: a result that exists is never run (or charged) again."""
    result = (
        CompareResult.objects.select_related("job__organization", "job__api_key__organization")
        .filter(pk=result_id)
        .first()
    )
    if result is None or result.status != CompareStatus.PENDING:
        return "skipped"
    job = result.job
    key = job.api_key if job.api_key_id else _web_console_key(job.organization)
    endpoint, build = _endpoint_for(result.model)
    body = build(result.model, job.prompt, job.image, job.max_tokens)

    async def call():
        from ..relay import relay_call

        return await relay_call(
            key=key,
            endpoint=endpoint,
            body=body,
            request_id=result.request_id,
            on_settled=partial(_result_settled, result.pk),
        )

    status, response = asyncio.run(call())
    close_old_connections()
    if not 200 <= status < 300:
        error = (response or {}).get("error") or {}
        CompareResult.objects.filter(pk=result.pk).filter(
            status__in=[CompareStatus.PENDING, CompareStatus.FAILED]
        ).filter(error_message="").update(
            status=CompareStatus.FAILED,
            status_code=status,
            error_code=str(error.get("code") or error.get("type") or "error")[:64],
            error_message=str(error.get("message") or f"HTTP {status}"),
            finished_at=timezone.now(),
        )
    outcome = CompareStatus.SUCCEEDED if 200 <= status < 300 else CompareStatus.FAILED
    jobs_observe_compare(outcome)
    return outcome
