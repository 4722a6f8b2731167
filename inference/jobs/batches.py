"""The OpenAI Batch API over the relay: create, validate, run in chunks, finalize, cancel, resume.

Execution model (docs/jobs.md):

* ``batch_validate`` reads the input file once, checks every line up front and stores one
  ``BatchLine`` per request. Any invalid line fails the whole batch (OpenAI's semantics) with
  ``errors`` and an error file listing every invalid line; nothing is charged.
* ``batch_run`` runs ONE chunk of pending lines and enqueues the next chunk. A chunk runs
  under a *lease* (``lease_until``) that a heartbeat renews; a run chain is identified by
  ``run_token`` — cancel and the resume sweeper replace the token, which stops the old chain.
* Each line goes through ``relay_call(batch=True, request_id=line.request_id, on_settled=…)``:
  its result is written inside the settlement transaction, so a result and its charge commit
  together or not at all, and a line with a result is never run again.
* Concurrency: at most ``BATCH_LINE_CONCURRENCY`` lines in flight per batch (a semaphore),
  at most ``BATCH_ORG_MAX_RUNNING`` batches holding a lease per organization.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import tempfile
from functools import partial

import orjson
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.authentication import api_key_check
from accounts.models import ApiKey, Organization
from config.asyncdb import db_call
from config.errors import ApplicationError
from models_catalog.guard import guard_check
from models_catalog.selectors import model_resolve

from .. import endpoints
from ..errors import InvalidRequest, ModelNotAllowed
from ..metrics import jobs_observe_batch, jobs_observe_lines
from ..models_jobs import ACTIVE_BATCH_STATUSES, Batch, BatchLine, BatchStatus, JobFile, LineStatus
from .errors import JobConflict, JobNotFound, LineAlreadyDone
from .files import PURPOSE_BATCH, file_get, file_open, file_store_output

logger = logging.getLogger("modelgate.jobs")

ENDPOINTS = {
    "/v1/chat/completions": endpoints.CHAT_COMPLETIONS,
    "/v1/embeddings": endpoints.EMBEDDINGS,
    "/v1/messages": endpoints.MESSAGES,
}
COMPLETION_WINDOWS = {"24h": dt.timedelta(hours=24)}
MAX_REPORTED_ERRORS = 100  # in ``batch.errors.data``; the error file lists all of them


def _new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


def _new_token() -> str:
    return secrets.token_hex(8)


# --- selectors ----------------------------------------------------------------------------------


def batches_for_org(*, org_id: int):
    return Batch.objects.filter(organization_id=org_id).select_related(
        "input_file", "output_file", "error_file"
    )


def batch_get(*, org_id: int, public_id: str) -> Batch:
    found = batches_for_org(org_id=org_id).filter(public_id=public_id).first()
    if found is None:
        raise JobNotFound(f"No such Batch object: {public_id}", extra={"param": "batch_id"})
    return found


def batch_counts(*, batch_ids: list[int]) -> dict[int, dict[str, int]]:
    """``request_counts`` per batch in one query: completed = 2xx results, failed = errors."""
    rows = (
        BatchLine.objects.filter(batch_id__in=batch_ids)
        .values("batch_id")
        .annotate(
            completed=Count("id", filter=Q(status=LineStatus.SUCCEEDED)),
            failed=Count("id", filter=Q(status__in=[LineStatus.FAILED, LineStatus.EXPIRED])),
        )
    )
    return {r["batch_id"]: {"completed": r["completed"], "failed": r["failed"]} for r in rows}


# --- create / cancel ------------------------------------------------------------------------------


def _enqueue_validate(batch_id: int) -> None:
    from ..tasks import batch_validate_task

    transaction.on_commit(lambda: batch_validate_task.delay(batch_id))


def _enqueue_run(batch_id: int, token: str, countdown: float | None = None) -> None:
    from ..tasks import batch_run_task

    if countdown:
        transaction.on_commit(lambda: batch_run_task.apply_async((batch_id, token), countdown=countdown))
    else:
        transaction.on_commit(lambda: batch_run_task.delay(batch_id, token))


def _metadata_check(metadata) -> dict | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise InvalidRequest("metadata must be an object of at most 16 pairs.", extra={"param": "metadata"})
    for k, v in metadata.items():
        if not isinstance(v, str) or len(k) > 64 or len(v) > 512:
            raise InvalidRequest(
                "metadata keys are strings ≤ 64 characters, values strings ≤ 512.",
                extra={"param": "metadata"},
            )
    return metadata


@transaction.atomic
def batch_create(
    *,
    key: ApiKey,
    input_file_id: str,
    endpoint: str,
    completion_window: str = "24h",
    metadata: dict | None = None,
) -> Batch:
    if not isinstance(endpoint, str) or endpoint not in ENDPOINTS:
        raise InvalidRequest(f"endpoint must be one of: {', '.join(ENDPOINTS)}.", extra={"param": "endpoint"})
    if not isinstance(completion_window, str) or completion_window not in COMPLETION_WINDOWS:
        raise InvalidRequest("completion_window must be 24h.", extra={"param": "completion_window"})
    if not isinstance(input_file_id, str) or not input_file_id:
        raise InvalidRequest("input_file_id is required.", extra={"param": "input_file_id"})
    org_id = key.organization_id
    input_file = file_get(org_id=org_id, public_id=input_file_id)
    if input_file.purpose != PURPOSE_BATCH:
        raise InvalidRequest(
            f"{input_file_id} has purpose {input_file.purpose!r}; a batch needs a file with purpose 'batch'.",
            extra={"param": "input_file_id"},
        )
    now = timezone.now()
    batch = Batch.objects.create(
        public_id=_new_batch_id(),
        organization_id=org_id,
        api_key=key,
        endpoint=endpoint,
        completion_window=completion_window,
        input_file=input_file,
        input_file_public_id=input_file.public_id,
        metadata=_metadata_check(metadata),
        created_at=now,
        expires_at=now + COMPLETION_WINDOWS[completion_window],
        heartbeat_at=now,
    )
    _enqueue_validate(batch.pk)
    return batch


@transaction.atomic
def batch_cancel(*, org_id: int, public_id: str) -> Batch:
    """validating/in_progress → cancelling: no new line starts; finished lines are kept.

    A new run token stops the running chain after its in-flight lines and starts one that
    writes the files and ends in ``cancelled``."""
    batch = batch_get(org_id=org_id, public_id=public_id)
    if batch.status in (BatchStatus.CANCELLING, BatchStatus.CANCELLED):
        return batch
    if batch.status not in (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS):
        raise JobConflict(f"Cannot cancel a batch with status '{batch.status}'.", extra={"param": "batch_id"})
    token = _new_token()
    now = timezone.now()
    updated = Batch.objects.filter(
        pk=batch.pk, status__in=[BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS]
    ).update(status=BatchStatus.CANCELLING, cancelling_at=now, run_token=token, heartbeat_at=now)
    batch.refresh_from_db()
    if updated and batch.in_progress_at is not None:
        _enqueue_run(batch.pk, token)
    return batch


# --- validation -------------------------------------------------------------------------------------


def _line_error(line_no: int, code: str, message: str, param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": line_no}


def _validate_line(
    raw: bytes, line_no: int, *, endpoint_path: str, key: ApiKey, seen: set[str]
) -> tuple[str, dict] | dict:
    """(custom_id, body) for a valid line, else an error dict (OpenAI ``BatchError`` shape)."""
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _line_error(line_no, "invalid_json_line", "This line is not valid JSON.")
    if not isinstance(item, dict):
        return _line_error(line_no, "invalid_json_line", "Each line must be a JSON object.")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
        return _line_error(line_no, "missing_required_parameter", "custom_id must be a string.", "custom_id")
    if custom_id in seen:
        return _line_error(
            line_no,
            "duplicate_custom_id",
            f"custom_id {custom_id!r} is used by an earlier line.",
            "custom_id",
        )
    seen.add(custom_id)
    if item.get("method") != "POST":
        return _line_error(line_no, "invalid_method", "method must be POST.", "method")
    if item.get("url") != endpoint_path:
        return _line_error(
            line_no,
            "mismatched_endpoint",
            f"url is {item.get('url')!r}; this batch's endpoint is {endpoint_path}.",
            "url",
        )
    body = item.get("body")
    if not isinstance(body, dict):
        return _line_error(line_no, "missing_required_parameter", "body must be a JSON object.", "body")
    if body.get("stream"):
        return _line_error(line_no, "invalid_request", "Batch requests cannot stream.", "body.stream")
    try:
        plan = ENDPOINTS[endpoint_path].plan(body, [])
        model = model_resolve(plan.model_id)
        if (
            key.allowed_models
            and model.id not in key.allowed_models
            and plan.model_id not in key.allowed_models
        ):
            raise ModelNotAllowed(f"This API key may not use {model.id}.", extra={"param": "model"})
        guard_check(model=model, needs=plan.needs)
    except ApplicationError as exc:
        param = exc.extra.get("param")
        return _line_error(line_no, exc.code, exc.message, f"body.{param}" if param else "body")
    return custom_id, body


def _read_lines(input_file: JobFile):
    with file_open(file=input_file) as fh:
        for line_no, raw in enumerate(fh, start=1):
            if raw.strip():
                yield line_no, raw


def batch_validate(*, batch_id: int) -> str:
    """validating → in_progress (all lines valid) or failed (any invalid line). Idempotent."""
    batch = Batch.objects.select_related("api_key__organization", "input_file").filter(pk=batch_id).first()
    if batch is None or batch.status not in (BatchStatus.VALIDATING, BatchStatus.CANCELLING):
        return "skipped"
    if batch.in_progress_at is not None:
        return "skipped"  # already validated (a cancelling batch past validation)
    now = timezone.now()
    if batch.status == BatchStatus.CANCELLING:
        return _cancelled_before_start(batch.pk)
    errors: list[dict] = []
    lines: list[BatchLine] = []
    if batch.input_file is None:
        errors.append(
            _line_error(0, "file_not_found", f"{batch.input_file_public_id} was deleted.", "input_file_id")
        )
    elif batch.api_key is None or api_key_check(batch.api_key):
        errors.append(
            _line_error(0, "invalid_api_key", "The API key that created this batch is no longer valid.")
        )
    else:
        seen: set[str] = set()
        for line_no, raw in _read_lines(batch.input_file):
            if len(lines) + len(errors) >= settings.BATCH_MAX_LINES:
                errors.append(
                    _line_error(
                        line_no,
                        "too_many_requests",
                        f"A batch holds at most {settings.BATCH_MAX_LINES} requests.",
                    )
                )
                break
            checked = _validate_line(raw, line_no, endpoint_path=batch.endpoint, key=batch.api_key, seen=seen)
            if isinstance(checked, dict):
                errors.append(checked)
                continue
            custom_id, body = checked
            lines.append(
                BatchLine(
                    batch_id=batch.pk,
                    line_no=line_no,
                    custom_id=custom_id,
                    body=body,
                    request_id=f"{batch.public_id}_{line_no}",
                )
            )
        if not lines and not errors:
            errors.append(_line_error(0, "empty_file", "The input file has no requests."))
    if errors:
        return _validation_failed(batch, errors)
    token = _new_token()
    with transaction.atomic():
        claimed = Batch.objects.filter(pk=batch.pk, status=BatchStatus.VALIDATING).update(
            status=BatchStatus.IN_PROGRESS,
            in_progress_at=now,
            total_lines=len(lines),
            run_token=token,
            heartbeat_at=now,
        )
        if not claimed:  # cancelled meanwhile, or validated by a concurrent run
            return _cancelled_before_start(batch.pk)
        BatchLine.objects.filter(batch_id=batch.pk).delete()
        BatchLine.objects.bulk_create(lines, batch_size=500)
        _enqueue_run(batch.pk, token)
    return BatchStatus.IN_PROGRESS


def _cancelled_before_start(batch_pk: int) -> str:
    """cancelling → cancelled for a batch cancelled while validating (no line ever ran)."""
    ended = Batch.objects.filter(
        pk=batch_pk, status=BatchStatus.CANCELLING, in_progress_at__isnull=True
    ).update(status=BatchStatus.CANCELLED, cancelled_at=timezone.now(), lease_until=None)
    return BatchStatus.CANCELLED if ended else "skipped"


def _error_line(line_no: int, custom_id: str | None, code: str, message: str) -> dict:
    return {
        "id": f"batch_req_line_{line_no}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message, "line": line_no},
    }


def _validation_failed(batch: Batch, errors: list[dict]) -> str:
    with tempfile.TemporaryFile() as tmp:
        for err in errors:
            tmp.write(orjson.dumps(_error_line(err["line"], None, err["code"], err["message"])) + b"\n")
        with transaction.atomic():
            if not Batch.objects.filter(pk=batch.pk, status=BatchStatus.VALIDATING).exists():
                return _cancelled_before_start(batch.pk)
            error_file = file_store_output(
                org_id=batch.organization_id,
                filename=f"{batch.public_id}_validation_errors.jsonl",
                name=f"jobs/org-{batch.organization_id}/{batch.public_id}_validation_errors.jsonl",
                content=tmp,
            )
            failed = Batch.objects.filter(pk=batch.pk, status=BatchStatus.VALIDATING).update(
                status=BatchStatus.FAILED,
                failed_at=timezone.now(),
                errors={"object": "list", "data": errors[:MAX_REPORTED_ERRORS]},
                error_file=error_file,
                total_lines=0,
            )
            if failed:
                transaction.on_commit(partial(jobs_observe_batch, BatchStatus.FAILED))
    return BatchStatus.FAILED


# --- leases ----------------------------------------------------------------------------------------

CLAIMED, BUSY, SUPERSEDED = "claimed", "busy", "superseded"


def _lease_claim(batch_id: int, token: str) -> str:
    """Take the batch's lease for this run chain, within the organization's running limit.

    The organization row is locked (PostgreSQL) / the write transaction is exclusive
    (SQLite, IMMEDIATE), so concurrent claims for one organization are serialized."""
    now = timezone.now()
    with transaction.atomic():
        org_id = Batch.objects.filter(pk=batch_id).values_list("organization_id", flat=True).first()
        if org_id is None:
            return SUPERSEDED
        list(Organization.objects.select_for_update().filter(pk=org_id).values_list("pk", flat=True))
        running = (
            Batch.objects.filter(organization_id=org_id, lease_until__gt=now).exclude(pk=batch_id).count()
        )
        if running >= settings.BATCH_ORG_MAX_RUNNING:
            Batch.objects.filter(pk=batch_id, run_token=token).update(heartbeat_at=now)
            return BUSY
        claimed = (
            Batch.objects.filter(pk=batch_id, run_token=token)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .update(lease_until=now + dt.timedelta(seconds=settings.BATCH_LEASE_SECONDS), heartbeat_at=now)
        )
    if claimed:
        return CLAIMED
    current = Batch.objects.filter(pk=batch_id).values_list("run_token", flat=True).first()
    return BUSY if current == token else SUPERSEDED


def _lease_renew(batch_id: int, token: str) -> bool:
    """Extend the lease; False when the run must stop (cancelled, superseded)."""
    now = timezone.now()
    renewed = Batch.objects.filter(pk=batch_id, run_token=token, status=BatchStatus.IN_PROGRESS).update(
        lease_until=now + dt.timedelta(seconds=settings.BATCH_LEASE_SECONDS), heartbeat_at=now
    )
    return bool(renewed)


def _lease_release(batch_id: int, token: str) -> None:
    Batch.objects.filter(pk=batch_id, run_token=token).update(lease_until=None, heartbeat_at=timezone.now())


# --- running lines ------------------------------------------------------------------------------------


def _line_settled(line_pk: int, record, status: int, body: bytes) -> None:
    """Inside the settlement transaction: the line's result commits with its charge, once."""
    ok = 200 <= status < 300
    updated = BatchLine.objects.filter(pk=line_pk, status=LineStatus.PENDING).update(
        status=LineStatus.SUCCEEDED if ok else LineStatus.FAILED,
        status_code=status,
        response_body=body.decode("utf-8", "replace") if body else "",
        usage_record_id=record.pk,
        cost_units=record.cost_units,
        finished_at=timezone.now(),
    )
    if not updated:
        raise LineAlreadyDone(line_pk)  # rolls the duplicate settlement back: never charged twice


