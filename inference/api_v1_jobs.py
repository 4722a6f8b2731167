"""``/v1/files`` and ``/v1/batches`` in OpenAI's shapes (the official ``openai`` SDK works unchanged).

Plain Django views like the relay's: API key auth (``Authorization: Bearer`` or ``x-api-key``),
errors in the OpenAI error shape, every object scoped to the key's organization (another
organization's ids are 404).
"""

from __future__ import annotations

import functools

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from accounts.keys import key_from_headers
from config.errors import ApplicationError

from .auth import v1_authenticate
from .errors import InvalidRequest, openai_error
from .jobs import batches as batch_services
from .jobs import files as file_services
from .models_jobs import Batch, JobFile

MULTIPART_SLACK = 64 * 1024  # multipart headers and the purpose field around the file


def _json(data: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


def _key(request):
    return v1_authenticate(key_from_headers(request.headers))


def openai_view(*methods: str):
    """Authenticate, dispatch by method, render ApplicationError in the OpenAI shape."""

    def wrap(fn):
        @csrf_exempt
        @functools.wraps(fn)
        def view(request, *args, **kwargs):
            try:
                if request.method not in methods:
                    raise InvalidRequest(
                        f"{request.method} is not allowed here.", status=405, code="method_not_allowed"
                    )
                key = _key(request)
                return fn(request, key, *args, **kwargs)
            except ApplicationError as exc:
                return openai_error(exc)

        return view

    return wrap


def _body(request) -> dict:
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def _limit(request, default: int = 20) -> int:
    try:
        limit = int(request.GET.get("limit", default))
    except ValueError:
        raise InvalidRequest("limit must be an integer.", extra={"param": "limit"}) from None
    return max(1, min(limit, 100 if default == 20 else 10_000))


def _page(items: list, limit: int, present) -> dict:
    page = items[:limit]
    data = [present(item) for item in page]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(items) > limit,
    }


# --- files -------------------------------------------------------------------------------------------


def file_json(f: JobFile) -> dict:
    return {
        "id": f.public_id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": _ts(f.created_at),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def _file_upload(request, key) -> HttpResponse:
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.JOBS_FILE_MAX_BYTES + MULTIPART_SLACK:  # refuse before reading the body
        raise InvalidRequest(
            f"The file is larger than the limit of {settings.JOBS_FILE_MAX_BYTES} bytes.",
            status=413,
            code="file_too_large",
            extra={"param": "file"},
        )
    try:
        upload = request.FILES.get("file")
    except MultiPartParserError as exc:
        raise InvalidRequest(
            f"The multipart body could not be read: {exc}", extra={"param": "file"}
        ) from None
    if upload is None:
        raise InvalidRequest("Send the file as multipart form field `file`.", extra={"param": "file"})
    created = file_services.file_create(
        org_id=key.organization_id,
        purpose=request.POST.get("purpose", ""),
        filename=upload.name,
        content=upload,
        size=upload.size,
    )
    return _json(file_json(created))


def _file_list(request, key) -> HttpResponse:
    qs = file_services.files_for_org(org_id=key.organization_id, purpose=request.GET.get("purpose") or None)
    order = request.GET.get("order", "desc")
    qs = qs.order_by("created_at", "id") if order == "asc" else qs.order_by("-created_at", "-id")
    after = request.GET.get("after")
    if after:
        anchor = file_services.file_get(org_id=key.organization_id, public_id=after)
        qs = qs.filter(id__gt=anchor.id) if order == "asc" else qs.filter(id__lt=anchor.id)
    limit = _limit(request, default=10_000)
    return _json(_page(list(qs[: limit + 1]), limit, file_json))


@openai_view("GET", "POST")
def files(request, key):
    if request.method == "POST":
        return _file_upload(request, key)
    return _file_list(request, key)


@openai_view("GET", "DELETE")
def file_detail(request, key, file_id: str):
    if request.method == "DELETE":
        deleted = file_services.file_delete(org_id=key.organization_id, public_id=file_id)
        return _json({"id": deleted, "object": "file", "deleted": True})
    return _json(file_json(file_services.file_get(org_id=key.organization_id, public_id=file_id)))


@openai_view("GET")
def file_content(request, key, file_id: str):
    found = file_services.file_get(org_id=key.organization_id, public_id=file_id)
    response = StreamingHttpResponse(
        _chunks(file_services.file_open(file=found)), content_type="application/jsonl"
    )
    response["Content-Length"] = str(found.bytes)
    response["Content-Disposition"] = f'attachment; filename="{found.filename}"'
    return response


async def _chunks(fh, size: int = 256 * 1024):
    """Stream a stored file under ASGI without blocking the event loop (any storage backend)."""
    read = sync_to_async(fh.read, thread_sensitive=False)
    try:
        while chunk := await read(size):
            yield chunk
    finally:
        await sync_to_async(fh.close, thread_sensitive=False)()


# --- batches -----------------------------------------------------------------------------------------


def batch_json(batch: Batch, counts: dict | None = None) -> dict:
    counts = counts or {"completed": 0, "failed": 0}
    return {
        "id": batch.public_id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": batch.errors,
        "input_file_id": batch.input_file_public_id,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file.public_id if batch.output_file_id else None,
        "error_file_id": batch.error_file.public_id if batch.error_file_id else None,
        "created_at": _ts(batch.created_at),
        "in_progress_at": _ts(batch.in_progress_at),
        "expires_at": _ts(batch.expires_at),
        "finalizing_at": _ts(batch.finalizing_at),
        "completed_at": _ts(batch.completed_at),
        "failed_at": _ts(batch.failed_at),
        "expired_at": _ts(batch.expired_at),
        "cancelling_at": _ts(batch.cancelling_at),
        "cancelled_at": _ts(batch.cancelled_at),
        "request_counts": {"total": batch.total_lines, **counts},
        "metadata": batch.metadata,
    }


def _present(batches_: list[Batch]) -> list[dict]:
    counts = batch_services.batch_counts(batch_ids=[b.pk for b in batches_])
    return [batch_json(b, counts.get(b.pk)) for b in batches_]


def _one(org_id: int, public_id: str) -> HttpResponse:
    return _json(_present([batch_services.batch_get(org_id=org_id, public_id=public_id)])[0])


@openai_view("GET", "POST")
def batches(request, key):
    if request.method == "POST":
        body = _body(request)
        created = batch_services.batch_create(
            key=key,
            input_file_id=body.get("input_file_id"),
            endpoint=body.get("endpoint"),
            completion_window=body.get("completion_window") or "24h",
            metadata=body.get("metadata"),
        )
        return _one(key.organization_id, created.public_id)
    qs = batch_services.batches_for_org(org_id=key.organization_id).order_by("-created_at", "-id")
    after = request.GET.get("after")
    if after:
        anchor = batch_services.batch_get(org_id=key.organization_id, public_id=after)
        qs = qs.filter(id__lt=anchor.id)
    limit = _limit(request)
    items = list(qs[: limit + 1])
    page = _present(items[:limit])
    return _json(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


@openai_view("GET")
def batch_detail(request, key, batch_id: str):
    return _one(key.organization_id, batch_id)


@openai_view("POST")
def batch_cancel(request, key, batch_id: str):
    batch_services.batch_cancel(org_id=key.organization_id, public_id=batch_id)
    return _one(key.organization_id, batch_id)