def _line_failed(line_pk: int, status: int, body: dict | None, code: str = "", message: str = "") -> None:
    """A line that ended without a 2xx: record its error (the settlement may already have set status)."""
    BatchLine.objects.filter(pk=line_pk).filter(
        Q(status=LineStatus.PENDING) | Q(status=LineStatus.FAILED, response_body="")
    ).update(
        status=LineStatus.FAILED,
        status_code=status or None,
        response_body=orjson.dumps(body).decode() if body is not None else "",
        error_code=code[:64],
        error_message=message,
        finished_at=timezone.now(),
    )


def _lines_end(batch_id: int, status: str, code: str, message: str) -> int:
    return BatchLine.objects.filter(batch_id=batch_id, status=LineStatus.PENDING).update(
        status=status, error_code=code, error_message=message, finished_at=timezone.now()
    )


async def _run_one(batch: Batch, key: ApiKey, line: BatchLine) -> tuple:
    from ..relay import relay_call

    try:
        status, body = await relay_call(
            key=key,
            endpoint=ENDPOINTS[batch.endpoint],
            body=line.body,
            request_id=line.request_id,
            batch=True,
            on_settled=partial(_line_settled, line.pk),
        )
    except Exception as exc:
        logger.exception("batch %s line %s failed", batch.public_id, line.line_no)
        return line.pk, 0, {"error": {"message": str(exc)[:500], "type": "api_error"}}
    return line.pk, status, body


async def _run_chunk(batch: Batch, key: ApiKey, lines: list[BatchLine], token: str) -> list[tuple]:
    """Run the lines in BATCH_LINE_CONCURRENCY *lanes*; a heartbeat keeps the lease.

    The relay's database hops for the lines run on ``config.asyncdb``'s threads, so lanes
    overlap their database work as well as their upstream calls."""
    queue: asyncio.Queue[BatchLine] = asyncio.Queue()
    for line in lines:
        queue.put_nowait(line)
    stop = asyncio.Event()
    results: list[tuple] = []

    async def heartbeat():
        while True:
            await asyncio.sleep(max(settings.BATCH_LEASE_SECONDS / 3, 0.2))
            if not await db_call(_lease_renew, batch.pk, token):
                stop.set()  # cancelled or superseded: start no new line

    async def lane():
        while not stop.is_set():
            try:
                line = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            results.append(await _run_one(batch, key, line))

    beat = asyncio.get_running_loop().create_task(heartbeat())
    try:
        await asyncio.gather(*(lane() for _ in range(max(1, settings.BATCH_LINE_CONCURRENCY))))
    finally:
        beat.cancel()
    return results


def _run_lines(batch: Batch, key: ApiKey, lines: list[BatchLine], token: str) -> None:
    results = asyncio.run(_run_chunk(batch, key, lines, token))
    close_old_connections()
    by_pk = {line.pk: line for line in lines}
    short_of_funds = []
    succeeded = failed = 0
    for line_pk, status, body in results:
        if status is None:
            continue
        if 200 <= status < 300:
            succeeded += 1
            continue
        if status == 402:
            short_of_funds.append(by_pk[line_pk])
            continue
        failed += 1
        if status == 0:  # an exception inside the run: the line is not retried forever
            _line_failed(
                line_pk, 500, body, "internal_error", (body or {}).get("error", {}).get("message", "")
            )
        else:
            _line_failed(line_pk, status, body)
    if short_of_funds:
        # A 402 can be transient while other lines of the chunk held money; once they have
        # settled, try those lines again one by one. A second 402 is final for the line.
        results = asyncio.run(_retry_sequentially(batch, key, short_of_funds))
        close_old_connections()
        for line_pk, status, body in results:
            if status is None:
                continue
            if 200 <= status < 300:
                succeeded += 1
            else:
                failed += 1
                _line_failed(line_pk, status or 500, body, "" if status else "internal_error")
    jobs_observe_lines(succeeded=succeeded, failed=failed)


async def _retry_sequentially(batch: Batch, key: ApiKey, lines: list[BatchLine]) -> list[tuple]:
    return [await _run_one(batch, key, line) for line in lines]


# --- the run chain ---------------------------------------------------------------------------------------


def batch_run(*, batch_id: int, token: str) -> str:
    """Run the next chunk of the batch (or finish it). Safe to run twice, or after a crash."""
    claim = _lease_claim(batch_id, token)
    if claim == SUPERSEDED:
        return claim
    if claim == BUSY:
        with transaction.atomic():
            _enqueue_run(batch_id, token, countdown=settings.BATCH_BUSY_RETRY_SECONDS)
        return claim
    more = False
    try:
        batch = Batch.objects.select_related("api_key__organization").get(pk=batch_id)
        now = timezone.now()
        if batch.status == BatchStatus.CANCELLING:
            _lines_end(batch.pk, LineStatus.CANCELLED, "batch_cancelled", "The batch was cancelled.")
            _finalize(batch, BatchStatus.CANCELLED)
            return BatchStatus.CANCELLED
        if batch.status == BatchStatus.FINALIZING:
            _finalize(batch, BatchStatus.COMPLETED)
            return BatchStatus.COMPLETED
        if batch.status != BatchStatus.IN_PROGRESS:
            return "skipped"
        if now >= batch.expires_at:
            _lines_end(
                batch.pk,
                LineStatus.EXPIRED,
                "batch_expired",
                "This request could not be executed before the completion window expired.",
            )
            _finalize(batch, BatchStatus.EXPIRED)
            return BatchStatus.EXPIRED
        key = batch.api_key
        problem = "The API key that created this batch was deleted." if key is None else api_key_check(key)
        if problem:
            body = {"error": {"message": problem, "type": "invalid_request_error", "code": "invalid_api_key"}}
            for pk in BatchLine.objects.filter(batch_id=batch.pk, status=LineStatus.PENDING).values_list(
                "pk", flat=True
            ):
                _line_failed(pk, 401, body)
            more = True  # finalize in the next step
        else:
            lines = list(
                BatchLine.objects.filter(batch_id=batch.pk, status=LineStatus.PENDING).order_by("line_no")[
                    : settings.BATCH_CHUNK_SIZE
                ]
            )
            if not lines:
                _finalize(batch, BatchStatus.COMPLETED)
                return BatchStatus.COMPLETED
            _run_lines(batch, key, lines, token)
            more = True
        return "more"
    finally:
        _lease_release(batch_id, token)
        if more:
            with transaction.atomic():
                _enqueue_run(batch_id, token)


# --- finalizing ------------------------------------------------------------------------------------------


def _result_line(line: BatchLine) -> bytes:
    body = None
    if line.response_body:
        try:
            body = orjson.loads(line.response_body)
        except orjson.JSONDecodeError:
            body = {"raw": line.response_body}
    if line.status_code:
        if body is None:
            body = {
                "error": {
                    "message": line.error_message or f"The request failed with HTTP {line.status_code}.",
                    "type": "api_error",
                    "code": line.error_code or None,
                }
            }
        item = {
            "id": f"batch_req_{line.request_id}",
            "custom_id": line.custom_id,
            "response": {"status_code": line.status_code, "request_id": line.request_id, "body": body},
            "error": None,
        }
    else:
        item = _error_line(line.line_no, line.custom_id, line.error_code or "failed", line.error_message)
        item["id"] = f"batch_req_{line.request_id}"
    return orjson.dumps(item) + b"\n"


def _finalize(batch: Batch, final_status: str) -> None:
    """Write the output and error files, then the final status — all or nothing, repeatable."""
    now = timezone.now()
    if final_status == BatchStatus.COMPLETED:
        Batch.objects.filter(pk=batch.pk, status=BatchStatus.IN_PROGRESS).update(
            status=BatchStatus.FINALIZING, finalizing_at=now
        )
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        n_out = n_err = 0
        for line in BatchLine.objects.filter(batch_id=batch.pk).order_by("line_no").iterator(chunk_size=500):
            if line.status == LineStatus.PENDING:
                continue
            if line.status == LineStatus.CANCELLED:
                continue  # never started: neither output nor error (OpenAI)
            if line.status == LineStatus.SUCCEEDED:
                out.write(_result_line(line))
                n_out += 1
            else:
                err.write(_result_line(line))
                n_err += 1
        prefix = f"jobs/org-{batch.organization_id}/{batch.public_id}"
        with transaction.atomic():
            current = Batch.objects.select_for_update().get(pk=batch.pk)
            if current.status not in (
                BatchStatus.FINALIZING,
                BatchStatus.CANCELLING,
                BatchStatus.IN_PROGRESS,
            ):
                return
            output_file = error_file = None
            if n_out:
                output_file = file_store_output(
                    org_id=batch.organization_id,
                    filename=f"{batch.public_id}_output.jsonl",
                    name=f"{prefix}_output.jsonl",
                    content=out,
                )
            if n_err:
                error_file = file_store_output(
                    org_id=batch.organization_id,
                    filename=f"{batch.public_id}_error.jsonl",
                    name=f"{prefix}_error.jsonl",
                    content=err,
                )
            stamp = {
                BatchStatus.COMPLETED: "completed_at",
                BatchStatus.CANCELLED: "cancelled_at",
                BatchStatus.EXPIRED: "expired_at",
            }[final_status]
            Batch.objects.filter(pk=batch.pk).update(
                status=final_status,
                output_file=output_file,
                error_file=error_file,
                lease_until=None,
                **{stamp: timezone.now()},
            )
            transaction.on_commit(partial(jobs_observe_batch, final_status))


# --- resuming after a crash -----------------------------------------------------------------------------


def batches_resume(*, now: dt.datetime | None = None) -> int:
    """Restart active batches nobody is running (a worker died, a message was lost).

    A batch is stale when its lease has run out (or it has none) and nothing touched it for
    BATCH_STALE_SECONDS. A new run token supersedes any old chain. Periodic (beat)."""
    now = now or timezone.now()
    stale_before = now - dt.timedelta(seconds=settings.BATCH_STALE_SECONDS)
    stale = (
        Batch.objects.filter(status__in=ACTIVE_BATCH_STATUSES)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lte=stale_before))
        .values_list("pk", "status", "in_progress_at")
    )
    resumed = 0
    for pk, status, in_progress_at in stale:
        with transaction.atomic():
            if status == BatchStatus.VALIDATING or (
                status == BatchStatus.CANCELLING and in_progress_at is None
            ):
                Batch.objects.filter(pk=pk).update(heartbeat_at=now)
                _enqueue_validate(pk)
            else:
                token = _new_token()
                if (
                    not Batch.objects.filter(pk=pk, status=status)
                    .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
                    .update(run_token=token, heartbeat_at=now)
                ):
                    continue
                _enqueue_run(pk, token)
        resumed += 1
    if resumed:
        logger.info("resumed %s stale batch(es)", resumed)
    return resumed
